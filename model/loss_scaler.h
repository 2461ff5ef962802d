// Dynamic loss scaling for fp16 training, with DeepSpeed's semantics (its DynamicLossScaler):
// the loss gradient is multiplied by `scale` so that small gradients survive fp16; a step whose
// gradients overflow (inf/NaN) is skipped. An overflow uses up one unit of hysteresis; with
// none left it halves the scale (not below min_scale). After `window` steps without an overflow
// the scale doubles and the hysteresis is restored.
// An overflow at the minimum scale, with no hysteresis left, stops the run: fp16 cannot
// represent this model's values, and skipping every step would train nothing.
#pragma once
#include <cstdint>

#include "core/recipe.h"

namespace lmt {

struct LossScalerConfig {
  double initial_scale = 65536.0;  // 2^16
  int64_t window = 1000;           // overflow-free steps before the scale doubles
  int64_t hysteresis = 2;          // overflows tolerated before the scale is halved
  double min_scale = 1.0;
};

// Everything a checkpoint needs to continue the same scale schedule.
struct LossScalerState {
  double scale = 65536.0;
  int64_t hysteresis_left = 2;
  int64_t iteration = 0;       // steps seen (overflowed ones included)
  int64_t last_overflow = -1;  // iteration of the last overflow
  int64_t skipped_steps = 0;
};

class LossScaler {
 public:
  // disabled: scale() is 1 and update() only checks that gradients are finite.
  LossScaler(bool enabled, const LossScalerConfig& config);
  // The precision section's: enabled for fp16, starting at 2^initial_scale_power.
  explicit LossScaler(const PrecisionConfig& precision);

  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? state_.scale : 1.0; }
  int64_t skipped_steps() const { return state_.skipped_steps; }

  // Records one step. finite: its gradients (and loss) are all finite. Returns true when the
  // step should be applied, false when it must be skipped (an overflow). Throws lmt::Error when
  // an overflow happens at the minimum scale with no hysteresis left.
  bool update(bool finite);

  const LossScalerState& state() const { return state_; }
  void set_state(const LossScalerState& state) { state_ = state; }

 private:
  bool enabled_;
  LossScalerConfig config_;
  LossScalerState state_;
};

}  // namespace lmt
