#include "train/divergence_guard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace lmt {

namespace {
constexpr double kLossFloor = 1.0;  // nats: the smallest loss reference the guard uses
}  // namespace

DivergenceGuard::DivergenceGuard(const RunConfig& run, double grad_clip)
    : mode_(run.divergence),
      factor_(run.divergence_factor),
      window_(static_cast<size_t>(run.divergence_window)),
      warmup_(run.divergence_warmup),
      max_skips_(run.divergence_max_skips),
      judge_norm_(grad_clip <= 0.0) {}

DivergenceGuard::Verdict DivergenceGuard::judge(double loss, double grad_norm) const {
  Verdict v;
  v.loss_mean = loss_mean();
  v.grad_norm_mean = grad_norm_mean();
  if (mode_ == Divergence::kOff) return v;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    v.diverged = true;
    v.why = fmt::format("loss {} and grad norm {} are not both finite", loss, grad_norm);
    return v;
  }
  if (accepted_ < warmup_) return v;
  const double loss_reference = std::max(lowest_loss_mean_, kLossFloor);
  if (loss > factor_ * loss_reference) {
    v.diverged = true;
    v.why = fmt::format("loss {:.4g} is above {:g} x {:.4g} (the lowest running mean of the loss{})", loss, factor_,
                        loss_reference, lowest_loss_mean_ < kLossFloor ? ", raised to 1 nat" : "");
  } else if (judge_norm_ && grad_norm > factor_ * v.grad_norm_mean) {
    v.diverged = true;
    v.why = fmt::format("grad norm {:.4g} is above {:g} x {:.4g} (its running mean)", grad_norm, factor_,
                        v.grad_norm_mean);
  }
  return v;
}

void DivergenceGuard::accept(double loss, double grad_norm) {
  skipped_in_a_row_ = 0;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) return;  // mode off: keep the means finite
  losses_.push_back(loss);
  norms_.push_back(grad_norm);
  loss_sum_ += loss;
  norm_sum_ += grad_norm;
  if (losses_.size() > window_) {
    loss_sum_ -= losses_.front();
    norm_sum_ -= norms_.front();
    losses_.pop_front();
    norms_.pop_front();
  }
  lowest_loss_mean_ = accepted_ == 0 ? loss_mean() : std::min(lowest_loss_mean_, loss_mean());
  ++accepted_;
}

}  // namespace lmt
