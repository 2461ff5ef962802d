// BPE files: GPT-2's byte-to-unicode alphabet, its vocab.json + merges.txt pair, and the
// members of the lmtrain tokenizer JSON.
#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/bpe.h"
#include "core/utf8.h"

namespace lmt::data {

namespace {

// GPT-2's bytes_to_unicode(): the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
// themselves; the other 68 bytes, in increasing order, become U+0100..U+0143.
constexpr char32_t kNumGpt2CodePoints = 256 + 68;

const std::array<char32_t, 256>& gpt2_code_point_of_byte() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> code_points{};
    char32_t next_extra = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
      code_points[byte] = printable ? static_cast<char32_t>(byte) : next_extra++;
    }
    return code_points;
  }();
  return table;
}

const std::array<int16_t, kNumGpt2CodePoints>& gpt2_byte_of_code_point() {
  static const std::array<int16_t, kNumGpt2CodePoints> table = [] {
    std::array<int16_t, kNumGpt2CodePoints> bytes{};
    bytes.fill(-1);
    for (int byte = 0; byte < 256; ++byte) bytes[gpt2_code_point_of_byte()[byte]] = static_cast<int16_t>(byte);
    return bytes;
  }();
  return table;
}

nlohmann::json parse_json_file(const std::string& text, const std::string& what, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{} '{}' is not valid JSON ({})", what, path, e.what()));
  }
}

}  // namespace

std::string bytes_to_gpt2_text(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(text, gpt2_code_point_of_byte()[static_cast<unsigned char>(c)]);
  return text;
}

std::optional<std::string> gpt2_text_to_bytes(std::string_view text) {
  std::string bytes;
  char32_t code_point = 0;
  for (size_t offset = 0; offset < text.size();) {
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0 || code_point >= kNumGpt2CodePoints) return std::nullopt;
    const int16_t byte = gpt2_byte_of_code_point()[code_point];
    if (byte < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(byte));
    offset += length;
  }
  return bytes;
}

namespace {

// vocab.json as written: GPT-2 text -> id, and back.
struct Gpt2Vocab {
  std::vector<std::string> text_of_id;
  std::unordered_map<std::string, int32_t> id_of_text;
};

Gpt2Vocab read_gpt2_vocab(const std::string& path) {
  const nlohmann::json json = parse_json_file(read_file_bytes(path, "GPT-2 vocab file"), "GPT-2 vocab file", path);
  if (!json.is_object() || json.empty() || json.size() > static_cast<size_t>(INT32_MAX)) {
    throw Error(fmt::format("GPT-2 vocab file '{}' must be a non-empty JSON object mapping token strings to ids", path));
  }
  const auto num_ids = static_cast<int64_t>(json.size());
  Gpt2Vocab vocab;
  vocab.text_of_id.resize(json.size());
  std::vector<bool> seen(json.size(), false);
  for (const auto& [text, value] : json.items()) {
    const int64_t id = value.is_number_integer() ? value.get<int64_t>() : -1;
    if (id < 0 || id >= num_ids) {
      throw Error(fmt::format("GPT-2 vocab file '{}': entry \"{}\" has id {}; the ids must be the integers 0 to {}",
                              path, text, value.dump(), num_ids - 1));
    }
    if (seen[id]) {
      throw Error(fmt::format("GPT-2 vocab file '{}': entries \"{}\" and \"{}\" both have id {}", path,
                              vocab.text_of_id[id], text, id));
    }
    seen[id] = true;
    vocab.text_of_id[id] = text;
    vocab.id_of_text.emplace(text, static_cast<int32_t>(id));
  }
  return vocab;
}

// merges.txt: an optional "#version" first line, then "left right" per line in rank order.
// Marks the ids that merges produce in `produced`.
std::vector<std::pair<int32_t, int32_t>> read_gpt2_merges(const std::string& path, const Gpt2Vocab& vocab,
                                                          const std::string& vocab_path, std::vector<bool>& produced) {
  const std::string text = read_file_bytes(path, "GPT-2 merges file");
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::unordered_map<uint64_t, size_t> line_of_merge;
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t newline = std::min(text.find('\n', start), text.size());
    std::string_view line = std::string_view(text).substr(start, newline - start);
    start = newline + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      throw Error(fmt::format("GPT-2 merges file '{}' line {}: expected two tokens separated by one space, found \"{}\"",
                              path, line_number, line));
    }
    const std::string left(line.substr(0, space)), right(line.substr(space + 1));
    int32_t ids[2] = {0, 0};
    for (int side = 0; side < 2; ++side) {
      const std::string& token = side == 0 ? left : right;
      const auto it = vocab.id_of_text.find(token);
      if (it == vocab.id_of_text.end()) {
        throw Error(fmt::format("GPT-2 merges file '{}' line {}: token \"{}\" is not in the vocab file '{}'",
                                path, line_number, token, vocab_path));
      }
      ids[side] = it->second;
    }
    const auto merged = vocab.id_of_text.find(left + right);
    if (merged == vocab.id_of_text.end()) {
      throw Error(fmt::format("GPT-2 merges file '{}' line {}: the merged token \"{}\" is not in the vocab file '{}'",
                              path, line_number, left + right, vocab_path));
    }
    const uint64_t key = (static_cast<uint64_t>(ids[0]) << 32) | static_cast<uint32_t>(ids[1]);
    const auto [it, inserted] = line_of_merge.emplace(key, line_number);
    if (!inserted) {
      throw Error(fmt::format("GPT-2 merges file '{}' line {}: the merge \"{}\" already appears on line {}",
                              path, line_number, line, it->second));
    }
    produced[merged->second] = true;
    merges.emplace_back(ids[0], ids[1]);
  }
  return merges;
}

}  // namespace

