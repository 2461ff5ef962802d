// Which token windows each step trains on, and which ones evaluation uses.
//
// Training: every file of the dataset is cut into windows of `window_tokens + 1` tokens (T_max
// inputs plus the next token as the last target), consecutive windows overlapping by that one
// token. An epoch visits every window exactly once: the files in a seeded random order, and the
// windows of each file in a seeded random order. Each epoch draws a fresh order, and also shifts
// each file's window grid by a random offset, so that window boundaries differ between epochs.
// Everything is derived from (seed, epoch, file) by hashing, so the whole stream is fixed by the
// seed, and a DataPosition of three integers resumes it exactly.
//
// The stream is global: a step takes the next global_batch_size windows, and rank r of W uses
// its contiguous slice of them (rank_slice). The ranks therefore see disjoint windows whose union
// is what one rank would see, for any W. A step that trains at a shorter T (progressive sequence
// length) uses the first T + 1 tokens of each window.
//
// Evaluation: eval_windows() spreads a fixed number of windows evenly over the whole dataset;
// they depend only on the dataset and T, never on the world size or the step.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "data/dataset.h"

namespace lmt::data {

struct WindowRef {
  uint32_t file = 0;   // index into TokenDataset::files
  uint64_t start = 0;  // first token of the window
  bool operator==(const WindowRef&) const = default;
  auto operator<=>(const WindowRef&) const = default;
};

// Where the training stream stands: the next window is window `window` (in the shuffled order) of
// file `shard` (in the shuffled file order) of epoch `epoch`.
struct DataPosition {
  uint64_t epoch = 0;
  uint64_t shard = 0;
  uint64_t window = 0;
  bool operator==(const DataPosition&) const = default;
};

class WindowSampler {
 public:
  // The dataset must outlive the sampler, and every file must hold at least window_tokens + 1
  // tokens (open_dataset checks it); otherwise lmt::Error naming the file.
  WindowSampler(const TokenDataset& dataset, int window_tokens, uint64_t seed);

  // The next `count` windows of the stream; the position advances past them.
  std::vector<WindowRef> next(size_t count);

  const DataPosition& position() const { return position_; }
  // Continues from a saved position. Throws lmt::Error if it does not fit this dataset.
  void seek(const DataPosition& position);

  // Windows in file `file` during epoch `epoch` (for tests and progress reports).
  uint64_t windows_in(uint64_t epoch, uint32_t file) const;
  uint64_t seed() const { return seed_; }
  int window_tokens() const { return stride_; }

 private:
  // File order of position_.epoch and window order of the current file, built on demand.
  void prepare_epoch();
  void prepare_file();
  uint64_t grid_offset(uint64_t epoch, uint32_t file) const;

  const TokenDataset* dataset_;
  int stride_;
  uint64_t seed_;
  DataPosition position_;
  uint64_t order_epoch_ = UINT64_MAX;
  std::vector<uint32_t> file_order_;
  uint64_t windows_epoch_ = UINT64_MAX;
  uint64_t windows_shard_ = UINT64_MAX;
  std::vector<uint32_t> window_order_;
  uint64_t offset_ = 0;
};

// Rank `rank`'s slice of a global batch of windows: [rank * n / W, (rank + 1) * n / W).
// Throws lmt::Error unless W divides n.
std::span<const WindowRef> rank_slice(std::span<const WindowRef> global, int rank, int world_size);

// Copies each window's first T + 1 tokens: inputs row i = tokens [start, start + T), targets row
// i = tokens [start + 1, start + T + 1). inputs and targets hold windows.size() * T ids.
void read_windows(const TokenDataset& dataset, std::span<const WindowRef> windows, int T,
                  int32_t* inputs, int32_t* targets);

// num_windows fixed evaluation windows of T + 1 tokens, spread evenly over the dataset: the
// valid starts of all files are laid end to end and window k takes the start at position
// k * (S - 1) / (num_windows - 1) of the S starts, so the first window starts the first file and
// the last one ends the last file. Windows overlap when the dataset is small.
std::vector<WindowRef> eval_windows(const TokenDataset& dataset, uint64_t num_windows, int T);

}  // namespace lmt::data
