#include "data/loader.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace lmt::data {

TokenWindows::TokenWindows(std::span<const int32_t> tokens, int max_seq_len) : tokens_(tokens) {
  if (max_seq_len < 1) {
    throw Error(fmt::format("sequence length {} must be at least 1", max_seq_len));
  }
  const size_t needed = static_cast<size_t>(max_seq_len) + 1;
  if (tokens.size() < needed) {
    throw Error(fmt::format("the data has {} tokens but a sequence length of {} needs at least {} "
                            "(one window of T inputs plus the next token as target); use more "
                            "text or a shorter sequence length",
                            tokens.size(), max_seq_len, needed));
  }
}

void TokenWindows::check_shape(const char* caller, int B, int T) const {
  if (B < 1) throw Error(fmt::format("TokenWindows::{}: batch size {} must be at least 1", caller, B));
  if (T < 1 || static_cast<size_t>(T) + 1 > tokens_.size()) {
    throw Error(fmt::format("TokenWindows::{}: sequence length {} needs at least {} tokens but "
                            "the data has {}", caller, T, static_cast<int64_t>(T) + 1, tokens_.size()));
  }
}

void TokenWindows::copy_window(size_t start, int T, int32_t* inputs_row, int32_t* targets_row) const {
  const int32_t* window = tokens_.data() + start;
  std::copy(window, window + T, inputs_row);
  std::copy(window + 1, window + T + 1, targets_row);
}

void TokenWindows::sample_batch(uint64_t seed, uint64_t batch_index, int B, int T, int32_t* inputs,
                                int32_t* targets) const {
  check_shape("sample_batch", B, T);
  const uint64_t num_starts = tokens_.size() - static_cast<size_t>(T);  // starts 0 .. n-T-1
  for (int row = 0; row < B; ++row) {
    // Modulo bias is below num_starts / 2^64: irrelevant for any real token count.
    const uint64_t start = hash_combine(seed, batch_index, static_cast<uint64_t>(row)) % num_starts;
    copy_window(start, T, inputs + static_cast<size_t>(row) * T, targets + static_cast<size_t>(row) * T);
  }
}

void TokenWindows::eval_batch(int batch_index, int num_batches, int B, int T, int32_t* inputs,
                              int32_t* targets) const {
  check_shape("eval_batch", B, T);
  if (num_batches < 1 || batch_index < 0 || batch_index >= num_batches) {
    throw Error(fmt::format("TokenWindows::eval_batch: batch {} is outside [0, num_batches = {})",
                            batch_index, num_batches));
  }
  const uint64_t last_start = tokens_.size() - static_cast<size_t>(T) - 1;
  const uint64_t num_windows = static_cast<uint64_t>(num_batches) * static_cast<uint64_t>(B);
  const uint64_t divisor = std::max<uint64_t>(1, num_windows - 1);
  for (int row = 0; row < B; ++row) {
    const uint64_t window = static_cast<uint64_t>(batch_index) * B + row;
    // 128-bit product: window * last_start overflows 64 bits for very large arrays.
    const auto start = static_cast<uint64_t>(static_cast<unsigned __int128>(window) * last_start / divisor);
    copy_window(start, T, inputs + static_cast<size_t>(row) * T, targets + static_cast<size_t>(row) * T);
  }
}

}  // namespace lmt::data
