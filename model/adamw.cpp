#include "model/adamw.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

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

std::vector<float> AdamW::get_m() const {
  std::vector<float> host(num_params_);
  backend_.copy_to_host(host.data(), m_, num_params_ * sizeof(float));
  return host;
}

std::vector<float> AdamW::get_v() const {
  std::vector<float> host(num_params_);
  backend_.copy_to_host(host.data(), v_, num_params_ * sizeof(float));
  return host;
}

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step_count) {
  if (m.size() != num_params_ || v.size() != num_params_)
    throw Error(fmt::format("optimizer state has {} / {} values, the model needs {}", m.size(),
                            v.size(), num_params_));
  backend_.copy_to_device(m_, m.data(), num_params_ * sizeof(float));
  backend_.copy_to_device(v_, v.data(), num_params_ * sizeof(float));
  t_ = step_count;
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
