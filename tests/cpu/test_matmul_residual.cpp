// matmul_residual_forward: float (residual added in the GEMM's epilogue) against the double
// definition matmul_forward + residual_forward, across the GEMM's k and column blocks, with and
// without bias, output poisoned.
#include <cmath>
#include <limits>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("matmul_residual_forward matches matmul + residual in double", "[cpu][matmul]") {
  struct Shape {
    int N, C, OC;
  };
  const Shape shape = GENERATE(Shape{3, 5, 7}, Shape{37, 300, 96}, Shape{9, 20, 1030});
  const bool with_bias = GENERATE(true, false);
  const int N = shape.N, C = shape.C, OC = shape.OC;
  INFO("N " << N << " C " << C << " OC " << OC << " bias " << with_bias);
  std::mt19937 rng(N + C + OC);
  const std::vector<double> inp = random_vector(size_t(N) * C, rng);
  const std::vector<double> weight = random_vector(size_t(OC) * C, rng, 0.2);
  const std::vector<double> bias = random_vector(OC, rng);
  const std::vector<double> residual = random_vector(size_t(N) * OC, rng);
  std::vector<double> expected(size_t(N) * OC);
  matmul_residual_forward<double>(expected.data(), residual.data(), inp.data(), weight.data(),
                                  with_bias ? bias.data() : nullptr, N, C, OC);
  // The double version is the definition; check it once by hand too.
  double sum = residual[0] + (with_bias ? bias[0] : 0.0);
  for (int c = 0; c < C; ++c) sum += inp[c] * weight[c];
  CHECK(expected[0] == Approx(sum).epsilon(1e-12));

  std::vector<float> out(size_t(N) * OC, std::numeric_limits<float>::quiet_NaN());
  const std::vector<float> bias_f = to_float(bias);
  matmul_residual_forward<float>(out.data(), to_float(residual).data(), to_float(inp).data(),
                                 to_float(weight).data(), with_bias ? bias_f.data() : nullptr, N, C,
                                 OC);
  check_close(out, expected, 1e-5 * std::sqrt(double(C)), kFloatRtol, "matmul_residual out");
}

}  // namespace
}  // namespace lmt::cpu
