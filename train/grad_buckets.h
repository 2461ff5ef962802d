// Gradient buckets for data parallelism: the gradient arena cut into pieces of about
// distributed.bucket_mb, in the order the backward pass finishes them, so that each piece can be
// averaged over the ranks while the backward pass works on the rest (DataParallel's overlap).
//
// The backward pass finishes its gradients in groups (GPT::set_backward_hook): group 0 is the
// final layernorm, groups 1..L the blocks from the last to the first, group L+1 the embeddings
// (wte, which the tied LM head also writes at the start, and wpe). A block's twelve tensors are
// not contiguous in the arena (each tensor holds all layers), so a bucket is a list of slices;
// a bucket of several slices is packed into a buffer for its collective and unpacked after.
#pragma once
#include <cstddef>
#include <vector>

#include "model/gpt_config.h"
#include "parallel/process_group.h"

namespace lmt {

// In floats, into the gradient arena.
using GradSlice = BufferSlice;

struct GradBucket {
  std::vector<GradSlice> slices;
  size_t numel = 0;
  int ready_group = 0;  // complete once the backward pass has finished this group
};

// Number of groups the backward pass reports: L + 2.
int backward_group_count(const GPTConfig& cfg);

// The slices of the arena that group `group` finishes.
std::vector<GradSlice> backward_group_slices(const GPTConfig& cfg, int group);

// Consecutive groups merged until a bucket holds at least bucket_numel floats (the last bucket
// takes what is left). Every float of the arena is in exactly one bucket.
std::vector<GradBucket> plan_grad_buckets(const GPTConfig& cfg, size_t bucket_numel);

}  // namespace lmt
