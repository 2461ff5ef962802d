// Causal attention against a KV cache, for generation: the training op (cpu/attention.cpp)
// recomputes every key of the sequence, this one keeps each layer's keys and values of the
// positions seen so far in k_cache and v_cache (B, NH, capacity, HS) and adds the new ones.
// A step of Tn new positions then costs O(Tn * (pos + Tn) * C), not a forward over the whole
// sequence. Inference only, so there is no backward and no log-sum-exp to save.
//
//   1. k_cache[b, h, pos + t] = k[b, t, h], v_cache likewise, for t < Tn.
//   2. out[b, t, h] = sum_j softmax_j(q[b, t, h] . k_cache[b, h, j] / sqrt(HS)) v_cache[b, h, j]
//      over j <= pos + t (causal).
//
// Each (batch, head, query) is one task over the threads; within it the scores are a plain
// loop, softmax with its max subtracted, and the weighted sum of values in key order. Every
// output is computed by one thread in a fixed order, so results do not depend on the thread
// count.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

template <typename Real>
void attention_cached_forward(Real* out, Real* k_cache, Real* v_cache, const Real* qkv, int B, int Tn, int pos,
                              int capacity, int C, int NH) {
  const int HS = C / NH;
  const size_t row = 3 * static_cast<size_t>(C);
  auto cache_at = [&](Real* cache, int b, int h, int j) {
    return cache + ((static_cast<size_t>(b) * NH + h) * capacity + j) * HS;
  };
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < Tn; ++t) {
      const Real* src = qkv + (static_cast<size_t>(b) * Tn + t) * row;
      for (int h = 0; h < NH; ++h) {
        std::copy(src + C + h * HS, src + C + (h + 1) * HS, cache_at(k_cache, b, h, pos + t));
        std::copy(src + 2 * C + h * HS, src + 2 * C + (h + 1) * HS, cache_at(v_cache, b, h, pos + t));
      }
    }
  const Real scale = static_cast<Real>(1.0 / std::sqrt(static_cast<double>(HS)));
#pragma omp parallel
  {
    std::vector<Real> scores(static_cast<size_t>(pos) + Tn);
    std::vector<Real> acc(static_cast<size_t>(HS));
#pragma omp for collapse(3) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < Tn; ++t) {
          const Real* q = qkv + (static_cast<size_t>(b) * Tn + t) * row + h * HS;
          const int keys = pos + t + 1;
          Real max_score = -INFINITY;
          for (int j = 0; j < keys; ++j) {
            const Real* k = cache_at(k_cache, b, h, j);
            Real dot = 0;
            for (int d = 0; d < HS; ++d) dot += q[d] * k[d];
            scores[j] = dot * scale;
            max_score = std::max(max_score, scores[j]);
          }
          Real sum = 0;
          for (int j = 0; j < keys; ++j) {
            scores[j] = std::exp(scores[j] - max_score);
            sum += scores[j];
          }
          std::fill(acc.begin(), acc.end(), Real(0));
          for (int j = 0; j < keys; ++j) {
            const Real* v = cache_at(v_cache, b, h, j);
            const Real p = scores[j];
            for (int d = 0; d < HS; ++d) acc[d] += p * v[d];
          }
          Real* o = out + (static_cast<size_t>(b) * Tn + t) * C + h * HS;
          const Real inv = Real(1) / sum;
          for (int d = 0; d < HS; ++d) o[d] = acc[d] * inv;
        }
  }
}

template void attention_cached_forward<float>(float*, float*, float*, const float*, int, int, int, int, int, int);
template void attention_cached_forward<double>(double*, double*, double*, const double*, int, int, int, int, int,
                                               int);

}  // namespace lmt::cpu
