// Tokenizers that map text to token ids and back.
//
//   char: one id per distinct Unicode code point of the training text, ids in code point order
//         (nanoGPT's shakespeare_char: tinyshakespeare gives 65 symbols). Needs valid UTF-8.
//   byte: 256 ids, id = byte value. Accepts any input, so it is the fallback for binary or
//         non-UTF-8 text.
//
// A tokenizer is saved as JSON next to the token shards so that sampling and evaluation decode
// with exactly the vocabulary the model was trained on:
//   {"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab_size": 65,
//    "vocab": ["\n", " ", "!", ...]}          ("vocab" only for char; id = position in it)
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lmt::data {

// Byte offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF count as invalid), or nullopt if `text` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view text);

class Tokenizer {
 public:
  // Vocabulary = the sorted distinct code points of `text`. Throws lmt::Error on invalid UTF-8
  // (naming the byte offset) or empty text.
  static Tokenizer build_char(std::string_view text);
  // The 256-symbol byte tokenizer.
  static Tokenizer byte();

  // Reads a tokenizer file written by save(); every problem is an lmt::Error naming `path`.
  static Tokenizer load(const std::string& path);
  // Writes the JSON form atomically (temporary file + rename).
  void save(const std::string& path) const;
  // The JSON text that save() writes, and its inverse. `source` names where the text came from
  // (a path) in error messages.
  std::string to_json() const;
  static Tokenizer from_json(std::string_view json_text, const std::string& source);

  int vocab_size() const;
  // "char" or "byte".
  const std::string& kind() const { return kind_; }
  // char only: the code point of each id (empty for byte).
  const std::vector<char32_t>& code_points() const { return code_points_; }

  // Throws lmt::Error for invalid UTF-8 or (char) a code point outside the vocabulary.
  std::vector<int32_t> encode(std::string_view text) const;
  // Throws lmt::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids) const;

 private:
  Tokenizer(std::string kind, std::vector<char32_t> code_points);

  std::string kind_;
  std::vector<char32_t> code_points_;  // char: id -> code point
  std::vector<int32_t> id_of_;         // char: code point -> id, -1 if absent (dense for speed)
};

}  // namespace lmt::data
