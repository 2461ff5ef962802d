// The gradient half of a training step, shared by the trainer and `lmtrain bench` so both run
// (and sample) exactly the same work.
#pragma once
#include <cstdint>
#include <vector>

#include <functional>
#include <span>

#include "data/sampler.h"
#include "model/gpt.h"

namespace lmt {

// Milliseconds spent per phase, summed over the micro-batches of one step.
struct StepPhases {
  double data_ms = 0, forward_ms = 0, backward_ms = 0;
  double optimizer_ms = 0;  // Trainer::step: the reduction, clipping, AdamW and the parameter copy
  // Several ranks: time in the gradients' collectives (during the backward pass when they
  // overlap it), and the part of it the step waited for after the backward pass.
  double comm_ms = 0, comm_wait_ms = 0;
};

// Zeroes the gradients, then accumulates those of this rank's windows of the step: `windows`
// holds accum * B of them, and micro-batch i trains on windows [i * B, (i + 1) * B), truncated
// to T tokens; each adds its gradient scaled by loss_scale/accum (loss_scale: fp16's dynamic
// loss scale, else 1). Returns the mean loss (unscaled). With `phases`, each phase is timed,
// synchronizing the backend in between. `last_backward_hook` is set on the model for the last
// micro-batch's backward pass only (DataParallel's overlap: the gradients are final then).
double accumulate_gradients(GPT& model, const data::TokenDataset& dataset,
                            std::span<const data::WindowRef> windows, int64_t accum, int B, int T,
                            std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                            StepPhases* phases = nullptr, float loss_scale = 1.0f,
                            const std::function<void(int group)>& last_backward_hook = {});

}  // namespace lmt
