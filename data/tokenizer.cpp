#include "data/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/parallel_for.h"
#include "core/utf8.h"

namespace lmt::data {

namespace {

constexpr int kByteVocabSize = 256;
constexpr const char* kFormatName = "lmtrain-tokenizer";
constexpr int kFormatVersion = 1;

std::string show_bytes_at(std::string_view text, size_t offset) {
  std::string shown;
  for (size_t i = offset; i < text.size() && i < offset + 4; ++i) {
    shown += fmt::format("{}0x{:02X}", shown.empty() ? "" : " ",
                         static_cast<unsigned char>(text[i]));
  }
  return shown;
}

[[noreturn]] void throw_invalid_utf8(std::string_view text, size_t offset) {
  throw Error(fmt::format(
      "invalid UTF-8 at byte offset {} (bytes {}); the char tokenizer needs UTF-8 text: convert "
      "the file (e.g. `iconv -f latin1 -t utf-8`) or use `--tokenizer byte`",
      offset, show_bytes_at(text, offset)));
}

std::string describe_code_point(char32_t code_point) {
  std::string printable;
  if (code_point >= 0x20 && code_point != 0x7F) append_utf8(printable, code_point);
  return printable.empty() ? fmt::format("U+{:04X}", static_cast<uint32_t>(code_point))
                           : fmt::format("U+{:04X} '{}'", static_cast<uint32_t>(code_point), printable);
}

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  size_t offset = 0;
  char32_t code_point = 0;
  while (offset < text.size()) {
    // Fast path: ASCII dominates real text.
    if (static_cast<unsigned char>(text[offset]) < 0x80) {
      ++offset;
      continue;
    }
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0) return offset;
    offset += length;
  }
  return std::nullopt;
}

Tokenizer::Tokenizer(std::string kind, std::vector<char32_t> code_points)
    : kind_(std::move(kind)), code_points_(std::move(code_points)) {
  if (kind_ == "char") {
    const char32_t max_code_point = *std::max_element(code_points_.begin(), code_points_.end());
    id_of_.assign(static_cast<size_t>(max_code_point) + 1, -1);
    for (size_t id = 0; id < code_points_.size(); ++id) {
      id_of_[code_points_[id]] = static_cast<int32_t>(id);
    }
  }
}

Tokenizer Tokenizer::build_char(std::string_view text) {
  if (text.empty()) {
    throw Error("cannot build a char tokenizer from empty text; check that the input files have content");
  }
  // A presence bitmap over all of Unicode (1.1 M entries) is cheaper than a set for large text.
  std::vector<bool> present(0x110000, false);
  size_t offset = 0;
  char32_t code_point = 0;
  while (offset < text.size()) {
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0) throw_invalid_utf8(text, offset);
    present[code_point] = true;
    offset += length;
  }
  std::vector<char32_t> code_points;
  for (char32_t c = 0; c < present.size(); ++c) {
    if (present[c]) code_points.push_back(c);
  }
  return Tokenizer("char", std::move(code_points));
}

Tokenizer Tokenizer::byte() { return Tokenizer("byte", {}); }

Tokenizer::Tokenizer(BpeModel model) : kind_("bpe"), bpe_(std::make_shared<const BpeModel>(std::move(model))) {}

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Counts the pieces of each file in turn; progress covers all of them. Sets num_bytes.
PieceCounts count_input_files(const std::vector<std::string>& paths, const BpeTrainOptions& options,
                              int64_t& num_bytes) {
  int64_t total_bytes = 0;  // for progress only; a pipe or special file reports no size
  for (const std::string& path : paths) {
    check_input_file(path);  // all of them before the long part
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) total_bytes += static_cast<int64_t>(size);
  }
  PieceCounts counts;
  num_bytes = 0;
  for (const std::string& path : paths) {
    int64_t done_in_file = 0;
    count_file_pieces(path, options.num_threads, counts, [&](int64_t done) {
      done_in_file = done;
      const int64_t done_overall = num_bytes + done;
      if (options.progress) {
        options.progress({BpeTrainProgress::Phase::kCounting, done_overall, std::max(total_bytes, done_overall)});
      }
    });
    num_bytes += done_in_file;
  }
  return counts;
}

BpeModel learn_merges(const PieceCounts& counts, const BpeTrainOptions& options, int64_t num_bytes,
                      double count_seconds, BpeTrainSummary* summary) {
  BpeTrainSummary local;
  BpeModel model = BpeModel::train(counts, options, &local);
  local.num_input_bytes = num_bytes;
  local.count_seconds = count_seconds;
  if (summary != nullptr) *summary = local;
  return model;
}

}  // namespace

