// Fused causal multi-head self-attention, scale 1/sqrt(HS).
// qkv (B,T,3C) holds q|k|v per row, head h at columns [h*HS,(h+1)*HS) of each third.
// Forward saves lse (B,NH,T), the natural log-sum-exp of each query's scaled scores over keys
// 0..t, so backward can recompute the probabilities p = exp(score - lse) without storing any
// T x T matrix.
// Gradient rule: dqkv is an activation gradient and is overwritten (=).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

namespace {

template <typename Real>
Real dot(const Real* a, const Real* b, int n) {
  Real sum = Real{0};
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

template <typename Real>
void attention_forward(Real* out, Real* lse, const Real* qkv, int B, int T, int C, int NH) {
  const int HS = C / NH;
  const int64_t qkv_row_stride = int64_t{3} * C;
  const Real scale = Real{1} / std::sqrt(static_cast<Real>(HS));
  const int num_pairs = B * NH;
#pragma omp parallel
  {
    std::vector<Real> weights(static_cast<size_t>(std::max(T, 0)));  // (T) scores, then exp
#pragma omp for schedule(static)
    for (int pair = 0; pair < num_pairs; ++pair) {
      const int b = pair / NH;
      const int h = pair % NH;
      const Real* qkv_batch = qkv + int64_t{b} * T * qkv_row_stride;  // (T,3C)
      Real* lse_row = lse + (int64_t{b} * NH + h) * T;                // (T)
      for (int t = 0; t < T; ++t) {
        const Real* query = qkv_batch + t * qkv_row_stride + h * HS;  // (HS)
        Real max_score = -std::numeric_limits<Real>::infinity();
        for (int key_t = 0; key_t <= t; ++key_t) {
          const Real* key = qkv_batch + key_t * qkv_row_stride + C + h * HS;  // (HS)
          const Real score = dot(query, key, HS) * scale;
          weights[key_t] = score;
          max_score = std::max(max_score, score);
        }
        // Subtracting the max keeps exp in range; lse adds it back.
        Real sum_exp = Real{0};
        for (int key_t = 0; key_t <= t; ++key_t) {
          weights[key_t] = std::exp(weights[key_t] - max_score);
          sum_exp += weights[key_t];
        }
        lse_row[t] = max_score + std::log(sum_exp);

        const Real inv_sum_exp = Real{1} / sum_exp;
        Real* out_head = out + (int64_t{b} * T + t) * C + h * HS;  // (HS)
        std::fill(out_head, out_head + HS, Real{0});
        for (int key_t = 0; key_t <= t; ++key_t) {
          const Real* value = qkv_batch + key_t * qkv_row_stride + 2 * C + h * HS;  // (HS)
          const Real probability = weights[key_t] * inv_sum_exp;
          for (int d = 0; d < HS; ++d) out_head[d] += probability * value[d];
        }
      }
    }
  }
}

template <typename Real>
void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* out,
                        const Real* lse, int B, int T, int C, int NH) {
  // The flash-attention backward, per query t and key t2 <= t:
  //   p = exp(scale * q_t . k_t2 - lse_t)      D_t = dout_t . out_t
  //   dS = p * (dout_t . v_t2 - D_t)
  //   dq_t += scale * dS * k_t2,  dk_t2 += scale * dS * q_t,  dv_t2 += p * dout_t
  // D_t replaces the row sum of p * dP of the softmax backward, which is why out is an input.
  // Each (b, h) pair owns the columns of head h in batch row b of dqkv, so pairs run in
  // parallel without races, and within a pair the order of the sums is fixed.
  const int HS = C / NH;
  const int64_t qkv_row_stride = int64_t{3} * C;
  const Real scale = Real{1} / std::sqrt(static_cast<Real>(HS));
  const int num_pairs = B * NH;
#pragma omp parallel for schedule(static)
  for (int pair = 0; pair < num_pairs; ++pair) {
    const int b = pair / NH;
    const int h = pair % NH;
    const Real* qkv_batch = qkv + int64_t{b} * T * qkv_row_stride;  // (T,3C)
    Real* dqkv_batch = dqkv + int64_t{b} * T * qkv_row_stride;      // (T,3C)
    const Real* lse_row = lse + (int64_t{b} * NH + h) * T;          // (T)

    for (int t = 0; t < T; ++t) {
      Real* dqkv_row = dqkv_batch + t * qkv_row_stride;
      for (int third = 0; third < 3; ++third) {
        std::fill_n(dqkv_row + third * C + h * HS, HS, Real{0});
      }
    }

    for (int t = 0; t < T; ++t) {
      const Real* query = qkv_batch + t * qkv_row_stride + h * HS;       // (HS)
      Real* dquery = dqkv_batch + t * qkv_row_stride + h * HS;           // (HS)
      const Real* dout_head = dout + (int64_t{b} * T + t) * C + h * HS;  // (HS)
      const Real* out_head = out + (int64_t{b} * T + t) * C + h * HS;    // (HS)
      const Real dout_dot_out = dot(dout_head, out_head, HS);
      for (int key_t = 0; key_t <= t; ++key_t) {
        const Real* key = qkv_batch + key_t * qkv_row_stride + C + h * HS;        // (HS)
        const Real* value = qkv_batch + key_t * qkv_row_stride + 2 * C + h * HS;  // (HS)
        Real* dkey = dqkv_batch + key_t * qkv_row_stride + C + h * HS;            // (HS)
        Real* dvalue = dqkv_batch + key_t * qkv_row_stride + 2 * C + h * HS;      // (HS)
        const Real probability = std::exp(dot(query, key, HS) * scale - lse_row[t]);
        const Real dscore = probability * (dot(dout_head, value, HS) - dout_dot_out);
        const Real dscore_scaled = dscore * scale;
        for (int d = 0; d < HS; ++d) {
          dquery[d] += dscore_scaled * key[d];
          dkey[d] += dscore_scaled * query[d];
          dvalue[d] += probability * dout_head[d];
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, int, int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, int, int, int, int);

}  // namespace lmt::cpu
