// lmtrain's sgemm (cpu/gemm.h): every instruction set this CPU has, all four layouts, shapes
// that are and are not multiples of the tiles and of the k / column blocks, beta 0 and 1,
// leading dimensions larger than the matrix, and the same bits for 1, 2 and 3 threads.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "cpu/gemm.h"
#include "tests/cpu/cpu_test_util.h"
#include "tests/test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

struct Case {
  int M, N, K;
};

// C (M,N) row-major with leading dimension ldc, computed in double.
std::vector<double> reference_gemm(bool trans_a, bool trans_b, int M, int N, int K,
                                   const std::vector<float>& A, int lda,
                                   const std::vector<float>& B, int ldb,
                                   const std::vector<float>& C0, int ldc, bool accumulate) {
  std::vector<double> C(C0.begin(), C0.end());
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double sum = 0.0;
      for (int k = 0; k < K; ++k) {
        const double a = trans_a ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k];
        const double b = trans_b ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j];
        sum += a * b;
      }
      double& c = C[size_t(i) * ldc + j];
      c = (accumulate ? c : 0.0) + sum;
    }
  }
  return C;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) { return to_float(random_vector(n, rng)); }

TEST_CASE("sgemm matches a double reference for every ISA, layout and edge shape", "[cpu][gemm]") {
  const GemmIsa isa = GENERATE(GemmIsa::kGeneric, GemmIsa::kAvx2, GemmIsa::kAvx512);
  if (!gemm_isa_supported(isa)) {
    SUCCEED("SKIPPED: this CPU has no " << gemm_isa_name(isa));
    return;
  }
  const bool trans_a = GENERATE(false, true);
  const bool trans_b = GENERATE(false, true);
  const bool accumulate = GENERATE(false, true);
  // 1x1x1; below one tile; exact tiles (12x32 and 6x16 and 4x16 all divide 96 x 64); ragged;
  // M past the 16-panel row block; then the blocked path: K past 1024 (k blocks of 256), and a
  // transposed B too big to pack at once (K x N > 2^21: column blocks of 1024); and a weight
  // gradient's shape, where a transposed A over K > 256 is packed whole (ragged panel and strip).
  const Case shape = GENERATE(Case{1, 1, 1}, Case{5, 7, 3}, Case{96, 64, 40}, Case{37, 45, 29},
                              Case{13, 33, 300}, Case{20, 1100, 17}, Case{250, 20, 11},
                              Case{14, 40, 1100}, Case{3, 4100, 600}, Case{29, 100, 520});
  INFO(gemm_isa_name(isa) << " trans_a " << trans_a << " trans_b " << trans_b << " accumulate "
                          << accumulate << " M " << shape.M << " N " << shape.N << " K "
                          << shape.K);
  std::mt19937 rng(shape.M * 131 + shape.N * 7 + shape.K);
  const int M = shape.M, N = shape.N, K = shape.K;
  // Leading dimensions with slack, so that reading past a row would read wrong numbers.
  const int lda = (trans_a ? M : K) + 3;
  const int ldb = (trans_b ? K : N) + 5;
  const int ldc = N + 2;
  const std::vector<float> A = random_floats(size_t(trans_a ? K : M) * lda, rng);
  const std::vector<float> B = random_floats(size_t(trans_b ? N : K) * ldb, rng);
  std::vector<float> C = random_floats(size_t(M) * ldc, rng);  // never zeros: beta 0 must ignore it
  const std::vector<double> expected =
      reference_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  sgemm_with_isa(isa, trans_a, trans_b, M, N, K, A.data(), lda, B.data(), ldb,
                 accumulate ? 1.0f : 0.0f, C.data(), ldc);
  // Error bound for K products of values in [-1, 1] summed in float.
  const double tolerance = 1e-6 * (K + 2);
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < ldc; ++j) {
      const size_t index = size_t(i) * ldc + j;
      INFO("C[" << i << "][" << j << "]");
      REQUIRE(std::abs(C[index] - expected[index]) <= tolerance);  // padding columns untouched too
    }
  }
}

