// gelu_forward / gelu_backward and residual_forward: formula checks, finite differences in double
// (dinp overwritten), float vs double agreement.
#include <cmath>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

double gelu_tanh(double x) {
  const double pi = 3.14159265358979323846;
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

TEST_CASE("gelu forward is the tanh approximation", "[cpu][gelu]") {
  std::mt19937 rng(51);
  const std::vector<double> inp = random_vector(61, rng, 4.0);
  std::vector<double> out(inp.size());
  gelu_forward<double>(out.data(), inp.data(), inp.size());
  std::vector<double> expected(inp.size());
  for (size_t i = 0; i < inp.size(); ++i) expected[i] = gelu_tanh(inp[i]);
  check_close(out, expected, 1e-15, 1e-14, "gelu out");
}

TEST_CASE("gelu backward matches finite differences", "[cpu][gelu]") {
  const size_t n = 5 * 12;
  std::mt19937 rng(53);
  std::vector<double> inp = random_vector(n, rng, 4.0);  // covers the curved region
  const std::vector<double> upstream = random_vector(n, rng);
  std::vector<double> out(n);
  auto loss = [&] {
    gelu_forward<double>(out.data(), inp.data(), n);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric_dinp = numerical_gradient(inp, loss);
  std::vector<double> dinp = nan_vector(n);  // overwritten
  gelu_backward<double>(dinp.data(), inp.data(), upstream.data(), n);
  check_close(dinp, numeric_dinp, kGradAtol, kGradRtol, "gelu dinp");
}

TEST_CASE("gelu agrees in float and double at odd sizes", "[cpu][gelu]") {
  const size_t n = size_t{2} * 37 * 4 * 96;
  std::mt19937 rng(57);
  const std::vector<float> inp = to_float(random_vector(n, rng, 5.0));
  const std::vector<float> upstream = to_float(random_vector(n, rng));
  std::vector<float> out_f(n), dinp_f(n);
  std::vector<double> out_d(n), dinp_d(n);
  gelu_forward<float>(out_f.data(), inp.data(), n);
  gelu_forward<double>(out_d.data(), to_double(inp).data(), n);
  check_close(out_f, out_d, kFloatAtol, kFloatRtol, "gelu out");
  gelu_backward<float>(dinp_f.data(), inp.data(), upstream.data(), n);
  gelu_backward<double>(dinp_d.data(), to_double(inp).data(), to_double(upstream).data(), n);
  check_close(dinp_f, dinp_d, kFloatAtol, kFloatRtol, "gelu dinp");
}

TEST_CASE("residual forward adds elementwise", "[cpu][residual]") {
  const size_t n = size_t{2} * 37 * 96 + 3;
  std::mt19937 rng(59);
  const std::vector<double> inp1 = random_vector(n, rng);
  const std::vector<double> inp2 = random_vector(n, rng);
  std::vector<double> out = nan_vector(n);
  residual_forward<double>(out.data(), inp1.data(), inp2.data(), n);
  for (size_t i = 0; i < n; ++i) REQUIRE(out[i] == inp1[i] + inp2[i]);

  std::vector<float> out_f(n);
  residual_forward<float>(out_f.data(), to_float(inp1).data(), to_float(inp2).data(), n);
  check_close(out_f, out, kFloatAtol, kFloatRtol, "residual out");

  // In place (out aliases inp1), as the model may use it.
  std::vector<double> accumulated = inp1;
  residual_forward<double>(accumulated.data(), accumulated.data(), inp2.data(), n);
  CHECK(accumulated == out);
}

}  // namespace
}  // namespace lmt::cpu
