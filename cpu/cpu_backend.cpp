// CpuBackend: host memory plus the float instantiations of cpu/cpu_ops.h.
#include "cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace lmt::cpu {

namespace {
// One cache line: keeps vector loads aligned and stops two buffers sharing a line.
constexpr size_t kAlignment = 64;
}  // namespace

void* CpuBackend::alloc(size_t bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment; a zero-byte request still
  // gets a unique pointer so that free() and copies of 0 bytes stay uniform.
  const size_t rounded_bytes = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded_bytes == 0 ? kAlignment : rounded_bytes);
  if (ptr == nullptr) throw std::bad_alloc();
  std::memset(ptr, 0, rounded_bytes);
  return ptr;
}

void CpuBackend::free(void* ptr) { std::free(ptr); }

void CpuBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  if (bytes != 0) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes != 0) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::zero(void* ptr, size_t bytes) {
  // Large buffers (the gradient arena: 500 MB for GPT-2 124M) are cleared by all threads in
  // fixed chunks; one thread alone is limited to a fraction of the memory bandwidth.
  constexpr size_t kChunk = size_t{1} << 20;
  if (bytes < 4 * kChunk) {
    if (bytes != 0) std::memset(ptr, 0, bytes);
    return;
  }
  const int64_t num_chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
  auto* base = static_cast<unsigned char*>(ptr);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
    const size_t begin = static_cast<size_t>(chunk) * kChunk;
    std::memset(base + begin, 0, std::min(kChunk, bytes - begin));
  }
}

void CpuBackend::encoder_forward(float* out, const int32_t* tokens, const float* wte,
                                 const float* wpe, int B, int T, int C) {
  cpu::encoder_forward<float>(out, tokens, wte, wpe, B, T, C);
}

void CpuBackend::encoder_backward(float* dwte, float* dwpe, const float* dout,
                                  const int32_t* tokens, int B, int T, int C) {
  cpu::encoder_backward<float>(dwte, dwpe, dout, tokens, B, T, C);
}

void CpuBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                   const float* weight, const float* bias, int N, int C) {
  cpu::layernorm_forward<float>(out, mean, rstd, inp, weight, bias, N, C);
}

void CpuBackend::layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                    const float* inp, const float* weight, const float* mean,
                                    const float* rstd, int N, int C) {
  cpu::layernorm_backward<float>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

void CpuBackend::matmul_forward(float* out, const float* inp, const float* weight,
                                const float* bias, int N, int C, int OC) {
  cpu::matmul_forward<float>(out, inp, weight, bias, N, C, OC);
}

void CpuBackend::matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                 const float* inp, const float* weight, int N, int C, int OC) {
  cpu::matmul_backward<float>(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

void CpuBackend::attention_forward(float* out, float* lse, const float* qkv, int B, int T, int C,
                                   int NH) {
  cpu::attention_forward<float>(out, lse, qkv, B, T, C, NH);
}

void CpuBackend::attention_backward(float* dqkv, const float* dout, const float* qkv,
                                    const float* out, const float* lse, int B, int T, int C,
                                    int NH) {
  cpu::attention_backward<float>(dqkv, dout, qkv, out, lse, B, T, C, NH);
}

void CpuBackend::gelu_forward(float* out, const float* inp, size_t n) {
  cpu::gelu_forward<float>(out, inp, n);
}

void CpuBackend::gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  cpu::gelu_backward<float>(dinp, inp, dout, n);
}

void CpuBackend::matmul_residual_forward(float* out, const float* residual, const float* inp,
                                         const float* weight, const float* bias, int N, int C,
                                         int OC) {
  cpu::matmul_residual_forward<float>(out, residual, inp, weight, bias, N, C, OC);
}

void CpuBackend::residual_forward(float* out, const float* inp1, const float* inp2, size_t n) {
  cpu::residual_forward<float>(out, inp1, inp2, n);
}

void CpuBackend::classifier_forward_backward(float* dlogits, float* losses, const float* logits,
                                             const int32_t* targets, float dloss, int N, int V,
                                             int Vp) {
  cpu::classifier_forward_backward<float>(dlogits, losses, logits, targets, dloss, N, V, Vp);
}

double CpuBackend::sum_squares(const float* grads, size_t n) {
  return cpu::sum_squares<float>(grads, n);
}

void CpuBackend::adamw_update(float* params, const float* grads, float* m, float* v, size_t n,
                              float lr, float beta1, float beta2, float eps, float weight_decay,
                              float grad_scale, int t) {
  cpu::adamw_update<float>(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                           t);
}

std::unique_ptr<lmt::Backend> make_cpu_backend(int num_threads) {
  const int resolved_threads = num_threads > 0 ? num_threads : omp_get_max_threads();
  // OpenMP gets the threads; OpenBLAS runs single-threaded inside our own parallel GEMM slicing
  // (cpu/matmul.cpp), because its pthread pool spins between calls and starves OpenMP's.
  omp_set_num_threads(resolved_threads);
  openblas_set_num_threads(1);
  gemm_isa();  // a bad LMTRAIN_CPU_ISA is an error now, before any training

  return std::make_unique<CpuBackend>(resolved_threads);
}

std::string blas_info() {
  const char* config = openblas_get_config();
  return config != nullptr ? std::string(config) : std::string("OpenBLAS (no config string)");
}

}  // namespace lmt::cpu