BpeModel BpeModel::load_gpt2(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  const Gpt2Vocab vocab = read_gpt2_vocab(vocab_json_path);
  std::vector<bool> produced(vocab.text_of_id.size(), false);
  const auto merges = read_gpt2_merges(merges_txt_path, vocab, vocab_json_path, produced);
  std::vector<std::string> tokens;
  std::vector<SpecialToken> specials;
  for (size_t id = 0; id < vocab.text_of_id.size(); ++id) {
    const std::string& text = vocab.text_of_id[id];
    std::optional<std::string> bytes = gpt2_text_to_bytes(text);
    if (!bytes || bytes->empty()) {
      throw Error(fmt::format("GPT-2 vocab file '{}': entry \"{}\" (id {}) is empty or has a character outside "
                              "GPT-2's byte alphabet", vocab_json_path, text, id));
    }
    const bool special = bytes->size() > 1 && !produced[id] && bytes->starts_with("<|") &&
                         bytes->ends_with("|>") && is_valid_utf8(*bytes);
    if (bytes->size() > 1 && !produced[id] && !special) {
      throw Error(fmt::format("GPT-2 vocab file '{}': entry \"{}\" (id {}) is neither a single byte, nor the "
                              "result of a merge in '{}', nor a special token like <|endoftext|>",
                              vocab_json_path, text, id, merges_txt_path));
    }
    if (special) specials.push_back({*bytes, static_cast<int32_t>(id)});
    tokens.push_back(std::move(*bytes));
  }
  return BpeModel(std::move(tokens), merges, std::move(specials), vocab_json_path);
}

std::string BpeModel::gpt2_vocab_json() const {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < tokens_.size(); ++id) vocab[bytes_to_gpt2_text(tokens_[id])] = id;
  return vocab.dump() + "\n";
}

std::string BpeModel::gpt2_merges_txt() const {
  std::string out = "#version: 0.2\n";
  for (const auto& [left, right] : merges_) {
    out += bytes_to_gpt2_text(tokens_[static_cast<size_t>(left)]);
    out += ' ';
    out += bytes_to_gpt2_text(tokens_[static_cast<size_t>(right)]);
    out += '\n';
  }
  return out;
}

