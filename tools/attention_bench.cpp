// Times the CUDA attention kernels alone: forward and backward of causal self-attention for one
// shape, reported as ms and TFLOP/s. FLOPs are the algorithmic ones of causal attention (half of
// the T x T scores): forward 2 * B * NH * T^2 * HS (two products), backward 2.5 times that (five
// products), the convention of the FlashAttention papers; recomputation is not counted.
//
//   attention_bench --B 8 --T 1024 --NH 16 --HS 64 [--iters 20]
//
// Built against the real backend (attention_bench) where nvcc is found, and against the CPU
// emulator (attention_bench_emu) so that CI runs it on a tiny shape.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"

namespace {

int parse_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      const long value = std::strtol(argv[i + 1], &end, 10);
      if (*end != '\0' || value <= 0) {
        std::fprintf(stderr, "attention_bench: %s needs a positive integer, got '%s'\n", name, argv[i + 1]);
        std::exit(2);
      }
      return static_cast<int>(value);
    }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int B = parse_int(argc, argv, "--B", 8), T = parse_int(argc, argv, "--T", 1024);
  const int NH = parse_int(argc, argv, "--NH", 16), HS = parse_int(argc, argv, "--HS", 64);
  const int iters = parse_int(argc, argv, "--iters", 20);
  const int C = NH * HS;
  if (const std::string why = lmt::cuda::unavailable_reason(); !why.empty()) {
    std::fprintf(stderr, "attention_bench: %s\n", why.c_str());
    return 2;
  }
  try {
    auto backend = lmt::cuda::make_cuda_backend({});
    const size_t n_qkv = static_cast<size_t>(B) * T * 3 * C, n_out = static_cast<size_t>(B) * T * C;
    std::vector<float> host(n_qkv);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& x : host) x = uniform(rng);
    auto* qkv = static_cast<float*>(backend->alloc(n_qkv * sizeof(float)));
    auto* dqkv = static_cast<float*>(backend->alloc(n_qkv * sizeof(float)));
    auto* out = static_cast<float*>(backend->alloc(n_out * sizeof(float)));
    auto* dout = static_cast<float*>(backend->alloc(n_out * sizeof(float)));
    auto* lse = static_cast<float*>(backend->alloc(static_cast<size_t>(B) * NH * T * sizeof(float)));
    backend->copy_to_device(qkv, host.data(), n_qkv * sizeof(float));
    backend->copy_to_device(dout, host.data(), n_out * sizeof(float));
    using Clock = std::chrono::steady_clock;
    auto time_ms = [&](auto&& body) {
      body();  // warm-up (and first-launch setup)
      backend->synchronize();
      const auto start = Clock::now();
      for (int i = 0; i < iters; ++i) body();
      backend->synchronize();
      return std::chrono::duration<double, std::milli>(Clock::now() - start).count() / iters;
    };
    const double forward_ms = time_ms([&] { backend->attention_forward(out, lse, qkv, B, T, C, NH); });
    const double backward_ms =
        time_ms([&] { backend->attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH); });
    const double forward_flops = 2.0 * B * NH * static_cast<double>(T) * T * HS;
    const double backward_flops = 2.5 * forward_flops;
    std::printf("attention B=%d T=%d NH=%d HS=%d: forward %.3f ms (%.2f TFLOP/s), backward %.3f ms (%.2f TFLOP/s)\n",
                B, T, NH, HS, forward_ms, forward_flops / forward_ms / 1e9, backward_ms,
                backward_flops / backward_ms / 1e9);
    for (void* p : {static_cast<void*>(qkv), static_cast<void*>(dqkv), static_cast<void*>(out),
                    static_cast<void*>(dout), static_cast<void*>(lse)})
      backend->free(p);
  } catch (const lmt::Error& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