Tokenizer Tokenizer::train_bpe(const std::vector<std::string>& input_paths, const BpeTrainOptions& options,
                               BpeTrainSummary* summary) {
  if (input_paths.empty()) throw Error("BPE training needs at least one input file");
  check_bpe_train_options(options);  // before the long part
  const auto start = std::chrono::steady_clock::now();
  int64_t num_bytes = 0;
  const PieceCounts counts = count_input_files(input_paths, options, num_bytes);
  return Tokenizer(learn_merges(counts, options, num_bytes, seconds_since(start), summary));
}

Tokenizer Tokenizer::train_bpe_on_text(std::string_view text, const BpeTrainOptions& options,
                                       BpeTrainSummary* summary) {
  check_bpe_train_options(options);
  const auto start = std::chrono::steady_clock::now();
  PieceCounts counts;
  count_pieces(text, options.num_threads, counts);
  return Tokenizer(learn_merges(counts, options, static_cast<int64_t>(text.size()), seconds_since(start), summary));
}

Tokenizer Tokenizer::load_gpt2(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  return Tokenizer(BpeModel::load_gpt2(vocab_json_path, merges_txt_path));
}

int Tokenizer::vocab_size() const {
  if (bpe_) return bpe_->vocab_size();
  return kind_ == "byte" ? kByteVocabSize : static_cast<int>(code_points_.size());
}

std::optional<int32_t> Tokenizer::eot_id() const {
  if (!bpe_) return std::nullopt;
  return bpe_->special_id(kEndOfText);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string_view> texts,
                                                          int num_threads) const {
  if (bpe_) return bpe_->encode_batch(texts, num_threads);
  std::vector<std::vector<int32_t>> ids(texts.size());
  parallel_for(texts.size(), resolve_num_threads(num_threads, texts.size()),
               [&](size_t i, int) { ids[i] = encode(texts[i]); });
  return ids;
}

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, int num_threads) const {
  if (bpe_) return bpe_->encode_parallel(text, num_threads);
  return encode(text);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (bpe_) return bpe_->encode(text);
  std::vector<int32_t> ids;
  if (kind_ == "byte") {
    ids.reserve(text.size());
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  ids.reserve(text.size());
  size_t offset = 0;
  char32_t code_point = 0;
  while (offset < text.size()) {
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0) throw_invalid_utf8(text, offset);
    const int32_t id = code_point < id_of_.size() ? id_of_[code_point] : -1;
    if (id < 0) {
      throw Error(fmt::format(
          "character {} at byte offset {} is not in the char tokenizer's vocabulary ({} "
          "symbols); rebuild the tokenizer from text that contains it or use `--tokenizer byte`",
          describe_code_point(code_point), offset, vocab_size()));
    }
    ids.push_back(id);
    offset += length;
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string text;
  text.reserve(ids.size());
  const int num_symbols = vocab_size();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= num_symbols) {
      throw Error(fmt::format("token id {} at position {} is outside the {} tokenizer's vocabulary "
                              "[0, {}); the tokens come from a different tokenizer or model",
                              id, i, kind_, num_symbols));
    }
    if (kind_ == "byte") {
      text.push_back(static_cast<char>(id));
    } else {
      append_utf8(text, code_points_[id]);
    }
  }
  return text;
}

