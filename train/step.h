// The gradient half of a training step, shared by the trainer and `lmtrain bench` so both run
// (and sample) exactly the same work.
#pragma once
#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "model/gpt.h"

namespace lmt {

// Milliseconds spent per phase, summed over the micro-batches of one step.
struct StepPhases {
  double data_ms = 0, forward_ms = 0, backward_ms = 0;
};

// Zeroes the gradients, then accumulates those of the step's `accum` micro-batches of B windows
// of T tokens (micro-batch i of step s is sampler batch s * accum + i; each adds its gradient
// scaled by 1/accum). Returns the mean loss. With `phases`, each phase is timed, synchronizing
// the backend in between.
double accumulate_gradients(GPT& model, const data::TokenWindows& windows, uint64_t seed,
                            int64_t step, int64_t accum, int B, int T, std::vector<int32_t>& inputs,
                            std::vector<int32_t>& targets, StepPhases* phases = nullptr);

}  // namespace lmt
