// matmul_forward / matmul_backward: finite differences in double with and without bias (dinp
// overwritten, dweight and dbias accumulated), null dinp / dbias, float vs double agreement.
#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("matmul backward matches finite differences", "[cpu][matmul]") {
  const int N = 5, C = 12, OC = 7;
  const bool with_bias = GENERATE(true, false);
  INFO("with_bias = " << with_bias);
  std::mt19937 rng(with_bias ? 21 : 22);
  std::vector<double> inp = random_vector(static_cast<size_t>(N) * C, rng);      // (N,C)
  std::vector<double> weight = random_vector(static_cast<size_t>(OC) * C, rng);  // (OC,C)
  std::vector<double> bias = random_vector(OC, rng);                             // (OC)
  const std::vector<double> upstream = random_vector(static_cast<size_t>(N) * OC, rng);

  std::vector<double> out(static_cast<size_t>(N) * OC);
  auto loss = [&] {
    matmul_forward<double>(out.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr,
                           N, C, OC);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric_dinp = numerical_gradient(inp, loss);
  const std::vector<double> numeric_dweight = numerical_gradient(weight, loss);
  const std::vector<double> numeric_dbias = numerical_gradient(bias, loss);

  // Forward against a plain triple loop.
  loss();
  std::vector<double> expected_out(out.size());
  for (int n = 0; n < N; ++n) {
    for (int o = 0; o < OC; ++o) {
      double sum = with_bias ? bias[o] : 0.0;
      for (int c = 0; c < C; ++c)
        sum += inp[static_cast<size_t>(n) * C + c] * weight[static_cast<size_t>(o) * C + c];
      expected_out[static_cast<size_t>(n) * OC + o] = sum;
    }
  }
  check_close(out, expected_out, 1e-12, 1e-12, "matmul out");

  std::vector<double> dinp = nan_vector(inp.size());  // overwritten
  const std::vector<double> dweight_prefill = random_vector(weight.size(), rng);
  const std::vector<double> dbias_prefill = random_vector(OC, rng);
  std::vector<double> dweight = dweight_prefill;
  std::vector<double> dbias = dbias_prefill;
  matmul_backward<double>(dinp.data(), dweight.data(), with_bias ? dbias.data() : nullptr,
                          upstream.data(), inp.data(), weight.data(), N, C, OC);
  check_close(dinp, numeric_dinp, kGradAtol, kGradRtol, "dinp");
  check_close(added_to(dweight, dweight_prefill), numeric_dweight, kGradAtol, kGradRtol, "dweight");
  if (with_bias) {
    check_close(added_to(dbias, dbias_prefill), numeric_dbias, kGradAtol, kGradRtol, "dbias");
  } else {
    CHECK(dbias == dbias_prefill);  // null dbias: nothing written anywhere
  }
}

TEST_CASE("matmul backward with null dinp still accumulates dweight and dbias", "[cpu][matmul]") {
  const int N = 5, C = 12, OC = 7;
  std::mt19937 rng(23);
  const std::vector<double> inp = random_vector(static_cast<size_t>(N) * C, rng);
  const std::vector<double> weight = random_vector(static_cast<size_t>(OC) * C, rng);
  const std::vector<double> upstream = random_vector(static_cast<size_t>(N) * OC, rng);
  std::vector<double> dinp_ref(inp.size()), dweight_ref(weight.size(), 0.5), dbias_ref(OC, -0.5);
  matmul_backward<double>(dinp_ref.data(), dweight_ref.data(), dbias_ref.data(), upstream.data(),
                          inp.data(), weight.data(), N, C, OC);
  std::vector<double> dweight(weight.size(), 0.5), dbias(OC, -0.5);
  matmul_backward<double>(nullptr, dweight.data(), dbias.data(), upstream.data(), inp.data(),
                          weight.data(), N, C, OC);
  CHECK(dweight == dweight_ref);
  CHECK(dbias == dbias_ref);
}

TEST_CASE("matmul agrees in float and double at odd shapes", "[cpu][matmul]") {
  const int N = 2 * 37, C = 96, OC = 101;
  std::mt19937 rng(29);
  const std::vector<float> inp = to_float(random_vector(static_cast<size_t>(N) * C, rng));
  const std::vector<float> weight = to_float(random_vector(static_cast<size_t>(OC) * C, rng, 0.2));
  const std::vector<float> bias = to_float(random_vector(OC, rng));
  const std::vector<float> upstream = to_float(random_vector(static_cast<size_t>(N) * OC, rng));

  std::vector<float> out_f(static_cast<size_t>(N) * OC);
  std::vector<double> out_d(out_f.size());
  matmul_forward<float>(out_f.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
  matmul_forward<double>(out_d.data(), to_double(inp).data(), to_double(weight).data(),
                         to_double(bias).data(), N, C, OC);
  check_close(out_f, out_d, kFloatAtol, kFloatRtol, "matmul out");

  std::vector<float> dinp_f(inp.size()), dweight_f(weight.size()), dbias_f(OC);
  std::vector<double> dinp_d(inp.size()), dweight_d(weight.size()), dbias_d(OC);
  matmul_backward<float>(dinp_f.data(), dweight_f.data(), dbias_f.data(), upstream.data(),
                         inp.data(), weight.data(), N, C, OC);
  matmul_backward<double>(dinp_d.data(), dweight_d.data(), dbias_d.data(),
                          to_double(upstream).data(), to_double(inp).data(),
                          to_double(weight).data(), N, C, OC);
  check_close(dinp_f, dinp_d, kFloatAtol, kFloatRtol, "matmul dinp");
  check_close(dweight_f, dweight_d, kFloatAtol, kFloatRtol, "matmul dweight");
  check_close(dbias_f, dbias_d, kFloatAtol, kFloatRtol, "matmul dbias");
}

}  // namespace
}  // namespace lmt::cpu