TEST_CASE("sgemm adds a bias row to every row of C, ragged strips included", "[cpu][gemm]") {
  const GemmIsa isa = GENERATE(GemmIsa::kGeneric, GemmIsa::kAvx2, GemmIsa::kAvx512);
  if (!gemm_isa_supported(isa)) {
    SUCCEED("SKIPPED: this CPU has no " << gemm_isa_name(isa));
    return;
  }
  const Case shape = GENERATE(Case{30, 45, 20}, Case{13, 64, 300}, Case{7, 1050, 5});
  INFO(gemm_isa_name(isa) << " M " << shape.M << " N " << shape.N << " K " << shape.K);
  std::mt19937 rng(shape.N);
  const int M = shape.M, N = shape.N, K = shape.K;
  const std::vector<float> A = random_floats(size_t(M) * K, rng);
  const std::vector<float> B = random_floats(size_t(N) * K, rng);
  const std::vector<float> bias = random_floats(N, rng);
  std::vector<float> C = random_floats(size_t(M) * N, rng);
  std::vector<double> expected = reference_gemm(false, true, M, N, K, A, K, B, K, C, N, false);
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) expected[size_t(i) * N + j] += bias[j];
  }
  sgemm_with_isa(isa, false, true, M, N, K, A.data(), K, B.data(), K, 0.0f, C.data(), N, bias.data());
  const double tolerance = 1e-6 * (K + 3);
  for (size_t index = 0; index < C.size(); ++index) {
    INFO("C index " << index);
    REQUIRE(std::abs(C[index] - expected[index]) <= tolerance);
  }
  // A contract violation is a bug: LMT_CHECK aborts, naming the rule and where.
  CHECK_THAT(lmt::testing::abort_message(
                 [&] { sgemm(false, true, M, N, K, A.data(), K, B.data(), K, 1.0f, C.data(), N, bias.data()); }),
             Catch::Contains("a bias needs beta 0") && Catch::Contains("gemm.cpp:") &&
                 Catch::Contains("internal error"));
}

TEST_CASE("sgemm with a tile range leaves out known-zero terms and keeps the bits", "[cpu][gemm]") {
  // A lower-triangular A (row i is zero past column i + 5): C = A @ B with each tile's k range
  // cut at its last row's nonzero end must equal the full product exactly.
  const GemmIsa isa = GENERATE(GemmIsa::kGeneric, GemmIsa::kAvx2, GemmIsa::kAvx512);
  if (!gemm_isa_supported(isa)) {
    SUCCEED("SKIPPED: this CPU has no " << gemm_isa_name(isa));
    return;
  }
  const int M = 50, N = 40, K = 60;
  std::mt19937 rng(9);
  std::vector<float> A = random_floats(size_t(M) * K, rng);
  for (int i = 0; i < M; ++i) {
    for (int k = i + 6; k < K; ++k) A[size_t(i) * K + k] = 0.0f;
  }
  const std::vector<float> B = random_floats(size_t(K) * N, rng);
  std::vector<float> full(size_t(M) * N), cut(size_t(M) * N, 99.0f);
  sgemm_with_isa(isa, false, false, M, N, K, A.data(), K, B.data(), N, 0.0f, full.data(), N);
  auto range = [](const void*, int row0, int rows, int, int, int*, int* k_end) {
    *k_end = std::min(*k_end, row0 + rows - 1 + 6);
  };
  sgemm_with_isa(isa, false, false, M, N, K, A.data(), K, B.data(), N, 0.0f, cut.data(), N, nullptr,
                 GemmEpilogue{}, GemmTileRange{range, nullptr});
  CHECK(cut == full);

  // The other side: A^T stored (K, M), zero before k = i - 7, so tiles start their k range late;
  // accumulating onto C (beta 1).
  std::vector<float> At = random_floats(size_t(K) * M, rng);
  for (int i = 0; i < M; ++i) {
    for (int k = 0; k < std::min(K, i - 7); ++k) At[size_t(k) * M + i] = 0.0f;
  }
  std::vector<float> full2 = random_floats(size_t(M) * N, rng);
  std::vector<float> cut2 = full2;
  sgemm_with_isa(isa, true, false, M, N, K, At.data(), M, B.data(), N, 1.0f, full2.data(), N);
  auto late = [](const void*, int row0, int, int, int, int* k_begin, int*) {
    *k_begin = std::max(*k_begin, row0 - 7);
  };
  sgemm_with_isa(isa, true, false, M, N, K, At.data(), M, B.data(), N, 1.0f, cut2.data(), N, nullptr,
                 GemmEpilogue{}, GemmTileRange{late, nullptr});
  CHECK(cut2 == full2);
}

