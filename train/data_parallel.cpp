#include "train/data_parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace lmt {

DataParallel::DataParallel(ProcessGroup& group, int zero_stage, size_t num_params, Backend& backend,
                           ProcessGroup* arena_group)
    : group_(group),
      arena_group_(arena_group ? *arena_group : group),
      backend_(backend),
      n_(num_params),
      sharded_(zero_stage == 1 && group.size() > 1) {
  const size_t ranks = static_cast<size_t>(group.size());
  // Equal shards (the last one padded) so that the collectives move equal blocks.
  shard_size_ = sharded_ ? (n_ + ranks - 1) / ranks : n_;
  begin_ = sharded_ ? std::min(n_, shard_size_ * static_cast<size_t>(group.rank())) : 0;
  end_ = sharded_ ? std::min(n_, begin_ + shard_size_) : n_;
}

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

// The communication thread: reduces the buckets handed over, in order, one at a time.
struct DataParallel::Overlap {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<size_t> queue;
  size_t handed = 0, reduced = 0;
  bool stop = false;
  double comm_ms = 0;
  std::exception_ptr error;  // a failed collective, rethrown on the training thread
  float* grads = nullptr;
  std::thread thread;
};

DataParallel::~DataParallel() {
  if (overlap_) {
    {
      std::lock_guard<std::mutex> lock(overlap_->mutex);
      overlap_->stop = true;
    }
    overlap_->changed.notify_all();
    overlap_->thread.join();
  }
  if (padded_) backend_.free(padded_);
  if (shard_) backend_.free(shard_);
  if (staging_) backend_.free(staging_);
}

void DataParallel::use_buckets(std::vector<GradBucket> buckets, bool overlap) {
  if (sharded_ || group_.size() == 1) return;
  buckets_ = std::move(buckets);
  size_t staging = 0;
  staging_offset_.assign(buckets_.size(), 0);
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (buckets_[i].slices.size() > 1) {
      staging_offset_[i] = staging;
      staging += buckets_[i].numel;
    }
  if (staging > 0) staging_ = static_cast<float*>(backend_.alloc(staging * sizeof(float)));
  if (!overlap) return;
  overlap_ = std::make_unique<Overlap>();
  Overlap* o = overlap_.get();
  o->thread = std::thread([this, o] {
    std::unique_lock<std::mutex> lock(o->mutex);
    while (true) {
      o->changed.wait(lock, [o] { return o->stop || !o->queue.empty(); });
      if (o->stop) return;
      const size_t i = o->queue.front();
      o->queue.pop_front();
      lock.unlock();
      const auto t = Clock::now();
      std::exception_ptr error;
      try {
        if (!o->error) reduce_bucket(i, o->grads);
      } catch (...) {
        error = std::current_exception();
      }
      const double ms = ms_since(t);
      lock.lock();
      if (error && !o->error) o->error = error;
      o->comm_ms += ms;
      ++o->reduced;
      o->changed.notify_all();
    }
  });
}

std::function<void(int)> DataParallel::backward_hook(float* grads) {
  if (!overlap_) return {};
  {
    std::lock_guard<std::mutex> lock(overlap_->mutex);
    overlap_->grads = grads;
    overlap_->comm_ms = 0;
  }
  return [this, grads](int group) {
    for (size_t i = overlap_->handed; i < buckets_.size() && buckets_[i].ready_group <= group; ++i) {
      pack(i, grads);  // on this (the training) thread, before the backward pass goes on
      std::lock_guard<std::mutex> lock(overlap_->mutex);
      overlap_->queue.push_back(i);
      overlap_->handed = i + 1;
      overlap_->changed.notify_all();
    }
  };
}

void DataParallel::pack(size_t i, float* grads) {
  const GradBucket& b = buckets_[i];
  if (b.slices.size() == 1) return;
  float* out = staging_ + staging_offset_[i];
  for (const GradSlice& s : b.slices) {
    backend_.copy(out, grads + s.offset, s.count * sizeof(float));
    out += s.count;
  }
}

