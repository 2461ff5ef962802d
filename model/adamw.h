// AdamW over the model's parameter arena: fp32 moments, decoupled weight decay on matrices and
// embeddings only (ParamTensor::weight_decay), global-norm clipping folded into the update.
#pragma once
#include <vector>

#include "core/ops.h"
#include "core/recipe.h"
#include "model/gpt_config.h"

namespace lmt {

class AdamW {
 public:
  // The hyperparameters are the optimizer section's (beta1, beta2, eps, weight_decay,
  // grad_clip); the learning rate comes with each step, from the schedule.
  AdamW(Backend& backend, const OptimizerConfig& config, std::vector<ParamTensor> layout, size_t num_params);
  // ZeRO-1: this optimizer owns only arena elements [shard_begin, shard_end): its moments cover
  // that range and step() updates only those parameters (params and grads are still whole arenas).
  AdamW(Backend& backend, const OptimizerConfig& config, std::vector<ParamTensor> layout, size_t num_params,
        size_t shard_begin, size_t shard_end);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // L2 norm of the whole gradient arena.
  double grad_norm(const float* grads) const;

  // One update at learning rate lr; `grad_norm` is the pre-clip norm of the true gradients.
  // The arena holds them times 1/unscale (fp16's loss scale; else unscale is 1), so each is
  // multiplied by unscale first. Clipping scales gradients by grad_clip / (norm + 1e-6) when
  // the norm exceeds grad_clip (PyTorch's clip_grad_norm_). Returns the clipping scale.
  float step(float* params, const float* grads, float lr, double grad_norm, float unscale = 1.0f);

  int64_t step_count() const { return t_; }
  // Host copies of the moments of the owned range (layout order), and their restoration.
  std::vector<float> get_m() const;
  std::vector<float> get_v() const;
  // count values of the first (second: false) or second moment from element `first` of the owned
  // range into host memory.
  void copy_moment_to_host(bool second, size_t first, size_t count, float* dst) const;
  // The reverse, for a resume that reads the moments a piece at a time; then set_step_count.
  void copy_moment_from_host(bool second, size_t first, size_t count, const float* src);
  void set_step_count(int64_t step_count) { t_ = step_count; }
  void set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step_count);
  size_t shard_begin() const { return begin_; }
  size_t shard_end() const { return end_; }

 private:
  Backend& backend_;
  // The section's values as the update kernels take them (fp32).
  float beta1_, beta2_, eps_, weight_decay_, grad_clip_;  // grad_clip_ 0: no clipping
  std::vector<ParamTensor> layout_;
  size_t num_params_;
  size_t begin_ = 0, end_ = 0;  // owned range of the arena
  float* m_ = nullptr;
  float* v_ = nullptr;
  int64_t t_ = 0;
};

}  // namespace lmt
