// Fixed-length training and evaluation windows over one token array.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace lmt::data {

// A non-owning view of a token array (the caller keeps the tokens alive, e.g. a Shard) that
// cuts (inputs, targets) batches of shape (B, T): targets are the inputs shifted by one token.
class TokenWindows {
 public:
  // Throws lmt::Error if tokens has fewer than max_seq_len + 1 tokens (the message says how
  // many are needed; the caller adds the file name). max_seq_len is the largest T any later
  // call will use (the sequence length may grow on a schedule, up to it).
  TokenWindows(std::span<const int32_t> tokens, int max_seq_len);

  // B random windows of T + 1 tokens, start uniform in [0, n - T - 1]. The randomness of row r
  // is hash_combine(seed, batch_index, r) alone: no generator state, so a data stream resumes
  // from batch_index (saved in checkpoints) and is identical however it was reached.
  // inputs, targets: (B, T) row-major. Throws lmt::Error for B < 1 or T outside [1, n - 1].
  void sample_batch(uint64_t seed, uint64_t batch_index, int B, int T, int32_t* inputs,
                    int32_t* targets) const;

  // Batch batch_index of num_batches fixed evaluation batches: the num_batches * B windows are
  // spread evenly over the whole array (window k starts at k * (n - T - 1) / max(1, W - 1) with
  // W = num_batches * B, so the first starts at 0 and the last ends at the last token). The
  // same every call, so evaluation losses are comparable across steps and runs.
  void eval_batch(int batch_index, int num_batches, int B, int T, int32_t* inputs,
                  int32_t* targets) const;

  size_t size() const { return tokens_.size(); }
  std::span<const int32_t> tokens() const { return tokens_; }

 private:
  void check_shape(const char* caller, int B, int T) const;
  void copy_window(size_t start, int T, int32_t* inputs_row, int32_t* targets_row) const;

  std::span<const int32_t> tokens_;
};

}  // namespace lmt::data
