// The CPU's fp32 arithmetic ceiling: AVX-512 (or AVX2) fused multiply-adds on registers only, no
// memory traffic, on 1..N threads. docs/BENCHMARKS.md compares training throughput with it.
//
//   build/fma_peak            # 1 thread and all of OpenMP's threads
//   build/fma_peak 2          # 2 threads only
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr int kChains = 16;  // independent accumulators: enough to cover FMA latency x ports
constexpr long kIterations = 50'000'000;

__attribute__((target("avx512f"))) float fma_chains_avx512(long iterations) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-5f);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  float total = 0.0f;
  for (float lane : lanes) total += lane;
  return total;
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(long iterations) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-5f);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  float lanes[8];
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  _mm256_storeu_ps(lanes, sum);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

void measure(int threads, bool avx512) {
  const int width = avx512 ? 16 : 8;
  float sink = 0.0f;  // the sums are kept (volatile below) so the loops are not removed
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  sink += avx512 ? fma_chains_avx512(kIterations) : fma_chains_avx2(kIterations);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flops = 2.0 * width * kChains * double(kIterations) * threads;
  volatile float kept = sink;
  (void)kept;
  std::printf("%d thread(s), %s: %.1f GFLOP/s fp32 (%.1f per thread)\n", threads,
              avx512 ? "AVX-512" : "AVX2", flops / seconds / 1e9, flops / seconds / 1e9 / threads);
}

}  // namespace

int main(int argc, char** argv) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    std::fprintf(stderr, "fma_peak: this CPU has neither AVX-512 nor AVX2 with FMA\n");
    return 2;
  }
  if (argc > 2) {
    std::fprintf(stderr, "usage: fma_peak [THREADS]\n");
    return 2;
  }
  if (argc == 2) {
    char* end = nullptr;
    const long threads = std::strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || threads < 1 || threads > 1024) {
      std::fprintf(stderr, "fma_peak: THREADS must be a whole number from 1 to 1024, not '%s'\n", argv[1]);
      return 2;
    }
    measure(static_cast<int>(threads), avx512);
    return 0;
  }
  measure(1, avx512);
  if (omp_get_max_threads() > 1) measure(omp_get_max_threads(), avx512);
  return 0;
}