void DataParallel::reduce_bucket(size_t i, float* grads) {
  const GradBucket& b = buckets_[i];
  if (b.slices.size() == 1) {
    arena_group_.all_reduce(grads + b.slices[0].offset, b.numel, ReduceOp::kAvg);
    return;
  }
  float* packed = staging_ + staging_offset_[i];
  arena_group_.all_reduce(packed, b.numel, ReduceOp::kAvg);
  for (const GradSlice& s : b.slices) {
    backend_.copy(grads + s.offset, packed, s.count * sizeof(float));
    packed += s.count;
  }
}

void DataParallel::ensure_buffers() {
  if (padded_) return;
  // alloc zero-fills: the padding past n stays zero.
  padded_ = static_cast<float*>(backend_.alloc(shard_size_ * static_cast<size_t>(group_.size()) * sizeof(float)));
  shard_ = static_cast<float*>(backend_.alloc(shard_size_ * sizeof(float)));
}

double DataParallel::reduce_gradients(float* grads) {
  if (group_.size() == 1) return std::sqrt(backend_.sum_squares(grads, n_));
  // The collectives may run on another stream than the backward pass (NCCL).
  if (!sharded_ && overlap_) {
    const auto t = Clock::now();
    std::unique_lock<std::mutex> lock(overlap_->mutex);
    LMT_CHECK(overlap_->handed == buckets_.size(),
              fmt::format("backward pass handed over {} of {} gradient buckets", overlap_->handed, buckets_.size()));
    overlap_->changed.wait(lock, [this] { return overlap_->reduced == buckets_.size(); });
    comm_times_ = {overlap_->comm_ms, ms_since(t)};
    overlap_->handed = overlap_->reduced = 0;
    if (overlap_->error) {
      std::exception_ptr error = overlap_->error;
      overlap_->error = nullptr;
      std::rethrow_exception(error);
    }
    lock.unlock();
    return std::sqrt(backend_.sum_squares(grads, n_));
  }
  if (!sharded_ && !buckets_.empty()) {
    const auto t = Clock::now();
    backend_.synchronize();
    for (size_t i = 0; i < buckets_.size(); ++i) {
      pack(i, grads);
      backend_.synchronize();
      reduce_bucket(i, grads);
    }
    comm_times_ = {ms_since(t), ms_since(t)};
    return std::sqrt(backend_.sum_squares(grads, n_));
  }
  if (!sharded_) {
    const auto t = Clock::now();
    backend_.synchronize();
    arena_group_.all_reduce(grads, n_, ReduceOp::kAvg);
    comm_times_ = {ms_since(t), ms_since(t)};
    return std::sqrt(backend_.sum_squares(grads, n_));
  }
  ensure_buffers();
  backend_.copy(padded_, grads, n_ * sizeof(float));
  backend_.synchronize();
  arena_group_.reduce_scatter(padded_, shard_, shard_size_, ReduceOp::kAvg);
  backend_.copy(grads + begin_, shard_, (end_ - begin_) * sizeof(float));
  float squares = static_cast<float>(backend_.sum_squares(grads + begin_, end_ - begin_));
  group_.all_reduce(&squares, 1, ReduceOp::kSum);
  return std::sqrt(static_cast<double>(squares));
}

double DataParallel::average(double value) {
  if (group_.size() == 1) return value;
  float local = static_cast<float>(value);
  group_.all_reduce(&local, 1, ReduceOp::kAvg);
  return local;
}

void DataParallel::gather_parameters(float* params) {
  if (!sharded_) return;
  ensure_buffers();
  backend_.copy(shard_, params + begin_, (end_ - begin_) * sizeof(float));
  backend_.synchronize();
  arena_group_.all_gather(shard_, padded_, shard_size_);
  backend_.copy(params, padded_, n_ * sizeof(float));
}

std::vector<float> DataParallel::gather(const std::vector<float>& shard) {
  if (!sharded_) return shard;
  std::vector<float> send(shard_size_, 0.0f);
  std::copy(shard.begin(), shard.end(), send.begin());
  std::vector<float> whole(shard_size_ * static_cast<size_t>(group_.size()));
  group_.all_gather(send.data(), whole.data(), shard_size_);
  whole.resize(n_);
  return whole;
}

}  // namespace lmt
