// CpuBackend: memory, thread configuration, BLAS info, and that every op forwards to the float
// reference op with its arguments in the right places (bitwise equal results).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/cpu_backend.h"
#include <cmath>
#include <random>
#include <vector>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("make_cpu_backend gives OpenMP the threads and keeps OpenBLAS single-threaded", "[cpu][backend]") {
  const int saved_threads = omp_get_max_threads();
  {
    std::unique_ptr<lmt::Backend> backend = make_cpu_backend(2);
    CHECK(backend->name() == "cpu");
    CHECK(cpu_backend_threads(*backend) == 2);
    CHECK(omp_get_max_threads() == 2);
    CHECK(openblas_get_num_threads() == 1);  // GEMMs are sliced over OpenMP threads instead
  }
  {
    omp_set_num_threads(3);
    std::unique_ptr<lmt::Backend> backend = make_cpu_backend(0);  // 0: use omp_get_max_threads
    CHECK(cpu_backend_threads(*backend) == 3);
    CHECK(openblas_get_num_threads() == 1);
  }
  omp_set_num_threads(saved_threads);
  openblas_set_num_threads(saved_threads);
}

TEST_CASE("matmul sliced over threads gives the same bits as one thread", "[cpu][backend]") {
  const int saved_threads = omp_get_max_threads();
  const int N = 100, C = 40, OC = 52;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
  };
  auto inp = random(size_t{N} * C), weight = random(size_t{OC} * C), bias = random(OC);
  auto dout = random(size_t{N} * OC);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    std::vector<float> out(size_t{N} * OC), dinp(size_t{N} * C), dweight(size_t{OC} * C, 0.5f),
        dbias(OC, 0.25f);
    matmul_forward<float>(out.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    matmul_backward<float>(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(),
                           weight.data(), N, C, OC);
    out.insert(out.end(), dinp.begin(), dinp.end());
    out.insert(out.end(), dweight.begin(), dweight.end());
    out.insert(out.end(), dbias.begin(), dbias.end());
    return out;
  };
  // Slicing the rows can change which GEMM micro-kernel handles a row (OpenBLAS treats the tail
  // rows of a block separately), so bits may differ across thread counts by rounding only; a
  // fixed thread count must reproduce exactly.
  const auto one = run(1);
  for (int threads : {2, 3}) {
    const auto many = run(threads);
    REQUIRE(many.size() == one.size());
    CHECK(run(threads) == many);
    double worst = 0;
    for (size_t i = 0; i < one.size(); ++i)
      worst = std::max(worst, std::fabs(double(many[i]) - one[i]) / (1e-6 + std::fabs(double(one[i]))));
    INFO("threads " << threads << ": worst relative difference " << worst);
    CHECK(worst < 1e-5);
  }
  omp_set_num_threads(saved_threads);
}

TEST_CASE("blas_info reports the OpenBLAS configuration", "[cpu][backend]") {
  const std::string info = blas_info();
  INFO(info);
  CHECK(info.find("OpenBLAS") != std::string::npos);
}

TEST_CASE("cpu backend memory is aligned, zeroed and copyable", "[cpu][backend]") {
  const auto owned = make_cpu_backend(1);
  Backend& backend = *owned;
  // The last size is cleared in parallel chunks of 1 MiB, with a ragged last chunk.
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{1000}, size_t{4096}, size_t{(5 << 20) + 12345}}) {
    INFO("bytes = " << bytes);
    auto* ptr = static_cast<unsigned char*>(backend.alloc(bytes));
    REQUIRE(ptr != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(ptr) % 64 == 0);
    for (size_t i = 0; i < bytes; ++i) REQUIRE(ptr[i] == 0);

    std::vector<unsigned char> host(bytes);
    for (size_t i = 0; i < bytes; ++i) host[i] = static_cast<unsigned char>(i * 7 + 1);
    backend.copy_to_device(ptr, host.data(), bytes);
    std::vector<unsigned char> back(bytes, 0);
    backend.copy_to_host(back.data(), ptr, bytes);
    CHECK(back == host);
    backend.zero(ptr, bytes);
    CHECK(std::all_of(ptr, ptr + bytes, [](unsigned char b) { return b == 0; }));
    backend.synchronize();
    backend.free(ptr);
  }
  backend.free(nullptr);  // like std::free
}