std::string Tokenizer::to_json() const {
  if (bpe_) {
    // Written by hand so that each token and merge gets one line: readable and diffable.
    std::string out = fmt::format("{{\n \"format\": \"{}\",\n \"version\": {},\n \"kind\": \"bpe\",\n \"vocab_size\": {},\n",
                                  kFormatName, kFormatVersion, vocab_size());
    bpe_->append_json_members(out);
    return out + "}\n";
  }
  nlohmann::json json;
  json["format"] = kFormatName;
  json["version"] = kFormatVersion;
  json["kind"] = kind_;
  json["vocab_size"] = vocab_size();
  if (kind_ == "char") {
    nlohmann::json vocab = nlohmann::json::array();
    for (char32_t code_point : code_points_) {
      std::string symbol;
      append_utf8(symbol, code_point);
      vocab.push_back(symbol);
    }
    json["vocab"] = std::move(vocab);
  }
  return json.dump(1) + "\n";
}

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& source) {
  const std::string recreate = "re-create it with `lmtrain data prepare`";
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("tokenizer file '{}' is not valid JSON ({}); {}", source, e.what(), recreate));
  }
  if (!json.is_object() || !json.contains("format") || json["format"] != kFormatName) {
    throw Error(fmt::format("'{}' is not an lmtrain tokenizer file (expected \"format\": \"{}\"); "
                            "pass the tokenizer.json written by `lmtrain data prepare`",
                            source, kFormatName));
  }
  if (!json.contains("version") || !json["version"].is_number_integer() ||
      json["version"].get<int64_t>() != kFormatVersion) {
    throw Error(fmt::format("tokenizer file '{}' has version {}; this lmtrain reads version {}; {}",
                            source, json.value("version", nlohmann::json()).dump(), kFormatVersion,
                            recreate));
  }
  const nlohmann::json kind = json.value("kind", nlohmann::json());
  // A file's vocab_size must be the vocabulary it describes: a model is sized from it.
  auto checked = [&](Tokenizer tokenizer) {
    if (json.contains("vocab_size") && json["vocab_size"] != static_cast<int64_t>(tokenizer.vocab_size()))
      throw Error(fmt::format("tokenizer file '{}' (kind {}) says vocab_size {}, but its vocabulary has {} tokens; {}",
                              source, kind.dump(), json["vocab_size"].dump(), tokenizer.vocab_size(), recreate));
    return tokenizer;
  };
  if (kind == "byte") return checked(byte());
  if (kind == "bpe") return checked(Tokenizer(BpeModel::from_json(json, source)));
  if (kind != "char") {
    throw Error(fmt::format("tokenizer file '{}' has unknown kind {} (expected \"char\", \"byte\" or \"bpe\"); {}",
                            source, kind.dump(), recreate));
  }
  const nlohmann::json vocab = json.value("vocab", nlohmann::json());
  if (!vocab.is_array() || vocab.empty()) {
    throw Error(fmt::format("char tokenizer file '{}' has no \"vocab\" list of symbols; {}", source, recreate));
  }
  std::vector<char32_t> code_points;
  std::vector<bool> seen(0x110000, false);
  for (size_t id = 0; id < vocab.size(); ++id) {
    char32_t code_point = 0;
    const bool is_string = vocab[id].is_string();
    const std::string symbol = is_string ? vocab[id].get<std::string>() : std::string();
    if (!is_string || symbol.empty() || decode_utf8(symbol, 0, code_point) != static_cast<int>(symbol.size())) {
      throw Error(fmt::format("tokenizer file '{}': vocab entry {} ({}) is not exactly one character; {}",
                              source, id, vocab[id].dump(), recreate));
    }
    if (seen[code_point]) {
      throw Error(fmt::format("tokenizer file '{}': vocab entry {} ({}) appears twice; {}", source,
                              id, describe_code_point(code_point), recreate));
    }
    seen[code_point] = true;
    code_points.push_back(code_point);
  }
  if (json.contains("vocab_size") && json["vocab_size"] != static_cast<int64_t>(code_points.size())) {
    throw Error(fmt::format("tokenizer file '{}' says vocab_size {} but lists {} symbols; {}", source,
                            json["vocab_size"].dump(), code_points.size(), recreate));
  }
  return Tokenizer("char", std::move(code_points));
}

void Tokenizer::save(const std::string& path) const { write_file_atomic(path, to_json()); }

namespace {

// GPT-2's vocab.json: a non-empty object of token strings to integer ids. ("format" is a
// token of GPT-2's, so its presence alone does not make a file an lmtrain tokenizer.)
bool looks_like_gpt2_vocab(std::string_view text) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || json.empty()) return false;
  return std::all_of(json.begin(), json.end(), [](const nlohmann::json& id) { return id.is_number_integer(); });
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string text = read_file_bytes(path, "tokenizer file");
  if (looks_like_gpt2_vocab(text)) {
    const std::string merges_path = (std::filesystem::path(path).parent_path() / "merges.txt").string();
    if (!std::filesystem::exists(merges_path)) {
      throw Error(fmt::format("'{}' looks like GPT-2's vocab.json, but there is no merges.txt next to it "
                              "('{}'); put GPT-2's merges.txt there", path, merges_path));
    }
    return load_gpt2(path, merges_path);
  }
  return from_json(text, path);
}

}  // namespace lmt::data
