#include "train/step.h"

#include <fmt/format.h>

#include <chrono>

#include "core/error.h"

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

double accumulate_gradients(GPT& model, const data::TokenDataset& dataset,
                            std::span<const data::WindowRef> windows, int64_t accum, int B, int T,
                            std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                            StepPhases* phases, float loss_scale,
                            const std::function<void(int group)>& last_backward_hook) {
  LMT_CHECK(windows.size() == static_cast<size_t>(accum * B),
            fmt::format("accumulate_gradients: {} windows for {} micro-batches of {}", windows.size(), accum, B));
  const float grad_scale = loss_scale / static_cast<float>(accum);
  model.zero_grad();
  double loss_sum = 0.0;
  // Cleared on every way out of this function, an exception included.
  struct HookGuard {
    GPT& model;
    ~HookGuard() { model.set_backward_hook({}); }
  } guard{model};
  for (int64_t micro = 0; micro < accum; ++micro) {
    if (micro + 1 == accum && last_backward_hook) model.set_backward_hook(last_backward_hook);
    const auto micro_windows = windows.subspan(static_cast<size_t>(micro * B), static_cast<size_t>(B));
    if (!phases) {
      data::read_windows(dataset, micro_windows, T, inputs.data(), targets.data());
      loss_sum += model.forward_backward(inputs.data(), targets.data(), B, T, grad_scale);
      continue;
    }
    auto t = Clock::now();
    data::read_windows(dataset, micro_windows, T, inputs.data(), targets.data());
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
