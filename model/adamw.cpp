#include "model/adamw.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmt {

AdamW::AdamW(Backend& backend, std::vector<ParamTensor> layout, size_t num_params)
    : AdamW(backend, std::move(layout), num_params, 0, num_params) {}

AdamW::AdamW(Backend& backend, std::vector<ParamTensor> layout, size_t num_params, size_t shard_begin,
             size_t shard_end)
    : backend_(backend), layout_(std::move(layout)), num_params_(num_params), begin_(shard_begin), end_(shard_end) {
  LMT_CHECK(shard_begin <= shard_end && shard_end <= num_params,
            fmt::format("AdamW: shard [{}, {}) is outside the {} parameters", shard_begin, shard_end, num_params));
  const size_t owned = std::max<size_t>(1, end_ - begin_);  // alloc(0) is not portable
  m_ = static_cast<float*>(backend_.alloc(owned * sizeof(float)));
  v_ = static_cast<float*>(backend_.alloc(owned * sizeof(float)));
}

AdamW::~AdamW() {
  backend_.free(m_);
  backend_.free(v_);
}

std::vector<float> AdamW::get_m() const {
  std::vector<float> host(end_ - begin_);
  backend_.copy_to_host(host.data(), m_, host.size() * sizeof(float));
  return host;
}

std::vector<float> AdamW::get_v() const {
  std::vector<float> host(end_ - begin_);
  backend_.copy_to_host(host.data(), v_, host.size() * sizeof(float));
  return host;
}

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step_count) {
  const size_t owned = end_ - begin_;
  if (m.size() != owned || v.size() != owned)
    throw Error(fmt::format("optimizer state has {} / {} values, this optimizer owns {}", m.size(),
                            v.size(), owned));
  backend_.copy_to_device(m_, m.data(), owned * sizeof(float));
  backend_.copy_to_device(v_, v.data(), owned * sizeof(float));
  t_ = step_count;
}

double AdamW::grad_norm(const float* grads) const {
  return std::sqrt(backend_.sum_squares(grads, num_params_));
}

float AdamW::step(float* params, const float* grads, const AdamWHyper& hyper, float lr,
                  double grad_norm, float unscale) {
  float scale = 1.0f;
  if (hyper.grad_clip > 0.0f && grad_norm > hyper.grad_clip)
    scale = static_cast<float>(hyper.grad_clip / (grad_norm + 1e-6));
  ++t_;
  for (const ParamTensor& tensor : layout_) {
    // The part of this tensor inside the owned range (all of it without sharding).
    const size_t lo = std::max<size_t>(tensor.offset, begin_);
    const size_t hi = std::min<size_t>(tensor.offset + tensor.numel, end_);
    if (lo >= hi) continue;
    const float decay = tensor.weight_decay ? hyper.weight_decay : 0.0f;
    backend_.adamw_update(params + lo, grads + lo, m_ + (lo - begin_), v_ + (lo - begin_), hi - lo, lr,
                          hyper.beta1, hyper.beta2, hyper.eps, decay, scale * unscale, static_cast<int>(t_));
  }
  return scale;
}

}  // namespace lmt
