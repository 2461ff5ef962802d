#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>

namespace lmt {

DataParallel::DataParallel(ProcessGroup& group, int zero_stage, size_t num_params, ProcessGroup* arena_group)
    : group_(group),
      arena_group_(arena_group ? *arena_group : group),
      n_(num_params),
      sharded_(zero_stage == 1 && group.size() > 1) {
  const size_t ranks = static_cast<size_t>(group.size());
  // Equal shards (the last one padded) so that the collectives move equal blocks.
  shard_size_ = sharded_ ? (n_ + ranks - 1) / ranks : n_;
  begin_ = sharded_ ? std::min(n_, shard_size_ * static_cast<size_t>(group.rank())) : 0;
  end_ = sharded_ ? std::min(n_, begin_ + shard_size_) : n_;
}

double DataParallel::reduce_gradients(Backend& backend, float* grads) {
  if (group_.size() == 1) return std::sqrt(backend.sum_squares(grads, n_));
  if (!sharded_) {
    backend.synchronize();  // the collective may run on another stream than the backward pass
    arena_group_.all_reduce(grads, n_, ReduceOp::kAvg);
    return std::sqrt(backend.sum_squares(grads, n_));
  }
  send_.assign(shard_size_ * static_cast<size_t>(group_.size()), 0.0f);
  std::copy_n(grads, n_, send_.begin());
  receive_.resize(shard_size_);
  group_.reduce_scatter(send_.data(), receive_.data(), shard_size_, ReduceOp::kAvg);
  std::copy_n(receive_.begin(), end_ - begin_, grads + begin_);
  float squares = static_cast<float>(backend.sum_squares(grads + begin_, end_ - begin_));
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
  send_.assign(shard_size_, 0.0f);
  std::copy(params + begin_, params + end_, send_.begin());
  receive_.resize(shard_size_ * static_cast<size_t>(group_.size()));
  group_.all_gather(send_.data(), receive_.data(), shard_size_);
  std::copy_n(receive_.begin(), n_, params);
}

std::vector<float> DataParallel::gather(const std::vector<float>& shard) {
  if (!sharded_) return shard;
  send_.assign(shard_size_, 0.0f);
  std::copy(shard.begin(), shard.end(), send_.begin());
  std::vector<float> whole(shard_size_ * static_cast<size_t>(group_.size()));
  group_.all_gather(send_.data(), whole.data(), shard_size_);
  whole.resize(n_);
  return whole;
}

}  // namespace lmt
