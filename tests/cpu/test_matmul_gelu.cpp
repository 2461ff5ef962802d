// matmul_gelu_forward / matmul_backward_gelu: the float versions (GELU in the GEMM's epilogue)
// against the double composition of matmul and GELU, at shapes that cross the GEMM's k block
// (256) and column block (1024) so the epilogue must run once per tile, after the last k block;
// the double versions against finite differences; outputs poisoned so unwritten elements fail.
#include <cmath>
#include <limits>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu::test {
namespace {

struct Shape {
  int N, C, OC;
};

TEST_CASE("matmul_gelu forward and backward match matmul + gelu in double", "[cpu][matmul]") {
  const Shape shape = GENERATE(Shape{5, 7, 9}, Shape{37, 300, 70}, Shape{13, 40, 1100});
  const int N = shape.N, C = shape.C, OC = shape.OC;
  INFO("N " << N << " C " << C << " OC " << OC);
  std::mt19937 rng(N * 7 + C);
  const std::vector<double> inp = random_vector(size_t(N) * C, rng);
  const std::vector<double> weight = random_vector(size_t(OC) * C, rng, 0.2);
  const std::vector<double> bias = random_vector(OC, rng);
  const std::vector<double> dout_next = random_vector(size_t(N) * C, rng);  // upstream for layer 2

  // Double reference: pre = inp w^T + b, out = gelu(pre).
  std::vector<double> pre_d(size_t(N) * OC), out_d(size_t(N) * OC);
  matmul_forward<double>(pre_d.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
  gelu_forward<double>(out_d.data(), pre_d.data(), pre_d.size());

  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> pre(size_t(N) * OC, nan), out(size_t(N) * OC, nan);
  matmul_gelu_forward<float>(pre.data(), out.data(), to_float(inp).data(), to_float(weight).data(),
                             to_float(bias).data(), N, C, OC);
  const double tolerance = 1e-5 * std::sqrt(double(C));
  check_close(pre, pre_d, tolerance, kFloatRtol, "pre");
  check_close(out, out_d, tolerance, kFloatRtol, "gelu out");

  // The backward of a second layer y = out @ w2^T (w2: (C, OC)) whose input is gelu(pre).
  const std::vector<double> weight2 = random_vector(size_t(C) * OC, rng, 0.2);
  std::vector<double> dpre_d(size_t(N) * OC), dw2_d(size_t(C) * OC, 0.5), db2_d(C, 0.25);
  matmul_backward<double>(dpre_d.data(), dw2_d.data(), db2_d.data(), dout_next.data(), out_d.data(),
                          weight2.data(), N, OC, C);
  gelu_backward<double>(dpre_d.data(), pre_d.data(), dpre_d.data(), dpre_d.size());

  std::vector<float> dpre(size_t(N) * OC, nan), dw2(size_t(C) * OC, 0.5f), db2(C, 0.25f);
  matmul_backward_gelu<float>(dpre.data(), dw2.data(), db2.data(), to_float(dout_next).data(),
                              out.data(), to_float(weight2).data(), pre.data(), N, OC, C);
  check_close(dpre, dpre_d, tolerance, kFloatRtol, "dpre");
  check_close(dw2, dw2_d, 1e-5 * std::sqrt(double(N)), kFloatRtol, "dweight (accumulated onto 0.5)");
  check_close(db2, db2_d, 1e-5 * std::sqrt(double(N)), kFloatRtol, "dbias (accumulated onto 0.25)");
}

TEST_CASE("matmul_backward_gelu in double matches finite differences", "[cpu][matmul]") {
  const int N = 4, C = 6, OC = 5;  // layer 2: inp = gelu(pre) (N,C), weight (OC,C)
  std::mt19937 rng(77);
  std::vector<double> pre = random_vector(size_t(N) * C, rng);
  const std::vector<double> weight = random_vector(size_t(OC) * C, rng);
  const std::vector<double> upstream = random_vector(size_t(N) * OC, rng);
  std::vector<double> act(pre.size()), out(size_t(N) * OC);
  auto loss = [&] {
    gelu_forward<double>(act.data(), pre.data(), pre.size());
    matmul_forward<double>(out.data(), act.data(), weight.data(), nullptr, N, C, OC);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric = numerical_gradient(pre, loss);
  loss();
  std::vector<double> dpre(pre.size(), 9.0), dweight(weight.size(), 0.0);
  matmul_backward_gelu<double>(dpre.data(), dweight.data(), nullptr, upstream.data(), act.data(),
                               weight.data(), pre.data(), N, C, OC);
  check_close(dpre, numeric, kGradAtol, kGradRtol, "dpre");
}

}  // namespace
}  // namespace lmt::cpu::test
