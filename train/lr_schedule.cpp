#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace lmt {

LrSchedule::LrSchedule(const ScheduleConfig& schedule, double peak_lr, int64_t total_steps)
    : decay_(schedule.decay),
      peak_lr_(peak_lr),
      min_lr_(schedule.min_lr),
      warmup_(schedule.warmup_steps),
      total_(total_steps) {
  double fraction = schedule.decay_fraction;
  if (fraction <= 0.0) fraction = decay_ == "wsd" ? 0.2 : 1.0;
  const int64_t after_warmup = std::max<int64_t>(0, total_ - warmup_);
  decay_steps_ = std::max<int64_t>(1, static_cast<int64_t>(std::llround(fraction * after_warmup)));
  decay_start_ = total_ - decay_steps_;
  if (decay_start_ < warmup_) decay_start_ = warmup_;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_) return peak_lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  if (decay_ == "constant" || step < decay_start_) return peak_lr_;
  // The first decay step uses the peak and the run's last step (total - 1) exactly min_lr.
  const double span = static_cast<double>(std::max<int64_t>(1, decay_steps_ - 1));
  const double progress = std::clamp(static_cast<double>(step - decay_start_) / span, 0.0, 1.0);
  if (decay_ == "cosine")
    return min_lr_ + 0.5 * (1.0 + std::cos(M_PI * progress)) * (peak_lr_ - min_lr_);
  // linear and wsd decay linearly; wsd differs by its default stable phase (decay_fraction 0.2)
  return peak_lr_ - progress * (peak_lr_ - min_lr_);
}

}  // namespace lmt
