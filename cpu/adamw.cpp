// AdamW with decoupled weight decay, and the gradient sum of squares used for clipping.
// Gradient rule: no gradients are produced here; params, m and v are updated in place and
// grads are only read.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

template <typename Real>
double sum_squares(const Real* grads, size_t n) {
  // Fixed-size chunks summed in parallel, then the partial sums added in chunk order: the
  // result is the same bits for any thread count, which an OpenMP reduction does not promise.
  constexpr int64_t kChunk = 1 << 16;
  const int64_t count = static_cast<int64_t>(n);
  const int64_t num_chunks = (count + kChunk - 1) / kChunk;
  std::vector<double> partial_sums(static_cast<size_t>(num_chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
    const int64_t begin = chunk * kChunk;
    const int64_t end = std::min(count, begin + kChunk);
    // Eight interleaved partial sums (combined in a fixed order): they vectorize, where one
    // running sum waits on the add latency for every element.
    constexpr int kLanes = 8;
    double lanes[kLanes] = {};
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += double{grads[i + l]} * double{grads[i + l]};
    }
    for (int l = 0; i < end; ++i, ++l) lanes[l] += double{grads[i]} * double{grads[i]};
    partial_sums[static_cast<size_t>(chunk)] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                                               ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  }
  double total = 0.0;
  for (double partial : partial_sums) total += partial;
  return total;
}

namespace {

template <typename Real>
[[gnu::always_inline]] inline void adamw_range(Real* params, const Real* grads, Real* m, Real* v,
                                               int64_t begin, int64_t end, Real lr, Real beta1,
                                               Real beta2, Real eps, Real weight_decay,
                                               Real grad_scale, Real bias_correction1,
                                               Real bias_correction2) {
  for (int64_t i = begin; i < end; ++i) {
    const Real grad = grads[i] * grad_scale;
    const Real m_new = beta1 * m[i] + (Real{1} - beta1) * grad;
    const Real v_new = beta2 * v[i] + (Real{1} - beta2) * grad * grad;
    m[i] = m_new;
    v[i] = v_new;
    const Real m_hat = m_new / bias_correction1;
    const Real v_hat = v_new / bias_correction2;
    // Decoupled weight decay: applied to the old parameter value, scaled by lr, not by the
    // adaptive denominator.
    const Real old_param = params[i];
    params[i] = old_param - lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * old_param);
  }
}

// float: compiled for AVX-512 too (cpu/vec_math.h).
LMT_AVX512_CLONES void adamw_range_f32(float* params, const float* grads, float* m, float* v,
                                       int64_t begin, int64_t end, float lr, float beta1,
                                       float beta2, float eps, float weight_decay,
                                       float grad_scale, float bias_correction1,
                                       float bias_correction2) {
  adamw_range(params, grads, m, v, begin, end, lr, beta1, beta2, eps, weight_decay, grad_scale,
              bias_correction1, bias_correction2);
}
void run_adamw_range(float* params, const float* grads, float* m, float* v, int64_t begin,
                     int64_t end, float lr, float beta1, float beta2, float eps,
                     float weight_decay, float grad_scale, float bias_correction1,
                     float bias_correction2) {
  adamw_range_f32(params, grads, m, v, begin, end, lr, beta1, beta2, eps, weight_decay,
                  grad_scale, bias_correction1, bias_correction2);
}
void run_adamw_range(double* params, const double* grads, double* m, double* v, int64_t begin,
                     int64_t end, double lr, double beta1, double beta2, double eps,
                     double weight_decay, double grad_scale, double bias_correction1,
                     double bias_correction2) {
  adamw_range(params, grads, m, v, begin, end, lr, beta1, beta2, eps, weight_decay, grad_scale,
              bias_correction1, bias_correction2);
}

constexpr int64_t kAdamChunk = 8192;  // elements per parallel work item

}  // namespace

template <typename Real>
void adamw_update(Real* params, const Real* grads, Real* m, Real* v, size_t n, Real lr, Real beta1,
                  Real beta2, Real eps, Real weight_decay, Real grad_scale, int t) {
  // Bias corrections from the 1-based step t, computed in double: b^t for b near 1 and large t
  // loses digits in float.
  const Real bias_correction1 = static_cast<Real>(1.0 - std::pow(double{beta1}, t));
  const Real bias_correction2 = static_cast<Real>(1.0 - std::pow(double{beta2}, t));
  const int64_t count = static_cast<int64_t>(n);
  const int64_t num_chunks = (count + kAdamChunk - 1) / kAdamChunk;
#pragma omp parallel for schedule(static) if (num_chunks > 1)
  for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
    run_adamw_range(params, grads, m, v, chunk * kAdamChunk,
                    std::min(count, (chunk + 1) * kAdamChunk), lr, beta1, beta2, eps,
                    weight_decay, grad_scale, bias_correction1, bias_correction2);
  }
}

template double sum_squares<float>(const float*, size_t);
template double sum_squares<double>(const double*, size_t);
template void adamw_update<float>(float*, const float*, float*, float*, size_t, float, float, float,
                                  float, float, float, int);
template void adamw_update<double>(double*, const double*, double*, double*, size_t, double, double,
                                   double, double, double, double, int);

}  // namespace lmt::cpu
