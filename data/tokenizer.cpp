#include "data/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace lmt::data {

namespace {

constexpr int kByteVocabSize = 256;
constexpr const char* kFormatName = "lmtrain-tokenizer";
constexpr int kFormatVersion = 1;

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Decodes one code point at text[0..]. Returns its length in bytes, or 0 if the bytes there are
// not a valid, shortest-form UTF-8 sequence. Strict on purpose: accepting overlong forms would
// give one character two different byte spellings.
int decode_utf8(std::string_view text, size_t offset, char32_t& code_point) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data()) + offset;
  const size_t remaining = text.size() - offset;
  const unsigned char lead = bytes[0];
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  int length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (remaining < static_cast<size_t>(length)) return 0;
  if (bytes[1] < second_min || bytes[1] > second_max) return 0;
  for (int i = 2; i < length; ++i) {
    if (!is_continuation(bytes[i])) return 0;
  }
  char32_t value = lead & (0xFF >> (length + 1));
  for (int i = 1; i < length; ++i) value = (value << 6) | (bytes[i] & 0x3F);
  code_point = value;
  return length;
}

void append_utf8(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

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

int Tokenizer::vocab_size() const {
  return kind_ == "byte" ? kByteVocabSize : static_cast<int>(code_points_.size());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
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
  if (kind == "byte") return byte();
  if (kind != "char") {
    throw Error(fmt::format("tokenizer file '{}' has unknown kind {} (expected \"char\" or \"byte\"); {}",
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

Tokenizer Tokenizer::load(const std::string& path) {
  return from_json(read_file_bytes(path, "tokenizer file"), path);
}

}  // namespace lmt::data
