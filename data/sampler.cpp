#include "data/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace lmt::data {
namespace {

// Tags keep the hash streams for the different random choices apart.
constexpr uint64_t kFileOrderTag = 0x66696c65;  // "file"
constexpr uint64_t kOffsetTag = 0x6f666673;     // "offs"
constexpr uint64_t kWindowTag = 0x77696e64;     // "wind"

void shuffle(std::vector<uint32_t>& items, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
}

}  // namespace

WindowSampler::WindowSampler(const TokenDataset& dataset, int window_tokens, uint64_t seed)
    : dataset_(&dataset), stride_(window_tokens), seed_(seed) {
  if (window_tokens < 1) throw Error(fmt::format("window length {} must be at least 1", window_tokens));
  if (dataset.files.empty()) throw Error(fmt::format("{}: the dataset has no files", dataset.key));
  check_min_tokens(dataset, static_cast<uint64_t>(window_tokens) + 1);
  for (const auto& f : dataset.files) {
    if ((f.size() - 1) / static_cast<uint64_t>(stride_) >= UINT32_MAX)
      throw Error(fmt::format("{}: '{}' has more than 2^32 windows of {} tokens; split it into smaller shards",
                              dataset.key, f.path(), stride_));
  }
}

uint64_t WindowSampler::grid_offset(uint64_t epoch, uint32_t file) const {
  // With at least two windows, any offset below the stride still leaves one window; with one,
  // only the slack after it may be used.
  const uint64_t usable = dataset_->files[file].size() - 1;
  const uint64_t whole = usable / stride_;
  const uint64_t range = whole >= 2 ? stride_ : usable - whole * stride_ + 1;
  // Epoch 0 starts on the natural grid; later epochs shift it.
  if (epoch == 0) return 0;
  return hash_combine(seed_, kOffsetTag, epoch, file) % range;
}

uint64_t WindowSampler::windows_in(uint64_t epoch, uint32_t file) const {
  return (dataset_->files[file].size() - 1 - grid_offset(epoch, file)) / stride_;
}

void WindowSampler::prepare_epoch() {
  if (order_epoch_ == position_.epoch) return;
  file_order_.resize(dataset_->files.size());
  std::iota(file_order_.begin(), file_order_.end(), 0u);
  shuffle(file_order_, hash_combine(seed_, kFileOrderTag, position_.epoch));
  order_epoch_ = position_.epoch;
}

void WindowSampler::prepare_file() {
  prepare_epoch();
  if (windows_epoch_ == position_.epoch && windows_shard_ == position_.shard) return;
  const uint32_t file = file_order_[position_.shard];
  offset_ = grid_offset(position_.epoch, file);
  window_order_.resize(windows_in(position_.epoch, file));
  std::iota(window_order_.begin(), window_order_.end(), 0u);
  shuffle(window_order_, hash_combine(seed_, kWindowTag, position_.epoch, file));
  windows_epoch_ = position_.epoch;
  windows_shard_ = position_.shard;
}

std::vector<WindowRef> WindowSampler::next(size_t count) {
  std::vector<WindowRef> out;
  out.reserve(count);
  while (out.size() < count) {
    prepare_file();
    const uint32_t file = file_order_[position_.shard];
    while (out.size() < count && position_.window < window_order_.size()) {
      out.push_back({file, offset_ + static_cast<uint64_t>(window_order_[position_.window]) * stride_});
      ++position_.window;
    }
    if (position_.window == window_order_.size()) {
      position_.window = 0;
      if (++position_.shard == dataset_->files.size()) {
        position_.shard = 0;
        ++position_.epoch;
      }
    }
  }
  return out;
}

void WindowSampler::seek(const DataPosition& position) {
  if (position.shard >= dataset_->files.size())
    throw Error(fmt::format("{}: the saved data position is in file {} of the epoch, but the dataset "
                            "has {} files", dataset_->key, position.shard + 1, dataset_->files.size()));
  position_ = position;
  prepare_file();
  if (position.window >= window_order_.size()) {
    const auto windows = window_order_.size();
    position_ = {};
    throw Error(fmt::format("{}: the saved data position is window {} of a file that has {} windows "
                            "of {} tokens", dataset_->key, position.window, windows, stride_));
  }
}

std::span<const WindowRef> rank_slice(std::span<const WindowRef> global, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size || global.size() % world_size != 0)
    throw Error(fmt::format("cannot split {} windows over {} ranks (rank {}): the global batch must "
                            "be a multiple of the world size", global.size(), world_size, rank));
  const size_t per_rank = global.size() / world_size;
  return global.subspan(per_rank * rank, per_rank);
}

void read_windows(const TokenDataset& dataset, std::span<const WindowRef> windows, int T,
                  int32_t* inputs, int32_t* targets) {
  for (size_t i = 0; i < windows.size(); ++i) {
    const TokenFile& file = dataset.files.at(windows[i].file);
    file.read(windows[i].start, static_cast<size_t>(T), inputs + i * T);
    file.read(windows[i].start + 1, static_cast<size_t>(T), targets + i * T);
  }
}

std::vector<WindowRef> eval_windows(const TokenDataset& dataset, uint64_t num_windows, int T) {
  // Valid starts of file f: 0 .. size - T - 1, i.e. size - T of them.
  std::vector<uint64_t> starts;
  uint64_t total = 0;
  for (const auto& f : dataset.files) {
    const uint64_t n = f.size() > static_cast<uint64_t>(T) ? f.size() - T : 0;
    starts.push_back(n);
    total += n;
  }
  if (total == 0 || T < 1)
    throw Error(fmt::format("{}: no file holds a window of {} tokens (T + 1)", dataset.key, T + 1));
  std::vector<WindowRef> out;
  out.reserve(num_windows);
  const uint64_t divisor = std::max<uint64_t>(1, num_windows - 1);
  uint32_t file = 0;
  uint64_t before = 0;  // valid starts in the files before `file`
  for (uint64_t k = 0; k < num_windows; ++k) {
    // 128-bit product: k * (total - 1) can overflow 64 bits for very large datasets.
    const auto v = static_cast<uint64_t>(static_cast<unsigned __int128>(k) * (total - 1) / divisor);
    while (v >= before + starts[file]) before += starts[file++];
    out.push_back({file, v - before});
  }
  return out;
}

}  // namespace lmt::data
