// The divergence guard (run.divergence, docs/recipes.md#divergence): judges each step's loss and
// gradient norm against their running history, so that a finite blow-up ends (or skips) instead
// of training on and saving garbage. A pure function of the figures it is shown: every rank sees
// the same reduced loss and norm, so every rank reaches the same verdict.
//
// A step diverges when, after `warmup` judged-free steps,
//   loss > factor x max(lowest running mean of the loss so far, 1 nat), or
//   grad norm > factor x the running mean of the grad norm (only when clipping is off),
// or either is not finite. The reference for the loss is the lowest running mean because a loss
// that climbs step by step drags its own running mean along; the floor of 1 nat keeps a model
// near zero loss from being judged on noise. With clipping on, a large gradient cannot make a
// large update, so its norm is not judged (only the loss).
#pragma once
#include <cstdint>
#include <deque>
#include <string>

#include "core/recipe.h"

namespace lmt {

class DivergenceGuard {
 public:
  DivergenceGuard(const RunConfig& run, double grad_clip);

  struct Verdict {
    bool diverged = false;
    std::string why;          // "loss 251.0 is above 10 x its lowest running mean 16.6"
    double loss_mean = 0.0;   // the running means before this step (0 before any step)
    double grad_norm_mean = 0.0;
  };
  // Judges one step. Does not change the history: call accept() for a step that is applied.
  Verdict judge(double loss, double grad_norm) const;
  // An applied step: its figures join the running means.
  void accept(double loss, double grad_norm);
  // A skipped step (run.divergence: skip); returns the skips in a row, this one included.
  int64_t skip() { ++skipped_steps_; return ++skipped_in_a_row_; }

  bool enabled() const { return mode_ != Divergence::kOff; }
  Divergence mode() const { return mode_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  int64_t skipped_in_a_row() const { return skipped_in_a_row_; }
  int64_t max_skips() const { return max_skips_; }

 private:
  double loss_mean() const { return losses_.empty() ? 0.0 : loss_sum_ / static_cast<double>(losses_.size()); }
  double grad_norm_mean() const { return norms_.empty() ? 0.0 : norm_sum_ / static_cast<double>(norms_.size()); }

  Divergence mode_;
  double factor_;
  size_t window_;
  int64_t warmup_, max_skips_;
  bool judge_norm_;
  std::deque<double> losses_, norms_;
  double loss_sum_ = 0.0, norm_sum_ = 0.0;
  double lowest_loss_mean_ = 0.0;
  int64_t accepted_ = 0, skipped_steps_ = 0, skipped_in_a_row_ = 0;
};

}  // namespace lmt
