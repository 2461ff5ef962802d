#include "train/step.h"

#include <chrono>

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

double accumulate_gradients(GPT& model, const data::TokenWindows& windows, uint64_t seed,
                            int64_t step, int64_t accum, int B, int T, std::vector<int32_t>& inputs,
                            std::vector<int32_t>& targets, StepPhases* phases) {
  const float grad_scale = 1.0f / static_cast<float>(accum);
  model.zero_grad();
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    const uint64_t batch_index = static_cast<uint64_t>(step * accum + micro);
    if (!phases) {
      windows.sample_batch(seed, batch_index, B, T, inputs.data(), targets.data());
      loss_sum += model.forward_backward(inputs.data(), targets.data(), B, T, grad_scale);
      continue;
    }
    auto t = Clock::now();
    windows.sample_batch(seed, batch_index, B, T, inputs.data(), targets.data());
    phases->data_ms += ms_since(t);
    t = Clock::now();
    loss_sum += model.forward_for_backward(inputs.data(), targets.data(), B, T, grad_scale);
    model.backend().synchronize();
    phases->forward_ms += ms_since(t);
    t = Clock::now();
    model.backward();
    model.backend().synchronize();
    phases->backward_ms += ms_since(t);
  }
  return loss_sum / static_cast<double>(accum);
}

}  // namespace lmt
