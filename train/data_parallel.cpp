#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>

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

DataParallel::~DataParallel() {
  if (padded_) backend_.free(padded_);
  if (shard_) backend_.free(shard_);
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
  if (!sharded_) {
    backend_.synchronize();
    arena_group_.all_reduce(grads, n_, ReduceOp::kAvg);
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
