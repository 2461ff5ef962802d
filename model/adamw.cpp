#include "model/adamw.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmt {

AdamW::AdamW(Backend& backend, const OptimizerConfig& config, std::vector<ParamTensor> layout, size_t num_params)
    : AdamW(backend, config, std::move(layout), num_params, 0, num_params) {}

AdamW::AdamW(Backend& backend, const OptimizerConfig& config, std::vector<ParamTensor> layout, size_t num_params,
             size_t shard_begin, size_t shard_end)
    : backend_(backend),
      beta1_(static_cast<float>(config.beta1)),
      beta2_(static_cast<float>(config.beta2)),
      eps_(static_cast<float>(config.eps)),
      weight_decay_(static_cast<float>(config.weight_decay)),
      grad_clip_(static_cast<float>(config.grad_clip)),
      layout_(std::move(layout)),
      num_params_(num_params),
      begin_(shard_begin),
      end_(shard_end) {
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

void AdamW::copy_moment_to_host(bool second, size_t first, size_t count, float* dst) const {
  const size_t owned = end_ - begin_;
  LMT_CHECK(first <= owned && count <= owned - first,
            fmt::format("copy_moment_to_host: [{}, {}) is outside the {} owned values", first, first + count, owned));
  backend_.copy_to_host(dst, (second ? v_ : m_) + first, count * sizeof(float));
}

void AdamW::copy_moment_from_host(bool second, size_t first, size_t count, const float* src) {
  const size_t owned = end_ - begin_;
  LMT_CHECK(first <= owned && count <= owned - first,
            fmt::format("copy_moment_from_host: [{}, {}) is outside the {} owned values", first, first + count, owned));
  backend_.copy_to_device((second ? v_ : m_) + first, src, count * sizeof(float));
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

float AdamW::step(float* params, const float* grads, float lr, double grad_norm, float unscale) {
  float scale = 1.0f;
  if (grad_clip_ > 0.0f && grad_norm > grad_clip_) scale = static_cast<float>(grad_clip_ / (grad_norm + 1e-6));
  ++t_;
  for (const ParamTensor& tensor : layout_) {
    // The part of this tensor inside the owned range (all of it without sharding).
    const size_t lo = std::max<size_t>(tensor.offset, begin_);
    const size_t hi = std::min<size_t>(tensor.offset + tensor.numel, end_);
    if (lo >= hi) continue;
    const float decay = tensor.weight_decay ? weight_decay_ : 0.0f;
    backend_.adamw_update(params + lo, grads + lo, m_ + (lo - begin_), v_ + (lo - begin_), hi - lo, lr, beta1_,
                          beta2_, eps_, decay, scale * unscale, static_cast<int>(t_));
  }
  return scale;
}

}  // namespace lmt
