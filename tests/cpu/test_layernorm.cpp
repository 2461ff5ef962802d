// layernorm_forward / layernorm_backward: statistics, finite differences in double (dinp, dweight
// and dbias all accumulate), float vs double agreement.
#include <cmath>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("layernorm forward saves mean and rstd with eps 1e-5", "[cpu][layernorm]") {
  const int N = 5, C = 12;
  std::mt19937 rng(7);
  std::vector<double> inp = random_vector(static_cast<size_t>(N) * C, rng, 2.0);
  const std::vector<double> weight = random_vector(C, rng);
  const std::vector<double> bias = random_vector(C, rng);
  // One nearly constant row: eps dominates its variance.
  for (int c = 0; c < C; ++c) inp[c] = 0.3 + 1e-4 * c;
  std::vector<double> out(inp.size()), mean(N), rstd(N);
  layernorm_forward<double>(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                            bias.data(), N, C);
  for (int n = 0; n < N; ++n) {
    double sum = 0.0;
    for (int c = 0; c < C; ++c) sum += inp[static_cast<size_t>(n) * C + c];
    const double expected_mean = sum / C;
    double variance = 0.0;
    for (int c = 0; c < C; ++c) {
      const double deviation = inp[static_cast<size_t>(n) * C + c] - expected_mean;
      variance += deviation * deviation / C;
    }
    const double expected_rstd = 1.0 / std::sqrt(variance + 1e-5);
    CHECK(mean[n] == Approx(expected_mean).epsilon(1e-12));
    CHECK(rstd[n] == Approx(expected_rstd).epsilon(1e-12));
    for (int c = 0; c < C; ++c) {
      const double expected =
          (inp[static_cast<size_t>(n) * C + c] - expected_mean) * expected_rstd * weight[c] +
          bias[c];
      CHECK(out[static_cast<size_t>(n) * C + c] == Approx(expected).epsilon(1e-12).margin(1e-14));
    }
  }
}

TEST_CASE("layernorm backward matches finite differences and accumulates", "[cpu][layernorm]") {
  const int N = 5, C = 12;
  std::mt19937 rng(11);
  std::vector<double> inp = random_vector(static_cast<size_t>(N) * C, rng, 2.0);
  std::vector<double> weight = random_vector(C, rng);
  std::vector<double> bias = random_vector(C, rng);
  const std::vector<double> upstream = random_vector(inp.size(), rng);  // (N,C)

  std::vector<double> out(inp.size()), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward<double>(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                              bias.data(), N, C);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric_dinp = numerical_gradient(inp, loss);
  const std::vector<double> numeric_dweight = numerical_gradient(weight, loss);
  const std::vector<double> numeric_dbias = numerical_gradient(bias, loss);

  loss();  // mean and rstd at the unperturbed point
  const std::vector<double> dinp_prefill = random_vector(inp.size(), rng);
  const std::vector<double> dweight_prefill = random_vector(C, rng);
  const std::vector<double> dbias_prefill = random_vector(C, rng);
  std::vector<double> dinp = dinp_prefill, dweight = dweight_prefill, dbias = dbias_prefill;
  layernorm_backward<double>(dinp.data(), dweight.data(), dbias.data(), upstream.data(), inp.data(),
                             weight.data(), mean.data(), rstd.data(), N, C);
  check_close(added_to(dinp, dinp_prefill), numeric_dinp, kGradAtol, kGradRtol, "dinp");
  check_close(added_to(dweight, dweight_prefill), numeric_dweight, kGradAtol, kGradRtol, "dweight");
  check_close(added_to(dbias, dbias_prefill), numeric_dbias, kGradAtol, kGradRtol, "dbias");
}

TEST_CASE("layernorm agrees in float and double at odd shapes", "[cpu][layernorm]") {
  const int N = 2 * 37, C = 96;
  std::mt19937 rng(13);
  const std::vector<float> inp = to_float(random_vector(static_cast<size_t>(N) * C, rng, 3.0));
  const std::vector<float> weight = to_float(random_vector(C, rng));
  const std::vector<float> bias = to_float(random_vector(C, rng));
  const std::vector<float> upstream = to_float(random_vector(inp.size(), rng));

  std::vector<float> out_f(inp.size()), mean_f(N), rstd_f(N);
  std::vector<double> out_d(inp.size()), mean_d(N), rstd_d(N);
  layernorm_forward<float>(out_f.data(), mean_f.data(), rstd_f.data(), inp.data(), weight.data(),
                           bias.data(), N, C);
  layernorm_forward<double>(out_d.data(), mean_d.data(), rstd_d.data(), to_double(inp).data(),
                            to_double(weight).data(), to_double(bias).data(), N, C);
  check_close(out_f, out_d, kFloatAtol, kFloatRtol, "layernorm out");
  check_close(mean_f, mean_d, kFloatAtol, kFloatRtol, "layernorm mean");
  check_close(rstd_f, rstd_d, kFloatAtol, kFloatRtol, "layernorm rstd");

  std::vector<float> dinp_f(inp.size()), dweight_f(C), dbias_f(C);
  std::vector<double> dinp_d(inp.size()), dweight_d(C), dbias_d(C);
  layernorm_backward<float>(dinp_f.data(), dweight_f.data(), dbias_f.data(), upstream.data(),
                            inp.data(), weight.data(), mean_f.data(), rstd_f.data(), N, C);
  layernorm_backward<double>(dinp_d.data(), dweight_d.data(), dbias_d.data(),
                             to_double(upstream).data(), to_double(inp).data(),
                             to_double(weight).data(), mean_d.data(), rstd_d.data(), N, C);
  check_close(dinp_f, dinp_d, kFloatAtol, kFloatRtol, "layernorm dinp");
  check_close(dweight_f, dweight_d, kFloatAtol, kFloatRtol, "layernorm dweight");
  check_close(dbias_f, dbias_d, kFloatAtol, kFloatRtol, "layernorm dbias");
}

}  // namespace
}  // namespace lmt::cpu
