// The CPU reference ops as function templates over the element type.
//
// Each op has the signature of its lmt::Backend method in core/ops.h (outputs first, then inputs,
// then sizes) with float replaced by Real, and the same semantics. Each is explicitly
// instantiated for float (what CpuBackend runs) and double (what the finite-difference tests
// run) in its own file, cpu/<op>.cpp.
//
// The template parameter is called Real rather than T because T is the sequence length here.
//
// Gradient rule: parameter gradients accumulate (+=); activation gradients overwrite (=),
// except layernorm's dinp, which accumulates because it is the residual stream.
//
// Determinism: for a given input every op returns the same bits on every call, and (except
// where OpenBLAS chooses otherwise inside a GEMM) for any thread count: no float atomics, and
// every reduction that crosses threads is combined in a fixed order.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lmt::cpu {

// out (B,T,C) = wte[tokens] + wpe[t]
template <typename Real>
void encoder_forward(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B,
                     int T, int C);
// dwte (Vp,C) +=, dwpe (maxT,C) +=
template <typename Real>
void encoder_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* tokens, int B, int T,
                      int C);

// out (N,C), mean (N), rstd (N) from inp (N,C); eps = 1e-5
template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                       const Real* bias, int N, int C);
// dinp (N,C) +=, dweight (C) +=, dbias (C) +=
template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int N, int C);

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be null
template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                    int OC);
// dinp (N,C) = (null: skipped), dweight (OC,C) +=, dbias (OC) += (null: skipped)
template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                     const Real* weight, int N, int C, int OC);

// Causal self-attention. qkv (B,T,3C) -> out (B,T,C), lse (B,NH,T)
template <typename Real>
void attention_forward(Real* out, Real* lse, const Real* qkv, int B, int T, int C, int NH);
// dqkv (B,T,3C) =
template <typename Real>
void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* out,
                        const Real* lse, int B, int T, int C, int NH);

// Attention of Tn new positions against a KV cache (B,NH,capacity,HS), which it first extends
// with their k and v; see core/ops.def. Inference only: no backward.
template <typename Real>
void attention_cached_forward(Real* out, Real* k_cache, Real* v_cache, const Real* qkv, int B, int Tn, int pos,
                              int capacity, int C, int NH);

// tanh-approximated GELU over n values; backward: dinp =
template <typename Real>
void gelu_forward(Real* out, const Real* inp, size_t n);
template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n);

// A dense layer added onto the residual stream (cpu/matmul_residual.cpp):
// out (N,OC) = residual + inp @ weight^T + bias; out must not alias residual. Its backward is
// matmul_backward plus the identity for the residual.
template <typename Real>
void matmul_residual_forward(Real* out, const Real* residual, const Real* inp, const Real* weight,
                             const Real* bias, int N, int C, int OC);

// out = inp1 + inp2 over n values
template <typename Real>
void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t n);

// losses (N) =, dlogits (N,Vp) = (may be null, may alias logits)
template <typename Real>
void classifier_forward_backward(Real* dlogits, Real* losses, const Real* logits,
                                 const int32_t* targets, Real dloss, int N, int V, int Vp);

// sum of grads[i]^2 in double; the same bits for any thread count
template <typename Real>
double sum_squares(const Real* grads, size_t n);

// AdamW step with decoupled weight decay; t is the 1-based step
template <typename Real>
void adamw_update(Real* params, const Real* grads, Real* m, Real* v, size_t n, Real lr, Real beta1,
                  Real beta2, Real eps, Real weight_decay, Real grad_scale, int t);

}  // namespace lmt::cpu
