// Learning-rate schedule: linear warmup, then cosine, linear, constant or WSD (warmup-stable-
// decay) decay to min_lr, reached on the run's last step. A pure function of the 0-based step, so
// resuming needs no state.
#pragma once
#include <cstdint>
#include <string>

#include "core/recipe.h"

namespace lmt {

class LrSchedule {
 public:
  LrSchedule(const ScheduleConfig& schedule, double peak_lr, int64_t total_steps);
  double at(int64_t step) const;
  int64_t decay_start() const { return decay_start_; }

 private:
  std::string decay_;
  double peak_lr_, min_lr_;
  int64_t warmup_, total_, decay_start_, decay_steps_;
};

}  // namespace lmt
