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

namespace lmt::cpu {

template <typename Real>
void classifier_forward_backward(Real* dlogits, Real* losses, const Real* logits,
                                 const int32_t* targets, Real dloss, int N, int V, int Vp) {
#pragma omp parallel for schedule(dynamic, 16)
  for (int n = 0; n < N; ++n) {
    const Real* logits_row = logits + int64_t{n} * Vp;  // (Vp)
    // Sum in double: V is large (50k) and this is the reference the fast paths are held to.
    double max_logit = -std::numeric_limits<double>::infinity();
    for (int i = 0; i < V; ++i) max_logit = std::max(max_logit, double{logits_row[i]});
    double sum_exp = 0.0;
    for (int i = 0; i < V; ++i) sum_exp += std::exp(logits_row[i] - max_logit);
    const double log_sum_exp = max_logit + std::log(sum_exp);
    const int target = targets[n];
    losses[n] = static_cast<Real>(log_sum_exp - logits_row[target]);

    if (dlogits == nullptr) continue;
    Real* dlogits_row = dlogits + int64_t{n} * Vp;  // (Vp), may be logits_row itself
    for (int i = 0; i < V; ++i) {
      const double probability = std::exp(logits_row[i] - log_sum_exp);
      const double indicator = (i == target) ? 1.0 : 0.0;
      dlogits_row[i] = static_cast<Real>((probability - indicator) * dloss);
    }
    for (int i = V; i < Vp; ++i) dlogits_row[i] = Real{0};
  }
}

template void classifier_forward_backward<float>(float*, float*, const float*, const int32_t*,
                                                 float, int, int, int);
template void classifier_forward_backward<double>(double*, double*, const double*, const int32_t*,
                                                  double, int, int, int);

}  // namespace lmt::cpu
