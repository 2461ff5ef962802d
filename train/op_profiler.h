// A Backend that forwards every call to another backend and times each op (synchronizing
// before and after, so device ops are timed too): `lmtrain bench --ops`. It adds a little
// overhead per op, which is why plain `lmtrain bench` does not use it.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"

namespace lmt {

struct OpTiming {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0;
  double flops = 0;  // matrix-product FLOPs done by the op (2 per multiply-add), 0 if not counted
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  // Accumulated timings, most expensive first; reset() clears them (after warmup steps).
  std::vector<OpTiming> timings() const;
  void reset() { timings_.clear(); }

  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  void convert_from_f32(void* dst, const float* src, size_t n) override { inner_.convert_from_f32(dst, src, n); }
  void* alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void free(void* ptr) override { inner_.free(ptr); }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { inner_.copy_to_device(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { inner_.copy_to_host(dst, src, bytes); }
  void zero(void* ptr, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override { inner_.copy(dst, src, bytes); }
  void synchronize() override { inner_.synchronize(); }

  void encoder_forward(void* out, const int32_t* tokens, const void* wte, const void* wpe, int B, int T,
                       int C) override;
  void encoder_backward(float* dwte, float* dwpe, const void* dout, const int32_t* tokens, int B, int T,
                        int C) override;
  void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight,
                         const void* bias, int N, int C) override;
  void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                          const void* weight, const float* mean, const float* rstd, int N, int C) override;
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N, int C,
                      int OC) override;
  void matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                       const void* weight, int N, int C, int OC) override;
  void attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C, int NH) override;
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out, const float* lse,
                          int B, int T, int C, int NH) override;
  void gelu_forward(void* out, const void* inp, size_t n) override;
  void gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) override;
  void matmul_gelu_forward(void* pre, void* out, const void* inp, const void* weight, const void* bias,
                           int N, int C, int OC) override;
  void matmul_backward_gelu(void* dpre, float* dweight, float* dbias, const void* dout, const void* inp,
                            const void* weight, const void* pre, int N, int C, int OC) override;
  void matmul_residual_forward(void* out, const void* residual, const void* inp, const void* weight,
                               const void* bias, int N, int C, int OC) override;
  void residual_forward(void* out, const void* inp1, const void* inp2, size_t n) override;
  void classifier_forward_backward(void* dlogits, float* losses, const void* logits, const int32_t* targets,
                                   float dloss, int N, int V, int Vp) override;
  double sum_squares(const float* grads, size_t n) override;
  void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, float grad_scale, int t) override;

 private:
  // Times fn() between two synchronizations and books it under name.
  template <typename Fn>
  void timed(const char* name, double flops, Fn&& fn);

  Backend& inner_;
  std::map<std::string, OpTiming> timings_;
};

}  // namespace lmt
