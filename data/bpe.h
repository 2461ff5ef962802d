// Byte-level BPE, as GPT-2 does it.
//
// Text is first cut into pieces by GPT-2's pre-tokenizer (data/pretokenize.h); each piece starts
// as one token per byte and merges are applied inside it, always the adjacent pair with the
// lowest rank (all its occurrences, left to right), until no adjacent pair has a merge. Any byte
// string encodes, and decode(encode(x)) == x for every x.
//
// A model is: for each id its byte string; for each of the 256 bytes its id; the merges in rank
// order, each (left id, right id) -> the id whose bytes are the two concatenated; and special
// tokens (name -> id) that decode to their name. Byte strings of ordinary tokens are unique, so
// a merge's result is implied by its two sides.
//
// Training (count_pieces*, BpeModel::train) gives ids 0..255 to the bytes (id = byte value),
// then one id per new token in the order the merges create them, then the special tokens.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lmt::data {

inline constexpr std::string_view kEndOfText = "<|endoftext|>";

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

// How often each pre-tokenized piece occurs: the input to training. Looked up by string_view.
using PieceCounts = std::unordered_map<std::string, int64_t, TransparentStringHash, std::equal_to<>>;

// Throws lmt::Error unless `path` exists and is not a directory.
void check_input_file(const std::string& path);

// Adds the pieces of `text` to `counts`. Chunks of the text, cut at safe split points, are
// counted on `num_threads` threads (0 = all hardware threads); the counts do not depend on it.
void count_pieces(std::string_view text, int num_threads, PieceCounts& counts);

// count_pieces over a file read in blocks of `max_block_bytes`, each counted up to its last
// safe split point, so memory stays bounded by about a block (unless the text has no suitable
// newline for longer) plus the counts. Calls on_progress(bytes of this file done) after each
// counted block. Errors name the file.
void count_file_pieces(const std::string& path, int num_threads, PieceCounts& counts,
                       const std::function<void(int64_t)>& on_progress = {},
                       size_t max_block_bytes = size_t{64} << 20);

struct BpeTrainProgress {
  enum class Phase { kCounting, kMerging };
  Phase phase = Phase::kCounting;
  int64_t done = 0;   // counting: input bytes; merging: tokens learned
  int64_t total = 0;  // counting: all input bytes; merging: tokens to learn
};

struct BpeTrainOptions {
  // The whole vocabulary: 256 byte tokens + learned tokens + special tokens.
  int vocab_size = 0;
  std::vector<std::string> special_tokens = {std::string(kEndOfText)};
  // Threads for counting pieces (0 = all hardware threads). The result does not depend on it.
  int num_threads = 0;
  // Called from the calling thread after each counted block, every 1% of the learned tokens
  // and at the end of merging.
  std::function<void(const BpeTrainProgress&)> progress;
};

struct BpeTrainSummary {
  int vocab_size = 0;  // what was reached, special tokens included
  int num_merges = 0;  // one per learned token
  int64_t num_input_bytes = 0;
  int64_t num_distinct_pieces = 0;
  // The pieces ran out of adjacent pairs before vocab_size was reached; the vocabulary is then
  // smaller than asked (vocab_size says how large), which is not an error.
  bool ran_out_of_pairs = false;
  double count_seconds = 0;
  double merge_seconds = 0;
};

// Throws lmt::Error if vocab_size is below 256 + the number of special tokens, or a special
// token name is empty, repeated or not UTF-8. BpeModel::train calls it; callers that count
// pieces first can call it earlier to fail fast.
void check_bpe_train_options(const BpeTrainOptions& options);

class BpeModel {
 public:
  struct SpecialToken {
    std::string name;
    int32_t id = 0;
  };
  struct Merge {
    int32_t rank = 0;
    int32_t id = 0;  // the merged token
  };

