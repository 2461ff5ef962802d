#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace lmt {

LrSchedule::LrSchedule(const ScheduleConfig& schedule, double peak_lr, double total)
    : decay_(schedule.decay),
      peak_lr_(peak_lr),
      min_lr_(schedule.min_lr),
      warmup_(static_cast<double>(schedule.warmup_steps)),
      total_(total) {
  double fraction = schedule.decay_fraction;
  if (fraction <= 0.0) fraction = decay_ == LrDecay::kWsd ? 0.2 : 1.0;
  const double after_warmup = std::max(0.0, total_ - warmup_);
  decay_steps_ = std::max(1.0, std::round(fraction * after_warmup));
  decay_start_ = std::max(warmup_, total_ - decay_steps_);
}

double LrSchedule::at(double position) const {
  if (position < warmup_) return peak_lr_ * (position + 1.0) / warmup_;
  if (decay_ == LrDecay::kConstant || position < decay_start_) return peak_lr_;
  // The first decay step uses the peak and the run's last step (total - 1) exactly min_lr.
  const double span = std::max(1.0, decay_steps_ - 1.0);
  const double progress = std::clamp((position - decay_start_) / span, 0.0, 1.0);
  if (decay_ == LrDecay::kCosine)
    return min_lr_ + 0.5 * (1.0 + std::cos(M_PI * progress)) * (peak_lr_ - min_lr_);
  // linear and wsd decay linearly; wsd differs by its default stable phase (decay_fraction 0.2)
  return peak_lr_ - progress * (peak_lr_ - min_lr_);
}

}  // namespace lmt
