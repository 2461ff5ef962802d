// The op interface every backend implements (cpu/ is the reference, cuda/ the fast path).
//
// Conventions (DESIGN.md section 2):
//  - Raw buffers plus dims; outputs first, then inputs, then sizes.
//  - Dims: B batch, T sequence, C channels, NH heads, HS = C / NH, V vocab, Vp padded vocab,
//    N = B * T rows, OC output channels.
//  - Gradient rule: parameter gradients accumulate (+=); activation gradients overwrite (=),
//    except the residual stream (layernorm's dinp), which accumulates.
//  - Pointers refer to the backend's memory (host memory for cpu, device memory for cuda).
//  - Precision (DESIGN.md section 3): activations, their gradients and the compute copy of the
//    parameters are `void*` holding compute_dtype() elements (fp32, bf16 or fp16). Buffers that
//    are always fp32 are `float*`: parameter gradients, master weights, Adam moments, layernorm
//    statistics, the attention log-sum-exp and the losses. Reductions run in fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace lmt {

// Backend-owned memory plus the ops. One instance per process; the model holds a reference.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The element type of activations and of the compute copy of the parameters.
  virtual DType compute_dtype() const { return DType::kF32; }

  // --- memory -------------------------------------------------------------------------------
  virtual void* alloc(size_t bytes) = 0;  // zero-initialized
  virtual void free(void* ptr) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* ptr, size_t bytes) = 0;
  // dst = src, both in the backend's memory (they may not overlap).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // dst (n, compute dtype) = src (n, fp32), rounded to nearest even (the compute copy of the
  // parameters after each optimizer step). In fp32 a copy.
  virtual void convert_from_f32(void* dst, const float* src, size_t n) = 0;

  // --- ops ----------------------------------------------------------------------------------
  // out (B,T,C) = wte[tokens] + wpe[t]
  virtual void encoder_forward(void* out, const int32_t* tokens, const void* wte,
                               const void* wpe, int B, int T, int C) = 0;
  // dwte (Vp,C) += , dwpe (maxT,C) += ; deterministic (no races on repeated tokens)
  virtual void encoder_backward(float* dwte, float* dwpe, const void* dout,
                                const int32_t* tokens, int B, int T, int C) = 0;

  // out (N,C), mean (N), rstd (N) from inp (N,C); eps = 1e-5
  virtual void layernorm_forward(void* out, float* mean, float* rstd, const void* inp,
                                 const void* weight, const void* bias, int N, int C) = 0;
  // dinp (N,C) += (residual stream), dweight (C) +=, dbias (C) +=
  virtual void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                                  const void* inp, const void* weight, const float* mean,
                                  const float* rstd, int N, int C) = 0;

  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be null
  virtual void matmul_forward(void* out, const void* inp, const void* weight,
                              const void* bias, int N, int C, int OC) = 0;
  // dinp (N,C) = (may be null: skip), dweight (OC,C) +=, dbias (OC) += (may be null)
  virtual void matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                               const void* inp, const void* weight, int N, int C, int OC) = 0;

  // Fused causal self-attention. qkv (B,T,3C) holds q|k|v, head h at [h*HS,(h+1)*HS) of each.
  // out (B,T,C); lse (B,NH,T) = log-sum-exp of each row's scaled scores, saved for backward.
  virtual void attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C,
                                 int NH) = 0;
  // dqkv (B,T,3C) = ; recomputes probabilities from qkv and lse.
  virtual void attention_backward(void* dqkv, const void* dout, const void* qkv,
                                  const void* out, const float* lse, int B, int T, int C,
                                  int NH) = 0;

  // tanh-approximated GELU, elementwise over n values. Backward: dinp = (may alias dout).
  virtual void gelu_forward(void* out, const void* inp, size_t n) = 0;
  virtual void gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) = 0;

  // Dense layer + GELU (the MLP's first layer): pre (N,OC) = inp @ weight^T + bias and
  // out (N,OC) = gelu(pre), both written. The default runs the two ops; a backend may fuse
  // them (a GEMM epilogue). The CPU backend keeps the default: applying GELU to each GEMM tile
  // as it is finished measured slower than the separate AVX-512 pass.
  virtual void matmul_gelu_forward(void* pre, void* out, const void* inp, const void* weight,
                                   const void* bias, int N, int C, int OC) {
    matmul_forward(pre, inp, weight, bias, N, C, OC);
    gelu_forward(out, pre, static_cast<size_t>(N) * OC);
  }
  // Backward of a dense layer whose input is inp = gelu(pre) (the MLP's second layer):
  // dpre (N,C) = (dout @ weight) * gelu'(pre) (overwritten), dweight +=, dbias += (may be
  // null). The default runs matmul_backward then gelu_backward in place.
  virtual void matmul_backward_gelu(void* dpre, float* dweight, float* dbias, const void* dout,
                                    const void* inp, const void* weight, const void* pre, int N,
                                    int C, int OC) {
    matmul_backward(dpre, dweight, dbias, dout, inp, weight, N, C, OC);
    gelu_backward(dpre, pre, dpre, static_cast<size_t>(N) * C);
  }

  // Dense layer onto the residual stream: out (N,OC) = residual + inp @ weight^T + bias (out
  // may not alias residual). The default runs matmul_forward then residual_forward; a backend
  // overrides it to add the residual to each tile of the product while it is in cache.
  virtual void matmul_residual_forward(void* out, const void* residual, const void* inp,
                                       const void* weight, const void* bias, int N, int C,
                                       int OC) {
    matmul_forward(out, inp, weight, bias, N, C, OC);
    residual_forward(out, out, residual, static_cast<size_t>(N) * OC);
  }

  // out = inp1 + inp2 over n values (the residual add; its backward is the identity).
  virtual void residual_forward(void* out, const void* inp1, const void* inp2, size_t n) = 0;

  // Fused classifier over N rows of logits (N,Vp) whose first V columns are real.
  // losses (N) = logsumexp(row[:V]) - row[target]. When dlogits is not null it receives
  // (softmax(row[:V]) - onehot(target)) * dloss, zero in the padded columns; dlogits may alias
  // logits (the logits are then consumed).
  virtual void classifier_forward_backward(void* dlogits, float* losses, const void* logits,
                                           const int32_t* targets, float dloss, int N, int V,
                                           int Vp) = 0;

  // Returns sum of squares of grads[0..n) (accumulated in double on cpu).
  virtual double sum_squares(const float* grads, size_t n) = 0;

  // AdamW step over n values with decoupled weight decay:
  //   g = grads * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
  //   params -= lr * ( (m / bc1) / (sqrt(v / bc2) + eps) + weight_decay * params )
  // where bc1 = 1 - b1^t, bc2 = 1 - b2^t with t the 1-based step.
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, size_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            float grad_scale, int t) = 0;
};

}  // namespace lmt
