#include "model/adamw.h"

#include <cmath>

namespace lmt {

AdamW::AdamW(Backend& backend, std::vector<ParamTensor> layout, size_t num_params)
    : backend_(backend), layout_(std::move(layout)), num_params_(num_params) {
  m_ = static_cast<float*>(backend_.alloc(num_params_ * sizeof(float)));
  v_ = static_cast<float*>(backend_.alloc(num_params_ * sizeof(float)));
}

AdamW::~AdamW() {
  backend_.free(m_);
  backend_.free(v_);
}

double AdamW::grad_norm(const float* grads) const {
  return std::sqrt(backend_.sum_squares(grads, num_params_));
}

float AdamW::step(float* params, const float* grads, const AdamWHyper& hyper, float lr,
                  double grad_norm) {
  float scale = 1.0f;
  if (hyper.grad_clip > 0.0f && grad_norm > hyper.grad_clip)
    scale = static_cast<float>(hyper.grad_clip / (grad_norm + 1e-6));
  ++t_;
  for (const ParamTensor& tensor : layout_) {
    const float decay = tensor.weight_decay ? hyper.weight_decay : 0.0f;
    backend_.adamw_update(params + tensor.offset, grads + tensor.offset, m_ + tensor.offset,
                          v_ + tensor.offset, tensor.numel, lr, hyper.beta1, hyper.beta2,
                          hyper.eps, decay, scale, static_cast<int>(t_));
  }
  return scale;
}

}  // namespace lmt
