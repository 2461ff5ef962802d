// CpuBackend: host memory plus the float instantiations of cpu/cpu_ops.h.
#include "cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace lmt::cpu {

namespace {

class CpuBackend final : public lmt::Backend {
 public:
  // num_threads > 0; make_cpu_backend resolves "all cores" and configures OpenMP and OpenBLAS.
  explicit CpuBackend(int num_threads) : num_threads_(num_threads) {}
  int num_threads() const { return num_threads_; }

  std::string name() const override { return "cpu"; }
  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void zero(void* ptr, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override {}
  void convert_from_f32(void* dst, const float* src, size_t n) override;

  // Every op of core/ops.def; of the composites, only the residual form is fused here.
#define LMT_OP(ret, name, params, args, flops) ret name params override;
#define LMT_COMPOSITE_OP(ret, name, params, args, flops)
#include "core/ops.def"
  void matmul_residual_forward(void* out, const void* residual, const void* inp, const void* weight,
                               const void* bias, int N, int C, int OC) override;

 private:
  int num_threads_;
};

// The CPU computes in fp32 (compute_dtype() is kF32), so activations are float arrays.
float* f32(void* p) { return static_cast<float*>(p); }
const float* f32(const void* p) { return static_cast<const float*>(p); }

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

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes != 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::convert_from_f32(void* dst, const float* src, size_t n) {
  if (n != 0 && dst != src) std::memcpy(dst, src, n * sizeof(float));
}

void CpuBackend::encoder_forward(void* out, const int32_t* tokens, const void* wte,
                                 const void* wpe, int B, int T, int C) {
  cpu::encoder_forward<float>(f32(out), tokens, f32(wte), f32(wpe), B, T, C);
}

void CpuBackend::encoder_backward(float* dwte, float* dwpe, const void* dout,
                                  const int32_t* tokens, int B, int T, int C) {
  cpu::encoder_backward<float>(dwte, dwpe, f32(dout), tokens, B, T, C);
}

void CpuBackend::layernorm_forward(void* out, float* mean, float* rstd, const void* inp,
                                   const void* weight, const void* bias, int N, int C) {
  cpu::layernorm_forward<float>(f32(out), mean, rstd, f32(inp), f32(weight), f32(bias), N, C);
}

void CpuBackend::layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                                    const void* inp, const void* weight, const float* mean,
                                    const float* rstd, int N, int C) {
  cpu::layernorm_backward<float>(f32(dinp), dweight, dbias, f32(dout), f32(inp), f32(weight), mean, rstd, N, C);
}

void CpuBackend::matmul_forward(void* out, const void* inp, const void* weight,
                                const void* bias, int N, int C, int OC) {
  cpu::matmul_forward<float>(f32(out), f32(inp), f32(weight), f32(bias), N, C, OC);
}

void CpuBackend::matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                                 const void* inp, const void* weight, int N, int C, int OC) {
  cpu::matmul_backward<float>(f32(dinp), dweight, dbias, f32(dout), f32(inp), f32(weight), N, C, OC);
}

void CpuBackend::attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C,
                                   int NH) {
  cpu::attention_forward<float>(f32(out), lse, f32(qkv), B, T, C, NH);
}

void CpuBackend::attention_backward(void* dqkv, const void* dout, const void* qkv,
                                    const void* out, const float* lse, int B, int T, int C,
                                    int NH) {
  cpu::attention_backward<float>(f32(dqkv), f32(dout), f32(qkv), f32(out), lse, B, T, C, NH);
}

void CpuBackend::attention_cached_forward(void* out, void* k_cache, void* v_cache, const void* qkv, int B, int Tn,
                                          int pos, int capacity, int C, int NH) {
  cpu::attention_cached_forward<float>(f32(out), f32(k_cache), f32(v_cache), f32(qkv), B, Tn, pos, capacity, C, NH);
}

void CpuBackend::gelu_forward(void* out, const void* inp, size_t n) {
  cpu::gelu_forward<float>(f32(out), f32(inp), n);
}

void CpuBackend::gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) {
  cpu::gelu_backward<float>(f32(dinp), f32(inp), f32(dout), n);
}

void CpuBackend::matmul_residual_forward(void* out, const void* residual, const void* inp,
                                         const void* weight, const void* bias, int N, int C,
                                         int OC) {
  cpu::matmul_residual_forward<float>(f32(out), f32(residual), f32(inp), f32(weight), f32(bias), N, C, OC);
}

void CpuBackend::residual_forward(void* out, const void* inp1, const void* inp2, size_t n) {
  cpu::residual_forward<float>(f32(out), f32(inp1), f32(inp2), n);
}

void CpuBackend::classifier_forward_backward(void* dlogits, float* losses, const void* logits,
                                             const int32_t* targets, float dloss, int N, int V,
                                             int Vp) {
  cpu::classifier_forward_backward<float>(f32(dlogits), losses, f32(logits), targets, dloss, N, V, Vp);
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

int cpu_backend_threads(const lmt::Backend& backend) {
  const auto* cpu = dynamic_cast<const CpuBackend*>(&backend);
  LMT_CHECK(cpu != nullptr, "cpu_backend_threads: " + backend.name() + " is not the CPU backend");
  return cpu->num_threads();
}

std::string blas_info() {
  const char* config = openblas_get_config();
  return config != nullptr ? std::string(config) : std::string("OpenBLAS (no config string)");
}

}  // namespace lmt::cpu