  // Checks the tables and builds the lookups; every problem is an lmt::Error naming `source`.
  // `tokens`: each id's bytes (a special token's are its name). `merges`: (left, right) ids in
  // rank order; their concatenation must be an ordinary token. Every byte needs a token, and
  // every ordinary token longer than one byte must be the result of some merge.
  BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges,
           std::vector<SpecialToken> special_tokens, const std::string& source);

  // Learns merges from piece counts, by the incremental algorithm: pair counts and a pair ->
  // pieces index are updated only where a merge changed something, and a max-heap (with stale
  // entries skipped) finds the next pair. The most frequent pair is merged first; ties go to
  // the pair whose (left bytes, right bytes) sorts first, so the result is deterministic.
  // Checks the options with check_bpe_train_options.
  static BpeModel train(const PieceCounts& counts, const BpeTrainOptions& options,
                        BpeTrainSummary* summary = nullptr);

  // Reads GPT-2's vocab.json (GPT-2 byte-to-unicode strings -> ids) and merges.txt (optional
  // "#version" line, then "left right" per line in rank order). Entries of the form <|...|>
  // that no merge produces, such as <|endoftext|>, are special tokens. Errors name the file
  // and the line or entry.
  static BpeModel load_gpt2(const std::string& vocab_json_path, const std::string& merges_txt_path);

  // GPT-2's two files for this model, the inverse of load_gpt2: vocab.json maps each token's
  // bytes in GPT-2's byte alphabet to its id (in id order); merges.txt is a "#version: 0.2"
  // line, then "left right" per merge in rank order.
  std::string gpt2_vocab_json() const;
  std::string gpt2_merges_txt() const;

  // The "pretokenizer", "tokens", "merges" and "special_tokens" members of the lmtrain
  // tokenizer JSON (see data/tokenizer.h). Errors name `source` and the entry.
  static BpeModel from_json(const nlohmann::json& json, const std::string& source);
  // Appends those members, one "key": value per line, each preceded by " " and followed by ",\n"
  // except the last, which ends in "\n".
  void append_json_members(std::string& out) const;

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  const std::string& token_bytes(int32_t id) const { return tokens_.at(id); }
  int32_t byte_id(unsigned char byte) const { return byte_ids_[byte]; }
  // (left, right) in rank order.
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }
  std::optional<Merge> find_merge(int32_t left, int32_t right) const;
  const std::vector<SpecialToken>& special_tokens() const { return special_tokens_; }
  std::optional<int32_t> special_id(std::string_view name) const;

  // Plain text only: special token names in `text` are encoded as ordinary bytes, never as
  // their special ids. Never throws for any input bytes.
  std::vector<int32_t> encode(std::string_view text) const;
  // Same result as encode(); chunks cut at safe split points are encoded on `num_threads`
  // threads (0 = all hardware threads).
  std::vector<int32_t> encode_parallel(std::string_view text, int num_threads) const;
  // encode() of each text, the texts handed out to `num_threads` threads (0 = all), each thread
  // keeping one piece cache across its texts: many short documents encode as fast as one long one.
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string_view> texts, int num_threads) const;
  // Concatenated bytes; throws lmt::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids) const;

 private:
  class PieceCache;

  // Ordinary token bytes -> id (views into tokens_).
  using TokenIndex = std::unordered_map<std::string_view, int32_t>;

  void mark_special_tokens(const std::string& source);
  TokenIndex index_tokens(const std::string& source);
  void add_merges(const std::vector<std::pair<int32_t, int32_t>>& merges, const TokenIndex& index,
                  const std::string& source);
  void check_every_token_reachable(const std::string& source) const;
  // Appends the ids of `text`; cached pieces must point into text that outlives `cache`.
  void encode_into(std::string_view text, PieceCache& cache, std::vector<int32_t>& ids) const;
  // Appends the ids of one piece; `parts` is scratch space.
  void encode_piece(std::string_view piece, PieceCache& cache, std::vector<int32_t>& parts,
                    std::vector<int32_t>& ids) const;
  void merge_by_scanning(std::vector<int32_t>& parts) const;
  void merge_with_heap(std::vector<int32_t>& parts) const;

  std::vector<std::string> tokens_;                  // id -> bytes
  std::array<int32_t, 256> byte_ids_{};              // byte -> id
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> (left, right)
  std::vector<int32_t> merge_ids_;                   // rank -> merged id
  std::unordered_map<uint64_t, Merge> merge_of_pair_;
  std::vector<SpecialToken> special_tokens_;
  std::vector<bool> is_special_;                     // id -> special?
};

// GPT-2's bytes_to_unicode: each byte as one printable code point (printable Latin-1 bytes
// map to themselves, the others to U+0100 and up), so byte strings can be written as text.
std::string bytes_to_gpt2_text(std::string_view bytes);
// The inverse. Returns nullopt if `text` has a character outside that alphabet or is not UTF-8.
std::optional<std::string> gpt2_text_to_bytes(std::string_view text);

}  // namespace lmt::data
