// Times the CUDA attention kernels alone: forward and backward of causal self-attention for one
// shape, reported as ms and TFLOP/s. FLOPs are the algorithmic ones of causal attention (half of
// the T x T scores): forward 2 * B * NH * T^2 * HS (two products), backward 2.5 times that (five
// products), the convention of the FlashAttention papers; recomputation is not counted.
//
//   attention_bench --B 8 --T 1024 --NH 16 --HS 64 [--iters 20] [--dtype fp32|bf16|fp16]
//
// In bf16 and fp16 at head sizes 64 and 128 it times both attention paths of the backend, one
// line each: the tensor-core kernels (cuda/attention_mma.cu, "tensor cores") and the fp32-math
// ones of cuda/attention.cu ("fp32 math"). fp32 (the default) has only the latter.
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

#include "core/dtype.h"
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

const char* parse_dtype(int argc, char** argv, lmt::DType& dtype) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--dtype") == 0) {
      const std::string name = argv[i + 1];
      if (name == "fp32") dtype = lmt::DType::kF32;
      else if (name == "bf16") dtype = lmt::DType::kBF16;
      else if (name == "fp16") dtype = lmt::DType::kF16;
      else {
        std::fprintf(stderr, "attention_bench: --dtype is fp32, bf16 or fp16, got '%s'\n", argv[i + 1]);
        std::exit(2);
      }
      return argv[i + 1];
    }
  return "fp32";
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
  lmt::DType dtype = lmt::DType::kF32;
  const std::string dtype_name = parse_dtype(argc, argv, dtype);
  try {
    const bool both = dtype != lmt::DType::kF32 && (HS == 64 || HS == 128);
    for (const bool tensor_cores : both ? std::vector<bool>{true, false} : std::vector<bool>{false}) {
      lmt::cuda::CudaOptions options;
      options.dtype = dtype;
      options.tensor_core_attention = tensor_cores;
      auto backend = lmt::cuda::make_cuda_backend(options);
      const size_t elem = lmt::dtype_size(dtype);
      const size_t n_qkv = static_cast<size_t>(B) * T * 3 * C, n_out = static_cast<size_t>(B) * T * C;
      std::vector<float> host(n_qkv);
      std::mt19937 rng(1);
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (float& x : host) x = uniform(rng);
      std::vector<char> raw(n_qkv * elem);
      lmt::convert_from_f32(raw.data(), dtype, host.data(), n_qkv);
      void* qkv = backend->alloc(n_qkv * elem);
      void* dqkv = backend->alloc(n_qkv * elem);
      void* out = backend->alloc(n_out * elem);
      void* dout = backend->alloc(n_out * elem);
      auto* lse = static_cast<float*>(backend->alloc(static_cast<size_t>(B) * NH * T * sizeof(float)));
      backend->copy_to_device(qkv, raw.data(), n_qkv * elem);
      backend->copy_to_device(dout, raw.data(), n_out * elem);
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
      // fp32 keeps the line it always had (tools/gpu_check.sh reads it); 16-bit runs name the path.
      const std::string path =
          dtype == lmt::DType::kF32 ? "" : " " + dtype_name + (tensor_cores ? " tensor cores" : " fp32 math");
      std::printf(
          "attention B=%d T=%d NH=%d HS=%d%s: forward %.3f ms (%.2f TFLOP/s), backward %.3f ms (%.2f TFLOP/s)\n", B,
          T, NH, HS, path.c_str(), forward_ms, forward_flops / forward_ms / 1e9, backward_ms,
          backward_flops / backward_ms / 1e9);
      for (void* p : {qkv, dqkv, out, dout, static_cast<void*>(lse)}) backend->free(p);
    }
  } catch (const lmt::Error& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
