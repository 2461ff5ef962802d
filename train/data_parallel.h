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
#include <functional>
#include <memory>
#include <vector>

#include "core/ops.h"
#include "parallel/process_group.h"
#include "train/grad_buckets.h"

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

  // Several ranks: average the gradients bucket by bucket (train/grad_buckets.h) instead of in
  // one collective: all-reduced at stage 0; at stage 1 each bucket cut at the shard boundaries it
  // crosses and each piece reduced onto its shard's rank (ProcessGroup::reduce_slices_to_owners).
  // With overlap, each bucket's collective starts as soon as the last micro-batch's backward
  // pass has finished it (backward_hook): on a communication thread for host groups (Gloo, whose
  // ops are done when the hook runs), enqueued on the group's stream after the backward pass's
  // work so far for asynchronous ones (NCCL). With or without overlap the same buckets go
  // through the same collectives in the same order, so the result is bit-identical. Ignored
  // alone.
  void use_buckets(std::vector<GradBucket> buckets, bool overlap);
  // For GPT::set_backward_hook on the last micro-batch; empty when not overlapping.
  std::function<void(int group)> backward_hook(float* grads);

  // Averages the step's gradients over the ranks (grads: the whole arena; at stage 1 only the
  // owned range is valid afterwards) and returns the global L2 norm. When overlapping, waits
  // for the buckets the backward pass handed over.
  double reduce_gradients(float* grads);

  // Of the last reduce_gradients: time spent in the gradients' collectives (on the
  // communication thread when overlapping), and how much of it the step waited for after the
  // backward pass. Hidden = comm_ms - wait_ms.
  struct CommTimes {
    double comm_ms = 0, wait_ms = 0;
  };
  CommTimes last_comm_times() const { return comm_times_; }
  // The mean of a per-rank value (the loss).
  double average(double value);
  // Stage 1, after the optimizer step: every rank receives every shard of the parameters.
  void gather_parameters(float* params);
  // The whole arena of a per-shard quantity (an AdamW moment) in pieces of at most `chunk` values,
  // in arena order: sink(data, count) for each piece, when there is a sink. fetch(first, count,
  // dst) copies this rank's own shard from its element `first` to the host. Stage 1: a collective
  // (each piece is broadcast by the rank that owns it), so every rank calls it together, the ones
  // that keep nothing with an empty sink. Stage 0: the shard is the arena, fetched only for a sink.
  void stream_gathered(const std::function<void(size_t first, size_t count, float* dst)>& fetch,
                       const std::function<void(const float* data, size_t count)>& sink, size_t chunk);

 private:
  // Stage 1's buffers in the backend's memory: the padded arena and one shard.
  void ensure_buffers();
  // Bucket i's collective; on an asynchronous group it may still run at return.
  void reduce_bucket(size_t i, float* grads);
  // The norm of the averaged gradients (stage 1: of every rank's shard).
  double global_norm(float* grads);
  struct Overlap;

  ProcessGroup& group_;
  ProcessGroup& arena_group_;
  Backend& backend_;
  size_t n_, shard_size_, begin_, end_;
  bool sharded_;
  float* padded_ = nullptr;  // shard_size * ranks
  float* shard_ = nullptr;   // shard_size
  std::vector<GradBucket> buckets_;
  // Stage 1, per bucket: its slices cut at the shard boundaries, by the rank that owns them.
  std::vector<std::vector<std::vector<GradSlice>>> owned_slices_;
  bool async_ = false;         // arena_group_ enqueues (NCCL)
  bool overlap_async_ = false; // overlapping on an asynchronous group: no thread
  size_t handed_ = 0;          // buckets the hook has started (asynchronous overlap)
  std::unique_ptr<Overlap> overlap_;
  CommTimes comm_times_;
};

}  // namespace lmt