TEST_CASE("sgemm gives the same bits for any thread count", "[cpu][gemm]") {
  const int M = 300, N = 200, K = 520;
  std::mt19937 rng(5);
  const std::vector<float> A = random_floats(size_t(M) * K, rng);
  const std::vector<float> B = random_floats(size_t(N) * K, rng);
  const int saved_threads = omp_get_max_threads();
  std::vector<std::vector<float>> results;
  std::vector<std::vector<float>> weight_gradients;  // transposed A (K x M), packed whole
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> C(size_t(M) * N, std::numeric_limits<float>::quiet_NaN());
    sgemm(false, true, M, N, K, A.data(), K, B.data(), K, 0.0f, C.data(), N);
    results.push_back(C);
    std::vector<float> D(size_t(M) * N, 0.5f);
    sgemm(true, false, M, N, K, A.data(), M, B.data(), N, 1.0f, D.data(), N);
    weight_gradients.push_back(D);
  }
  omp_set_num_threads(saved_threads);
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
  CHECK(weight_gradients[0] == weight_gradients[1]);
  CHECK(weight_gradients[0] == weight_gradients[2]);
}

// Records which thread finished each element of C, and holds thread 0 back for a while after
// every tile it finishes, so that thread 1 runs out of its own share and takes over tiles from
// the back of thread 0's.
struct SlowThreadZero {
  std::vector<int>* finished_by;
  int ldc;
};
void note_tile_and_stall_thread_zero(const void* context, float*, int64_t, int row0, int col0,
                                     int rows, int cols) {
  const auto& state = *static_cast<const SlowThreadZero*>(context);
  const int thread = omp_get_thread_num();
  for (int i = row0; i < row0 + rows; ++i) {
    for (int j = col0; j < col0 + cols; ++j) (*state.finished_by)[size_t(i) * state.ldc + j] = thread;
  }
  if (thread == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
}

TEST_CASE("sgemm: a thread that runs out of tiles takes over a slow thread's, same bits", "[cpu][gemm]") {
  // beta = 1: a tile computed twice would be added twice, a tile skipped would keep C's start.
  const int M = 240, N = 128, K = 200;
  std::mt19937 rng(11);
  const std::vector<float> A = random_floats(size_t(M) * K, rng);
  const std::vector<float> B = random_floats(size_t(K) * N, rng);
  const std::vector<float> C0 = random_floats(size_t(M) * N, rng);
  std::vector<float> serial = C0;
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  sgemm(false, false, M, N, K, A.data(), K, B.data(), N, 1.0f, serial.data(), N);
  omp_set_num_threads(2);
  std::vector<float> parallel = C0;
  std::vector<int> finished_by(size_t(M) * N, -1);
  SlowThreadZero state{&finished_by, N};
  sgemm(false, false, M, N, K, A.data(), K, B.data(), N, 1.0f, parallel.data(), N, nullptr,
        GemmEpilogue{note_tile_and_stall_thread_zero, &state});
  omp_set_num_threads(saved_threads);
  CHECK(parallel == serial);
  // Each thread's own share is half of the tiles (all tiles are whole at this shape), so more
  // than half of C finished by thread 1 means it took over some of thread 0's.
  size_t by_thread_one = 0, unfinished = 0;
  for (int thread : finished_by) {
    if (thread < 0) ++unfinished;
    if (thread == 1) ++by_thread_one;
  }
  CHECK(unfinished == 0);
  CHECK(by_thread_one > finished_by.size() / 2);
}

TEST_CASE("sgemm with K = 0 honours beta, and rejects other betas", "[cpu][gemm]") {
  std::vector<float> C = {1.0f, 2.0f, 3.0f, 4.0f};
  const float unused = 0.0f;
  sgemm(false, false, 2, 2, 0, &unused, 1, &unused, 2, 1.0f, C.data(), 2);
  CHECK(C == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
  sgemm(false, false, 2, 2, 0, &unused, 1, &unused, 2, 0.0f, C.data(), 2);
  CHECK(C == std::vector<float>{0.0f, 0.0f, 0.0f, 0.0f});
  CHECK_THAT(lmt::testing::abort_message([&] { sgemm(false, false, 2, 2, 1, C.data(), 1, C.data(), 2, 0.5f, C.data(), 2); }),
             Catch::Contains("beta must be 0 or 1"));
}

}  // namespace
}  // namespace lmt::cpu
