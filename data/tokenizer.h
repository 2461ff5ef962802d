// Tokenizers that map text to token ids and back.
//
//   char: one id per distinct Unicode code point of the training text, ids in code point order
//         (nanoGPT's shakespeare_char: tinyshakespeare gives 65 symbols). Needs valid UTF-8.
//   byte: 256 ids, id = byte value. Accepts any input, so it is the fallback for binary or
//         non-UTF-8 text.
//   bpe:  byte-level BPE with GPT-2's pre-tokenizer (data/bpe.h): trained here, or GPT-2's own
//         vocab.json + merges.txt. Accepts any input.
//
// A tokenizer is saved as JSON next to the token shards so that sampling and evaluation decode
// with exactly the vocabulary the model was trained on:
//   {"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab_size": 65,
//    "vocab": ["\n", " ", "!", ...]}          ("vocab" only for char; id = position in it)
//   {"format": "lmtrain-tokenizer", "version": 1, "kind": "bpe", "vocab_size": 512,
//    "pretokenizer": "gpt2", "special_tokens": {"<|endoftext|>": 511},
//    "tokens": ["Ā", "ā", ..., "Ġt", ...],   (each id's bytes in GPT-2's byte-to-unicode alphabet)
//    "merges": [[71, 84], ...]}              (id pairs in rank order; the result is the token
//                                             whose bytes are the two concatenated)
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/bpe.h"

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
  // Trains a BPE tokenizer on the files, read one after the other in blocks (see BpeModel::train
  // and count_file_pieces). Checks that every file exists before reading any.
  static Tokenizer train_bpe(const std::vector<std::string>& input_paths, const BpeTrainOptions& options,
                             BpeTrainSummary* summary = nullptr);
  // The same on text in memory.
  static Tokenizer train_bpe_on_text(std::string_view text, const BpeTrainOptions& options,
                                     BpeTrainSummary* summary = nullptr);
  // GPT-2's files; see BpeModel::load_gpt2.
  static Tokenizer load_gpt2(const std::string& vocab_json_path, const std::string& merges_txt_path);

  // Reads a tokenizer file written by save(); every problem is an lmt::Error naming `path`.
  // Also takes GPT-2's vocab.json (a JSON object of strings to ids, without "format") when a
  // merges.txt sits next to it.
  static Tokenizer load(const std::string& path);
  // Writes the JSON form atomically (temporary file + rename).
  void save(const std::string& path) const;
  // The JSON text that save() writes, and its inverse. `source` names where the text came from
  // (a path) in error messages.
  std::string to_json() const;
  static Tokenizer from_json(std::string_view json_text, const std::string& source);

  int vocab_size() const;
  // "char", "byte" or "bpe".
  const std::string& kind() const { return kind_; }
  // char only: the code point of each id (empty for byte and bpe).
  const std::vector<char32_t>& code_points() const { return code_points_; }
  // bpe only: the model (nullptr for char and byte).
  const BpeModel* bpe() const { return bpe_.get(); }
  // The id of <|endoftext|> (bpe with that special token); nullopt otherwise.
  std::optional<int32_t> eot_id() const;

  // char: throws lmt::Error for invalid UTF-8 or a code point outside the vocabulary. byte and
  // bpe accept any bytes; bpe treats special token names in the text as plain text.
  std::vector<int32_t> encode(std::string_view text) const;
  // encode() on `num_threads` threads (0 = all) for bpe, with the same result; char and byte
  // just call encode().
  std::vector<int32_t> encode_parallel(std::string_view text, int num_threads) const;
  // encode() of each text on `num_threads` threads (0 = all); the same results as one encode()
  // per text, faster for many short documents (bpe keeps its piece cache across them).
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string_view> texts, int num_threads) const;
  // Throws lmt::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids) const;

 private:
  Tokenizer(std::string kind, std::vector<char32_t> code_points);
  explicit Tokenizer(BpeModel model);

  std::string kind_;
  std::vector<char32_t> code_points_;  // char: id -> code point
  std::vector<int32_t> id_of_;         // char: code point -> id, -1 if absent (dense for speed)
  std::shared_ptr<const BpeModel> bpe_;  // bpe; shared so that copies stay cheap
};

}  // namespace lmt::data
