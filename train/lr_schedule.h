// Learning-rate schedule: linear warmup, then cosine, linear, constant or WSD (warmup-stable-
// decay) decay to min_lr, reached on the run's last step. A pure function of the position, so
// resuming needs no state. The position is the 0-based step, or with schedule.unit: tokens the
// tokens seen so far in units of full-length steps (fractional while the sequence length grows).
#pragma once
#include <cstdint>

#include "core/recipe.h"

namespace lmt {

class LrSchedule {
 public:
  // total: the schedule's length in the same units as the positions passed to at().
  LrSchedule(const ScheduleConfig& schedule, double peak_lr, double total);
  double at(double position) const;
  double decay_start() const { return decay_start_; }

 private:
  LrDecay decay_;
  double peak_lr_, min_lr_;
  double warmup_, total_, decay_start_, decay_steps_;
};

}  // namespace lmt
