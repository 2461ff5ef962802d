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
}

void DataParallel::use_buckets(std::vector<GradBucket> buckets, bool overlap) {
  if (group_.size() == 1) return;
  buckets_ = std::move(buckets);
  async_ = arena_group_.asynchronous();
  if (sharded_) {
    // The part of a slice in [r*S, (r+1)*S) is rank r's.
    owned_slices_.assign(buckets_.size(), std::vector<std::vector<GradSlice>>(static_cast<size_t>(group_.size())));
    for (size_t i = 0; i < buckets_.size(); ++i)
      for (const GradSlice& s : buckets_[i].slices)
        for (size_t at = s.offset, end = s.offset + s.count; at < end;) {
          const size_t r = at / shard_size_;
          const size_t piece = std::min(end, (r + 1) * shard_size_) - at;
          owned_slices_[i][r].push_back({at, piece});
          at += piece;
        }
  }
  if (!overlap) return;
  // An asynchronous group needs no thread: the hook enqueues each bucket's collective.
  if (async_) {
    overlap_async_ = true;
    return;
  }
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
  if (overlap_async_) {
    handed_ = 0;
    return [this, grads](int group) {
      for (; handed_ < buckets_.size() && buckets_[handed_].ready_group <= group; ++handed_)
        reduce_bucket(handed_, grads);
    };
  }
  if (!overlap_) return {};
  {
    std::lock_guard<std::mutex> lock(overlap_->mutex);
    overlap_->grads = grads;
    overlap_->comm_ms = 0;
  }
  return [this](int group) {
    std::lock_guard<std::mutex> lock(overlap_->mutex);
    for (; overlap_->handed < buckets_.size() && buckets_[overlap_->handed].ready_group <= group; ++overlap_->handed)
      overlap_->queue.push_back(overlap_->handed);
    overlap_->changed.notify_all();
  };
}

void DataParallel::reduce_bucket(size_t i, float* grads) {
  if (sharded_)
    arena_group_.reduce_slices_to_owners(grads, owned_slices_[i], ReduceOp::kAvg);
  else
    arena_group_.all_reduce_slices(grads, buckets_[i].slices, ReduceOp::kAvg);
}

void DataParallel::ensure_buffers() {
  if (padded_) return;
  // alloc zero-fills: the padding past n stays zero.
  padded_ = static_cast<float*>(backend_.alloc(shard_size_ * static_cast<size_t>(group_.size()) * sizeof(float)));
  shard_ = static_cast<float*>(backend_.alloc(shard_size_ * sizeof(float)));
}

double DataParallel::global_norm(float* grads) {
  if (!sharded_) return std::sqrt(backend_.sum_squares(grads, n_));
  float squares = static_cast<float>(backend_.sum_squares(grads + begin_, end_ - begin_));
  group_.all_reduce(&squares, 1, ReduceOp::kSum);
  return std::sqrt(static_cast<double>(squares));
}

double DataParallel::reduce_gradients(float* grads) {
  if (group_.size() == 1) return std::sqrt(backend_.sum_squares(grads, n_));
  const auto t = Clock::now();
  if (overlap_async_) {
    // The hook enqueued every bucket's collective during the backward pass.
    LMT_CHECK(handed_ == buckets_.size(),
              fmt::format("backward pass handed over {} of {} gradient buckets", handed_, buckets_.size()));
    handed_ = 0;
    arena_group_.wait_pending();
    comm_times_ = {ms_since(t), ms_since(t)};
    return global_norm(grads);
  }
  if (overlap_) {
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
    return global_norm(grads);
  }
  // Host collectives read what the backend wrote; an asynchronous group orders itself.
  if (!async_ || buckets_.empty()) backend_.synchronize();
  if (!buckets_.empty()) {
    // The same buckets and collectives as with overlap, after the backward pass.
    for (size_t i = 0; i < buckets_.size(); ++i) reduce_bucket(i, grads);
    arena_group_.wait_pending();
  } else if (!sharded_) {
    arena_group_.all_reduce(grads, n_, ReduceOp::kAvg);
  } else {
    ensure_buffers();
    backend_.copy(padded_, grads, n_ * sizeof(float));
    backend_.synchronize();
    arena_group_.reduce_scatter(padded_, shard_, shard_size_, ReduceOp::kAvg);
    backend_.copy(grads + begin_, shard_, (end_ - begin_) * sizeof(float));
  }
  comm_times_ = {ms_since(t), ms_since(t)};
  return global_norm(grads);
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

void DataParallel::stream_gathered(const std::function<void(size_t, size_t, float*)>& fetch,
                                   const std::function<void(const float*, size_t)>& sink, size_t chunk) {
  if (!sharded_ && !sink) return;
  std::vector<float> piece(std::min(chunk, sharded_ ? shard_size_ : n_));
  if (!sharded_) {
    for (size_t first = 0; first < n_; first += chunk) {
      const size_t count = std::min(chunk, n_ - first);
      fetch(first, count, piece.data());
      sink(piece.data(), count);
    }
    return;
  }
  // Rank r owns [r * shard_size, (r + 1) * shard_size) of the arena, cut at n.
  for (int owner = 0; owner < group_.size(); ++owner) {
    const size_t begin = static_cast<size_t>(owner) * shard_size_, end = std::min(n_, begin + shard_size_);
    for (size_t first = begin; first < end; first += chunk) {
      const size_t count = std::min(chunk, end - first);
      if (owner == group_.rank()) fetch(first - begin, count, piece.data());
      group_.broadcast(piece.data(), count, owner);
      if (sink) sink(piece.data(), count);
    }
  }
}

}  // namespace lmt
