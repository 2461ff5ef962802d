// How the ranks of a job share each step: gradients averaged over the ranks, and with ZeRO-1 the
// optimizer state split into one contiguous shard of the parameter arena per rank.
//
//   stage 0: all-reduce(avg) the whole gradient arena; every rank updates every parameter.
//   stage 1: reduce-scatter(avg) the gradients so each rank holds the mean gradient of its shard,
//            the global norm is the square root of the all-reduced shard sums of squares, each
//            rank's AdamW updates its shard only, and the parameters are all-gathered.
// Both give the same update as one rank, up to float rounding.
#pragma once
#include <cstddef>
#include <vector>

#include "core/ops.h"
#include "parallel/process_group.h"

namespace lmt {

class DataParallel {
 public:
  // The arenas live in `backend`'s memory. arena_group carries the collectives on them (NCCL
  // when they are in GPU memory); nullptr: `group`, which also carries the host-side values
  // (loss, norm, the checkpoint gathers).
  DataParallel(ProcessGroup& group, int zero_stage, size_t num_params, Backend& backend,
               ProcessGroup* arena_group = nullptr);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // The arena range whose optimizer state this rank owns: everything at stage 0 (or alone).
  size_t shard_begin() const { return begin_; }
  size_t shard_end() const { return end_; }

  // Averages the step's gradients over the ranks (grads: the whole arena; at stage 1 only the
  // owned range is valid afterwards) and returns the global L2 norm.
  double reduce_gradients(float* grads);
  // The mean of a per-rank value (the loss).
  double average(double value);
  // Stage 1, after the optimizer step: every rank receives every shard of the parameters.
  void gather_parameters(float* params);
  // Stage 1: the whole arena of a per-shard vector (AdamW moments, on the host) on every rank; a
  // collective, so all ranks call it together. Stage 0: returns `shard` as is.
  std::vector<float> gather(const std::vector<float>& shard);

 private:
  // Stage 1's buffers in the backend's memory: the padded arena and one shard.
  void ensure_buffers();

  ProcessGroup& group_;
  ProcessGroup& arena_group_;
  Backend& backend_;
  size_t n_, shard_size_, begin_, end_;
  bool sharded_;
  float* padded_ = nullptr;  // shard_size * ranks
  float* shard_ = nullptr;   // shard_size
};

}  // namespace lmt
