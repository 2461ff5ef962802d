// The CPU backend: lmt::Backend over host memory, each op forwarded to the float instantiation
// of the reference ops in cpu/cpu_ops.h. OpenMP parallelizes the loops, OpenBLAS the GEMMs.
#pragma once
#include <memory>
#include <string>

#include "core/ops.h"

namespace lmt::cpu {

class CpuBackend final : public lmt::Backend {
 public:
  // num_threads > 0; make_cpu_backend resolves "all cores" and configures OpenMP and OpenBLAS.
  explicit CpuBackend(int num_threads) : num_threads_(num_threads) {}

  // Threads used by OpenMP loops and by OpenBLAS.
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

  void encoder_forward(void* out, const int32_t* tokens, const void* wte, const void* wpe, int B,
                       int T, int C) override;
  void encoder_backward(float* dwte, float* dwpe, const void* dout, const int32_t* tokens, int B,
                        int T, int C) override;
  void layernorm_forward(void* out, float* mean, float* rstd, const void* inp,
                         const void* weight, const void* bias, int N, int C) override;
  void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                          const void* inp, const void* weight, const float* mean,
                          const float* rstd, int N, int C) override;
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N,
                      int C, int OC) override;
  void matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                       const void* inp, const void* weight, int N, int C, int OC) override;
  void attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C,
                         int NH) override;
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out,
                          const float* lse, int B, int T, int C, int NH) override;
  void gelu_forward(void* out, const void* inp, size_t n) override;
  void gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) override;
  void matmul_residual_forward(void* out, const void* residual, const void* inp,
                               const void* weight, const void* bias, int N, int C,
                               int OC) override;
  void residual_forward(void* out, const void* inp1, const void* inp2, size_t n) override;
  void classifier_forward_backward(void* dlogits, float* losses, const void* logits,
                                   const int32_t* targets, float dloss, int N, int V,
                                   int Vp) override;
  double sum_squares(const float* grads, size_t n) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                    int t) override;

 private:
  int num_threads_;
};

// Builds the CPU backend and sets both OpenMP's and OpenBLAS's thread count to num_threads;
// num_threads <= 0 means omp_get_max_threads() (honours OMP_NUM_THREADS).
std::unique_ptr<lmt::Backend> make_cpu_backend(int num_threads);

// OpenBLAS's build configuration (openblas_get_config()), for `lmtrain doctor`.
std::string blas_info();

}  // namespace lmt::cpu