TEST_CASE("cpu backend ops equal the float reference ops", "[cpu][backend]") {
  const int B = 2, T = 7, C = 12, NH = 3, V = 11, Vp = 16, OC = 7;
  const int N = B * T;
  std::mt19937 rng(91);
  auto random_floats = [&](size_t n) { return to_float(random_vector(n, rng)); };
  const auto owned = make_cpu_backend(2);
  Backend& backend = *owned;

  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(N), V, rng);
  const std::vector<float> wte = random_floats(static_cast<size_t>(Vp) * C),
                           wpe = random_floats(static_cast<size_t>(T) * C);
  const std::vector<float> x = random_floats(static_cast<size_t>(N) * C),
                           dx = random_floats(static_cast<size_t>(N) * C);
  const std::vector<float> weight = random_floats(C), bias = random_floats(C);
  const std::vector<float> w_mat = random_floats(static_cast<size_t>(OC) * C),
                           b_mat = random_floats(OC);
  const std::vector<float> dy_mat = random_floats(static_cast<size_t>(N) * OC);
  const std::vector<float> qkv = random_floats(static_cast<size_t>(N) * 3 * C);
  const std::vector<float> logits = random_floats(static_cast<size_t>(N) * Vp);

  // Each pair of lambdas fills `got` through the backend and `want` through the template.
  auto same = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    INFO(what);
    CHECK(got == want);
  };

  std::vector<float> got(static_cast<size_t>(N) * C), want(static_cast<size_t>(N) * C);
  backend.encoder_forward(got.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  encoder_forward<float>(want.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  same(got, want, "encoder_forward");

  std::vector<float> got_dwte(wte.size(), 1.f), want_dwte(wte.size(), 1.f);
  std::vector<float> got_dwpe(wpe.size(), 2.f), want_dwpe(wpe.size(), 2.f);
  backend.encoder_backward(got_dwte.data(), got_dwpe.data(), dx.data(), tokens.data(), B, T, C);
  encoder_backward<float>(want_dwte.data(), want_dwpe.data(), dx.data(), tokens.data(), B, T, C);
  same(got_dwte, want_dwte, "encoder_backward dwte");
  same(got_dwpe, want_dwpe, "encoder_backward dwpe");

  std::vector<float> got_mean(N), got_rstd(N), want_mean(N), want_rstd(N);
  backend.layernorm_forward(got.data(), got_mean.data(), got_rstd.data(), x.data(), weight.data(),
                            bias.data(), N, C);
  layernorm_forward<float>(want.data(), want_mean.data(), want_rstd.data(), x.data(), weight.data(),
                           bias.data(), N, C);
  same(got, want, "layernorm_forward out");
  same(got_mean, want_mean, "layernorm_forward mean");
  same(got_rstd, want_rstd, "layernorm_forward rstd");

  std::vector<float> got_dinp(x.size(), .5f), want_dinp(x.size(), .5f);
  std::vector<float> got_dw(C, .25f), want_dw(C, .25f), got_db(C, -1.f), want_db(C, -1.f);
  backend.layernorm_backward(got_dinp.data(), got_dw.data(), got_db.data(), dx.data(), x.data(),
                             weight.data(), want_mean.data(), want_rstd.data(), N, C);
  layernorm_backward<float>(want_dinp.data(), want_dw.data(), want_db.data(), dx.data(), x.data(),
                            weight.data(), want_mean.data(), want_rstd.data(), N, C);
  same(got_dinp, want_dinp, "layernorm_backward dinp");
  same(got_dw, want_dw, "layernorm_backward dweight");
  same(got_db, want_db, "layernorm_backward dbias");

  std::vector<float> got_mm(static_cast<size_t>(N) * OC), want_mm(static_cast<size_t>(N) * OC);
  backend.matmul_forward(got_mm.data(), x.data(), w_mat.data(), b_mat.data(), N, C, OC);
  matmul_forward<float>(want_mm.data(), x.data(), w_mat.data(), b_mat.data(), N, C, OC);
  same(got_mm, want_mm, "matmul_forward");

  std::vector<float> got_dwm(w_mat.size(), .5f), want_dwm(w_mat.size(), .5f);
  std::vector<float> got_dbm(OC, .5f), want_dbm(OC, .5f);
  backend.matmul_backward(got_dinp.data(), got_dwm.data(), got_dbm.data(), dy_mat.data(), x.data(),
                          w_mat.data(), N, C, OC);
  matmul_backward<float>(want_dinp.data(), want_dwm.data(), want_dbm.data(), dy_mat.data(),
                         x.data(), w_mat.data(), N, C, OC);
  same(got_dinp, want_dinp, "matmul_backward dinp");
  same(got_dwm, want_dwm, "matmul_backward dweight");
  same(got_dbm, want_dbm, "matmul_backward dbias");

  std::vector<float> got_lse(static_cast<size_t>(B) * NH * T),
      want_lse(static_cast<size_t>(B) * NH * T);
  backend.attention_forward(got.data(), got_lse.data(), qkv.data(), B, T, C, NH);
  attention_forward<float>(want.data(), want_lse.data(), qkv.data(), B, T, C, NH);
  same(got, want, "attention_forward out");
  same(got_lse, want_lse, "attention_forward lse");

  std::vector<float> got_dqkv(qkv.size()), want_dqkv(qkv.size());
  backend.attention_backward(got_dqkv.data(), dx.data(), qkv.data(), want.data(), want_lse.data(),
                             B, T, C, NH);
  attention_backward<float>(want_dqkv.data(), dx.data(), qkv.data(), want.data(), want_lse.data(),
                            B, T, C, NH);
  same(got_dqkv, want_dqkv, "attention_backward");

  backend.gelu_forward(got.data(), x.data(), x.size());
  gelu_forward<float>(want.data(), x.data(), x.size());
  same(got, want, "gelu_forward");
  backend.gelu_backward(got_dinp.data(), x.data(), dx.data(), x.size());
  gelu_backward<float>(want_dinp.data(), x.data(), dx.data(), x.size());
  same(got_dinp, want_dinp, "gelu_backward");

  backend.residual_forward(got.data(), x.data(), dx.data(), x.size());
  residual_forward<float>(want.data(), x.data(), dx.data(), x.size());
  same(got, want, "residual_forward");

  std::vector<float> got_losses(N), want_losses(N);
  std::vector<float> got_dlogits(logits.size()), want_dlogits(logits.size());
  backend.classifier_forward_backward(got_dlogits.data(), got_losses.data(), logits.data(),
                                      tokens.data(), 0.125f, N, V, Vp);
  classifier_forward_backward<float>(want_dlogits.data(), want_losses.data(), logits.data(),
                                     tokens.data(), 0.125f, N, V, Vp);
  same(got_losses, want_losses, "classifier losses");
  same(got_dlogits, want_dlogits, "classifier dlogits");

  CHECK(backend.sum_squares(x.data(), x.size()) == sum_squares<float>(x.data(), x.size()));

  std::vector<float> got_params = x, want_params = x;
  std::vector<float> got_m(x.size()), want_m(x.size()), got_v(x.size()), want_v(x.size());
  backend.adamw_update(got_params.data(), dx.data(), got_m.data(), got_v.data(), x.size(), 1e-3f,
                       0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 2);
  adamw_update<float>(want_params.data(), dx.data(), want_m.data(), want_v.data(), x.size(), 1e-3f,
                      0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 2);
  same(got_params, want_params, "adamw params");
  same(got_m, want_m, "adamw m");
  same(got_v, want_v, "adamw v");
}

}  // namespace
}  // namespace lmt::cpu
