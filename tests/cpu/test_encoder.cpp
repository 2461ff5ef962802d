// encoder_forward / encoder_backward: finite differences in double, accumulate rule, float vs
// double agreement, determinism across thread counts.
#include <omp.h>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("encoder backward matches finite differences and accumulates", "[cpu][encoder]") {
  const int B = 2, T = 7, C = 12, V = 11, Vp = 16, max_T = 9;
  std::mt19937 rng(1234);
  std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, V, rng);
  tokens[3] = tokens[0];  // repeated tokens share a row of dwte: the accumulation must add up
  tokens[T + 2] = tokens[0];
  std::vector<double> wte = random_vector(static_cast<size_t>(Vp) * C, rng);
  std::vector<double> wpe = random_vector(static_cast<size_t>(max_T) * C, rng);
  const std::vector<double> upstream =
      random_vector(static_cast<size_t>(B) * T * C, rng);  // g, (B,T,C)

  std::vector<double> out(static_cast<size_t>(B) * T * C);
  auto loss = [&] {
    encoder_forward<double>(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric_dwte = numerical_gradient(wte, loss);
  const std::vector<double> numeric_dwpe = numerical_gradient(wpe, loss);

  const std::vector<double> dwte_prefill = random_vector(wte.size(), rng);
  const std::vector<double> dwpe_prefill = random_vector(wpe.size(), rng);
  std::vector<double> dwte = dwte_prefill;
  std::vector<double> dwpe = dwpe_prefill;
  encoder_backward<double>(dwte.data(), dwpe.data(), upstream.data(), tokens.data(), B, T, C);
  check_close(added_to(dwte, dwte_prefill), numeric_dwte, kGradAtol, kGradRtol, "dwte");
  check_close(added_to(dwpe, dwpe_prefill), numeric_dwpe, kGradAtol, kGradRtol, "dwpe");

  // Rows of unused tokens and positions >= T keep their prefill exactly.
  for (int t = T; t < max_T; ++t) {
    for (int c = 0; c < C; ++c)
      CHECK(dwpe[static_cast<size_t>(t) * C + c] == dwpe_prefill[static_cast<size_t>(t) * C + c]);
  }
  for (int c = 0; c < C; ++c) {
    CHECK(dwte[static_cast<size_t>(V) * C + c] ==
          dwte_prefill[static_cast<size_t>(V) * C + c]);  // padded row V
  }
}

TEST_CASE("encoder forward agrees in float and double at odd shapes", "[cpu][encoder]") {
  const int B = 2, T = 37, C = 96, V = 101, Vp = 128;
  std::mt19937 rng(99);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, V, rng);
  const std::vector<float> wte = to_float(random_vector(static_cast<size_t>(Vp) * C, rng));
  const std::vector<float> wpe = to_float(random_vector(static_cast<size_t>(T) * C, rng));
  std::vector<float> out_float(static_cast<size_t>(B) * T * C);
  std::vector<double> out_double(out_float.size());
  encoder_forward<float>(out_float.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  encoder_forward<double>(out_double.data(), tokens.data(), to_double(wte).data(),
                          to_double(wpe).data(), B, T, C);
  check_close(out_float, out_double, kFloatAtol, kFloatRtol, "encoder out");

  const std::vector<double> upstream = random_vector(out_double.size(), rng);
  std::vector<float> dwte_float(wte.size()), dwpe_float(wpe.size());
  std::vector<double> dwte_double(wte.size()), dwpe_double(wpe.size());
  encoder_backward<float>(dwte_float.data(), dwpe_float.data(), to_float(upstream).data(),
                          tokens.data(), B, T, C);
  encoder_backward<double>(dwte_double.data(), dwpe_double.data(),
                           to_double(to_float(upstream)).data(), tokens.data(), B, T, C);
  check_close(dwte_float, dwte_double, kFloatAtol, kFloatRtol, "dwte");
  check_close(dwpe_float, dwpe_double, kFloatAtol, kFloatRtol, "dwpe");
}

TEST_CASE("encoder backward gives the same bits for any thread count", "[cpu][encoder]") {
  // Few distinct tokens, so many (b, t) rows hit the same dwte row.
  const int B = 4, T = 33, C = 200, V = 3, Vp = 8;
  std::mt19937 rng(5);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, V, rng);
  const std::vector<float> upstream = to_float(random_vector(static_cast<size_t>(B) * T * C, rng));
  const int saved_threads = omp_get_max_threads();
  auto run = [&](int num_threads) {
    omp_set_num_threads(num_threads);
    std::vector<float> dwte(static_cast<size_t>(Vp) * C, 0.25f),
        dwpe(static_cast<size_t>(T) * C, -0.5f);
    encoder_backward<float>(dwte.data(), dwpe.data(), upstream.data(), tokens.data(), B, T, C);
    dwte.insert(dwte.end(), dwpe.begin(), dwpe.end());
    return dwte;
  };
  const std::vector<float> one_thread = run(1);
  const std::vector<float> three_threads = run(3);
  omp_set_num_threads(saved_threads);
  CHECK(one_thread == three_threads);
}

}  // namespace
}  // namespace lmt::cpu