namespace {

// The member `key`, or null; unlike json.value() it does not copy (tokens and merges are large).
const nlohmann::json& member(const nlohmann::json& json, const char* key) {
  static const nlohmann::json kNull;
  const auto it = json.find(key);
  return it == json.end() ? kNull : *it;
}

std::vector<std::pair<int32_t, int32_t>> merges_from_json(const nlohmann::json& json, const std::string& source) {
  const nlohmann::json& merges = member(json, "merges");
  if (!merges.is_array()) {
    throw Error(fmt::format("tokenizer file '{}' (kind \"bpe\") has no \"merges\" list", source));
  }
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& merge = merges[i];
    const bool ok = merge.is_array() && merge.size() == 2 && merge[0].is_number_integer() &&
                    merge[1].is_number_integer() && merge[0].get<int64_t>() >= 0 &&
                    merge[1].get<int64_t>() >= 0 && merge[0].get<int64_t>() <= INT32_MAX &&
                    merge[1].get<int64_t>() <= INT32_MAX;
    if (!ok) {
      throw Error(fmt::format("tokenizer file '{}': merges entry {} ({}) is not a pair of token ids", source, i,
                              merge.dump()));
    }
    pairs.emplace_back(merge[0].get<int32_t>(), merge[1].get<int32_t>());
  }
  return pairs;
}

std::vector<BpeModel::SpecialToken> specials_from_json(const nlohmann::json& json, const std::string& source) {
  const nlohmann::json& specials = member(json, "special_tokens");
  if (!specials.is_object()) {
    throw Error(fmt::format("tokenizer file '{}': \"special_tokens\" must be an object mapping names to ids", source));
  }
  std::vector<BpeModel::SpecialToken> result;
  for (const auto& [name, id] : specials.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      throw Error(fmt::format("tokenizer file '{}': special token \"{}\" has id {}, not a token id", source, name,
                              id.dump()));
    }
    result.push_back({name, id.get<int32_t>()});
  }
  return result;
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& json, const std::string& source) {
  const nlohmann::json& pretokenizer = member(json, "pretokenizer");
  if (pretokenizer != "gpt2") {
    throw Error(fmt::format("tokenizer file '{}' (kind \"bpe\") has pretokenizer {}; this lmtrain knows only \"gpt2\"",
                            source, pretokenizer.dump()));
  }
  const nlohmann::json& token_list = member(json, "tokens");
  if (!token_list.is_array() || token_list.empty()) {
    throw Error(fmt::format("tokenizer file '{}' (kind \"bpe\") has no \"tokens\" list; re-create it with "
                            "`lmtrain data tokenizer train`", source));
  }
  std::vector<std::string> tokens;
  tokens.reserve(token_list.size());
  for (size_t id = 0; id < token_list.size(); ++id) {
    std::optional<std::string> bytes;
    if (token_list[id].is_string()) bytes = gpt2_text_to_bytes(token_list[id].get<std::string>());
    if (!bytes || bytes->empty()) {
      throw Error(fmt::format("tokenizer file '{}': tokens entry {} ({}) is not a non-empty string of GPT-2 byte "
                              "characters", source, id, token_list[id].dump()));
    }
    tokens.push_back(std::move(*bytes));
  }
  if (json.contains("vocab_size") && json["vocab_size"] != static_cast<int64_t>(tokens.size())) {
    throw Error(fmt::format("tokenizer file '{}' says vocab_size {} but lists {} tokens", source,
                            json["vocab_size"].dump(), tokens.size()));
  }
  return BpeModel(std::move(tokens), merges_from_json(json, source), specials_from_json(json, source), source);
}

void BpeModel::append_json_members(std::string& out) const {
  out += " \"pretokenizer\": \"gpt2\",\n \"special_tokens\": {";
  for (size_t i = 0; i < special_tokens_.size(); ++i) {
    out += fmt::format("{}{}: {}", i == 0 ? "" : ", ", nlohmann::json(special_tokens_[i].name).dump(),
                       special_tokens_[i].id);
  }
  out += "},\n \"tokens\": [\n";
  for (size_t id = 0; id < tokens_.size(); ++id) {
    out += "  " + nlohmann::json(bytes_to_gpt2_text(tokens_[id])).dump();
    out += id + 1 < tokens_.size() ? ",\n" : "\n";
  }
  out += " ],\n \"merges\": [";
  for (size_t rank = 0; rank < merges_.size(); ++rank) {
    out += fmt::format("{}\n  [{}, {}]", rank == 0 ? "" : ",", merges_[rank].first, merges_[rank].second);
  }
  out += merges_.empty() ? "]\n" : "\n ]\n";
}

}  // namespace lmt::data
