// classifier_forward_backward: losses, dlogits by finite differences in double, zero padding,
// padding ignored, aliasing dlogits == logits, null dlogits, float vs double agreement.
#include <cmath>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

constexpr int N = 5, V = 11, Vp = 16;

TEST_CASE("classifier losses are logsumexp minus the target logit", "[cpu][classifier]") {
  std::mt19937 rng(61);
  std::vector<double> logits = random_vector(static_cast<size_t>(N) * Vp, rng, 3.0);
  const std::vector<int32_t> targets = random_tokens(N, V, rng);
  std::vector<double> losses(N);
  classifier_forward_backward<double>(nullptr, losses.data(), logits.data(), targets.data(), 1.0, N,
                                      V, Vp);
  for (int n = 0; n < N; ++n) {
    double sum_exp = 0.0;
    for (int i = 0; i < V; ++i) sum_exp += std::exp(logits[static_cast<size_t>(n) * Vp + i]);
    CHECK(losses[n] == Approx(std::log(sum_exp) - logits[static_cast<size_t>(n) * Vp + targets[n]])
                           .epsilon(1e-13));
  }

  // The padded columns do not take part, whatever they hold.
  for (int n = 0; n < N; ++n) {
    for (int i = V; i < Vp; ++i)
      logits[static_cast<size_t>(n) * Vp + i] = (i % 2 == 0) ? 100.0 : -100.0;
  }
  std::vector<double> losses_big_padding(N);
  classifier_forward_backward<double>(nullptr, losses_big_padding.data(), logits.data(),
                                      targets.data(), 1.0, N, V, Vp);
  CHECK(losses_big_padding == losses);
}

TEST_CASE("classifier dlogits match finite differences", "[cpu][classifier]") {
  std::mt19937 rng(67);
  std::vector<double> logits = random_vector(static_cast<size_t>(N) * Vp, rng, 3.0);  // (N,Vp)
  std::vector<int32_t> targets = random_tokens(N, V, rng);
  targets[0] = V - 1;  // the last real column
  const double dloss = 0.37;

  std::vector<double> losses(N);
  auto loss = [&] {
    classifier_forward_backward<double>(nullptr, losses.data(), logits.data(), targets.data(),
                                        dloss, N, V, Vp);
    double total = 0.0;
    for (double row_loss : losses) total += row_loss;
    return dloss * total;  // dlogits is the gradient of dloss * sum(losses)
  };
  const std::vector<double> numeric_dlogits = numerical_gradient(logits, loss);

  std::vector<double> dlogits = nan_vector(logits.size());  // overwritten, padding included
  std::vector<double> losses_with_grad(N);
  classifier_forward_backward<double>(dlogits.data(), losses_with_grad.data(), logits.data(),
                                      targets.data(), dloss, N, V, Vp);
  check_close(dlogits, numeric_dlogits, kGradAtol, kGradRtol, "dlogits");
  for (int n = 0; n < N; ++n) {
    for (int i = V; i < Vp; ++i) CHECK(dlogits[static_cast<size_t>(n) * Vp + i] == 0.0);
  }
  loss();
  CHECK(losses_with_grad == losses);  // computing dlogits does not change the losses

  SECTION("dlogits aliasing logits gives the same result") {
    std::vector<double> in_place = logits;
    std::vector<double> losses_in_place(N);
    classifier_forward_backward<double>(in_place.data(), losses_in_place.data(), in_place.data(),
                                        targets.data(), dloss, N, V, Vp);
    CHECK(in_place == dlogits);
    CHECK(losses_in_place == losses_with_grad);

    std::vector<float> in_place_f = to_float(logits);
    std::vector<float> losses_in_place_f(N), dlogits_f(logits.size()), losses_f(N);
    const std::vector<float> logits_f = to_float(logits);
    classifier_forward_backward<float>(dlogits_f.data(), losses_f.data(), logits_f.data(),
                                       targets.data(), static_cast<float>(dloss), N, V, Vp);
    classifier_forward_backward<float>(in_place_f.data(), losses_in_place_f.data(),
                                       in_place_f.data(), targets.data(), static_cast<float>(dloss),
                                       N, V, Vp);
    CHECK(in_place_f == dlogits_f);
    CHECK(losses_in_place_f == losses_f);
  }
}

TEST_CASE("classifier agrees in float and double at odd shapes", "[cpu][classifier]") {
  const int rows = 2 * 37, vocab = 101, padded_vocab = 128;
  std::mt19937 rng(71);
  const std::vector<float> logits =
      to_float(random_vector(static_cast<size_t>(rows) * padded_vocab, rng, 4.0));
  const std::vector<int32_t> targets = random_tokens(rows, vocab, rng);
  const float dloss = 1.0f / rows;
  std::vector<float> dlogits_f(logits.size()), losses_f(rows);
  std::vector<double> dlogits_d(logits.size()), losses_d(rows);
  classifier_forward_backward<float>(dlogits_f.data(), losses_f.data(), logits.data(),
                                     targets.data(), dloss, rows, vocab, padded_vocab);
  classifier_forward_backward<double>(dlogits_d.data(), losses_d.data(), to_double(logits).data(),
                                      targets.data(), double{dloss}, rows, vocab, padded_vocab);
  check_close(losses_f, losses_d, kFloatAtol, kFloatRtol, "classifier losses");
  check_close(dlogits_f, dlogits_d, kFloatAtol, kFloatRtol, "classifier dlogits");
}

}  // namespace
}  // namespace lmt::cpu
