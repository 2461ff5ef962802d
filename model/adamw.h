// AdamW over the model's parameter arena: fp32 moments, decoupled weight decay on matrices and
// embeddings only (ParamTensor::weight_decay), global-norm clipping folded into the update.
#pragma once
#include <vector>

#include "core/ops.h"
#include "model/gpt_config.h"

namespace lmt {

struct AdamWHyper {
  float lr = 6e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;  // 0: no clipping
};

class AdamW {
 public:
  AdamW(Backend& backend, std::vector<ParamTensor> layout, size_t num_params);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // L2 norm of the whole gradient arena.
  double grad_norm(const float* grads) const;

  // One update at learning rate lr; `grad_norm` is the pre-clip norm from grad_norm(). Clipping
  // scales gradients by grad_clip / (norm + 1e-6) when the norm exceeds grad_clip (PyTorch's
  // clip_grad_norm_). Returns the scale applied.
  float step(float* params, const float* grads, const AdamWHyper& hyper, float lr,
             double grad_norm);

  int64_t step_count() const { return t_; }
  // Host copies of the moments (layout order), and their restoration with the step count.
  std::vector<float> get_m() const;
  std::vector<float> get_v() const;
  void set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step_count);
  float* m() { return m_; }
  float* v() { return v_; }

 private:
  Backend& backend_;
  std::vector<ParamTensor> layout_;
  size_t num_params_;
  float* m_ = nullptr;
  float* v_ = nullptr;
  int64_t t_ = 0;
};

}  // namespace lmt
