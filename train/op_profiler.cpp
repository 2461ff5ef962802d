#include "train/op_profiler.h"

#include <algorithm>

namespace lmt {

namespace {
double gemm_flops(int N, int C, int OC) { return 2.0 * N * C * OC; }
}  // namespace

template <typename Fn>
void ProfilingBackend::timed(const char* name, double flops, Fn&& fn) {
  inner_.synchronize();
  const auto start = std::chrono::steady_clock::now();
  fn();
  inner_.synchronize();
  OpTiming& t = timings_[name];
  t.name = name;
  t.calls += 1;
  t.total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  t.flops += flops;
}

std::vector<OpTiming> ProfilingBackend::timings() const {
  std::vector<OpTiming> out;
  for (const auto& entry : timings_) out.push_back(entry.second);
  std::sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) { return a.total_ms > b.total_ms; });
  return out;
}

void ProfilingBackend::zero(void* ptr, size_t bytes) {
  timed("zero", 0, [&] { inner_.zero(ptr, bytes); });
}
void ProfilingBackend::encoder_forward(void* out, const int32_t* tokens, const void* wte, const void* wpe,
                                       int B, int T, int C) {
  timed("encoder_forward", 0, [&] { inner_.encoder_forward(out, tokens, wte, wpe, B, T, C); });
}
void ProfilingBackend::encoder_backward(float* dwte, float* dwpe, const void* dout, const int32_t* tokens,
                                        int B, int T, int C) {
  timed("encoder_backward", 0, [&] { inner_.encoder_backward(dwte, dwpe, dout, tokens, B, T, C); });
}
void ProfilingBackend::layernorm_forward(void* out, float* mean, float* rstd, const void* inp,
                                         const void* weight, const void* bias, int N, int C) {
  timed("layernorm_forward", 0, [&] { inner_.layernorm_forward(out, mean, rstd, inp, weight, bias, N, C); });
}
void ProfilingBackend::layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                                          const void* inp, const void* weight, const float* mean,
                                          const float* rstd, int N, int C) {
  timed("layernorm_backward", 0,
        [&] { inner_.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C); });
}
void ProfilingBackend::matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                                      int N, int C, int OC) {
  timed("matmul_forward", gemm_flops(N, C, OC),
        [&] { inner_.matmul_forward(out, inp, weight, bias, N, C, OC); });
}
void ProfilingBackend::matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                                       const void* inp, const void* weight, int N, int C, int OC) {
  timed("matmul_backward", gemm_flops(N, C, OC) * (dinp != nullptr ? 2 : 1),
        [&] { inner_.matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC); });
}
void ProfilingBackend::attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C,
                                         int NH) {
  // Causal: q.k and p.v over T(T+1)/2 pairs per head.
  const double flops = 2.0 * 2.0 * B * (T * (T + 1.0) / 2.0) * C;
  timed("attention_forward", flops, [&] { inner_.attention_forward(out, lse, qkv, B, T, C, NH); });
}
void ProfilingBackend::attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out,
                                          const float* lse, int B, int T, int C, int NH) {
  const double flops = 2.0 * 5.0 * B * (T * (T + 1.0) / 2.0) * C;  // q.k again, dout.v, dq, dk, dv
  timed("attention_backward", flops,
        [&] { inner_.attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH); });
}
void ProfilingBackend::gelu_forward(void* out, const void* inp, size_t n) {
  timed("gelu_forward", 0, [&] { inner_.gelu_forward(out, inp, n); });
}
void ProfilingBackend::gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) {
  timed("gelu_backward", 0, [&] { inner_.gelu_backward(dinp, inp, dout, n); });
}
void ProfilingBackend::matmul_gelu_forward(void* pre, void* out, const void* inp, const void* weight,
                                           const void* bias, int N, int C, int OC) {
  timed("matmul_gelu_forward", gemm_flops(N, C, OC),
        [&] { inner_.matmul_gelu_forward(pre, out, inp, weight, bias, N, C, OC); });
}
void ProfilingBackend::matmul_backward_gelu(void* dpre, float* dweight, float* dbias, const void* dout,
                                            const void* inp, const void* weight, const void* pre, int N,
                                            int C, int OC) {
  timed("matmul_backward_gelu", 2 * gemm_flops(N, C, OC),
        [&] { inner_.matmul_backward_gelu(dpre, dweight, dbias, dout, inp, weight, pre, N, C, OC); });
}
void ProfilingBackend::matmul_residual_forward(void* out, const void* residual, const void* inp,
                                               const void* weight, const void* bias, int N, int C, int OC) {
  timed("matmul_residual_forward", gemm_flops(N, C, OC),
        [&] { inner_.matmul_residual_forward(out, residual, inp, weight, bias, N, C, OC); });
}
void ProfilingBackend::residual_forward(void* out, const void* inp1, const void* inp2, size_t n) {
  timed("residual_forward", 0, [&] { inner_.residual_forward(out, inp1, inp2, n); });
}
void ProfilingBackend::classifier_forward_backward(void* dlogits, float* losses, const void* logits,
                                                   const int32_t* targets, float dloss, int N, int V, int Vp) {
  timed("classifier_forward_backward", 0,
        [&] { inner_.classifier_forward_backward(dlogits, losses, logits, targets, dloss, N, V, Vp); });
}
double ProfilingBackend::sum_squares(const float* grads, size_t n) {
  double result = 0;
  timed("sum_squares", 0, [&] { result = inner_.sum_squares(grads, n); });
  return result;
}
void ProfilingBackend::adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                                    int t) {
  timed("adamw_update", 0, [&] {
    inner_.adamw_update(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
  });
}

}  // namespace lmt
