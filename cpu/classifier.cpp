// Fused classifier: softmax + cross-entropy + its gradient in one pass over the logits.
// logits (N,Vp): only the first V columns are real classes; columns [V,Vp) are padding and are
// ignored. Targets are trusted to lie in [0,V) (the data layer validates them).
// Gradient rule: losses and dlogits are outputs and are overwritten (=). dlogits is the
// gradient of dloss * sum(losses): (softmax - onehot(target)) * dloss, 0 in the padding. It
// may alias logits, so each row's statistics and loss are computed before the row is
// overwritten, and each column is read before it is written.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/cpu_ops.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {

// One row in double: the definition, and what the double instantiation (the finite-difference
// tests) runs.
void classify_row(double* dlogits_row, double* loss, const double* logits_row, int target,
                  double dloss, int V, int Vp) {
  double max_logit = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < V; ++i) max_logit = std::max(max_logit, logits_row[i]);
  double sum_exp = 0.0;
  for (int i = 0; i < V; ++i) sum_exp += std::exp(logits_row[i] - max_logit);
  const double log_sum_exp = max_logit + std::log(sum_exp);
  *loss = log_sum_exp - logits_row[target];
  if (dlogits_row == nullptr) return;
  for (int i = 0; i < V; ++i) {
    const double probability = std::exp(logits_row[i] - log_sum_exp);
    dlogits_row[i] = (probability - (i == target ? 1.0 : 0.0)) * dloss;
  }
  for (int i = V; i < Vp; ++i) dlogits_row[i] = 0.0;
}

// One row in float: the exponentials by exp_fast (vectorized; 2e-7 relative), their sum over
// eight interleaved double partial sums, the log-sum-exp and the loss in double. With a 50k
// vocabulary the double-precision libm exp of every logit twice per step was 7% of a GPT-2
// 124M step.
constexpr int kLanes = 8;
void classify_row(float* dlogits_row, float* loss, const float* logits_row, int target,
                  float dloss, int V, int Vp) {
  float lane_max[kLanes];
  for (int l = 0; l < kLanes; ++l) lane_max[l] = -std::numeric_limits<float>::infinity();
  int i = 0;
  for (; i + kLanes <= V; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane_max[l] = std::max(lane_max[l], logits_row[i + l]);
  }
  for (int l = 0; i < V; ++i, ++l) lane_max[l] = std::max(lane_max[l], logits_row[i]);
  float max_logit = lane_max[0];
  for (int l = 1; l < kLanes; ++l) max_logit = std::max(max_logit, lane_max[l]);

  double lane_sum[kLanes] = {};
  i = 0;
  for (; i + kLanes <= V; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane_sum[l] += double{exp_fast(logits_row[i + l] - max_logit)};
  }
  for (int l = 0; i < V; ++i, ++l) lane_sum[l] += double{exp_fast(logits_row[i] - max_logit)};
  const double sum_exp = ((lane_sum[0] + lane_sum[1]) + (lane_sum[2] + lane_sum[3])) +
                         ((lane_sum[4] + lane_sum[5]) + (lane_sum[6] + lane_sum[7]));
  const double log_sum_exp = double{max_logit} + std::log(sum_exp);
  *loss = static_cast<float>(log_sum_exp - double{logits_row[target]});
  if (dlogits_row == nullptr) return;
  // Each column is read before it is written, so dlogits may alias logits.
  const float target_logit = logits_row[target];
  const float lse = static_cast<float>(log_sum_exp);
  for (int j = 0; j < V; ++j) dlogits_row[j] = exp_fast(logits_row[j] - lse) * dloss;
  dlogits_row[target] = (exp_fast(target_logit - lse) - 1.0f) * dloss;
  for (int j = V; j < Vp; ++j) dlogits_row[j] = 0.0f;
}

}  // namespace

template <typename Real>
void classifier_forward_backward(Real* dlogits, Real* losses, const Real* logits,
                                 const int32_t* targets, Real dloss, int N, int V, int Vp) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    classify_row(dlogits != nullptr ? dlogits + int64_t{n} * Vp : nullptr, losses + n,
                 logits + int64_t{n} * Vp, targets[n], dloss, V, Vp);
  }
}

template void classifier_forward_backward<float>(float*, float*, const float*, const int32_t*,
                                                 float, int, int, int);
template void classifier_forward_backward<double>(double*, double*, const double*, const int32_t*,
                                                  double, int, int, int);

}  // namespace lmt::cpu
