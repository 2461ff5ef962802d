#include "model/loss_scaler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmt {

namespace {

LossScalerConfig scaler_config(const PrecisionConfig& precision) {
  LossScalerConfig config;
  config.initial_scale = std::ldexp(1.0, static_cast<int>(precision.initial_scale_power));
  config.window = precision.loss_scale_window;
  config.hysteresis = precision.hysteresis;
  config.min_scale = precision.min_loss_scale;
  return config;
}

}  // namespace

LossScaler::LossScaler(const PrecisionConfig& precision)
    : LossScaler(precision.dtype == DType::kF16, scaler_config(precision)) {}

LossScaler::LossScaler(bool enabled, const LossScalerConfig& config) : enabled_(enabled), config_(config) {
  state_.scale = config.initial_scale;
  state_.hysteresis_left = config.hysteresis;
}

bool LossScaler::update(bool finite) {
  if (!enabled_) return finite;
  if (!finite) {
    if (config_.hysteresis <= 1 || state_.hysteresis_left <= 1) {
      if (state_.scale <= config_.min_scale)
        throw Error(fmt::format(
            "fp16: the gradients overflow at the minimum loss scale {} (step {}, {} steps skipped so far); fp16 "
            "cannot hold this model's values. Train in bf16 (--set precision.dtype=bf16), lower optimizer.lr, or "
            "lower precision.min_loss_scale",
            config_.min_scale, state_.iteration + 1, state_.skipped_steps + 1));
      state_.scale = std::max(state_.scale / 2.0, config_.min_scale);
    } else {
      --state_.hysteresis_left;
    }
    state_.last_overflow = state_.iteration;
    ++state_.skipped_steps;
  } else if ((state_.iteration - state_.last_overflow) % config_.window == 0) {
    // DeepSpeed (consecutive_hysteresis off): the hysteresis is restored when the scale grows.
    state_.hysteresis_left = config_.hysteresis;
    state_.scale *= 2.0;
  }
  ++state_.iteration;
  return finite;
}

}  // namespace lmt
