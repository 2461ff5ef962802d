// Fused causal multi-head self-attention, scale 1/sqrt(HS).
// qkv (B,T,3C) holds q|k|v per row, head h at columns [h*HS,(h+1)*HS) of each third.
// Forward saves lse (B,NH,T), the natural log-sum-exp of each query's scaled scores over keys
// 0..t, so backward can recompute the probabilities p = exp(score - lse) without storing any
// T x T matrix.
// Gradient rule: dqkv is an activation gradient and is overwritten (=).
//
// Work is split by (batch, head) pair over the threads; within a pair, queries go in blocks of
// up to 64 rows against the keys up to the block's end, so each block is five small GEMMs
// (cpu/gemm.h for float): scores S = (q scale) K^T, then out = P V forward; and dP = dout V^T,
// dq = dS K, dk += dS^T q, dv += P^T dout backward. The scores of a block live in a per-thread
// (64, T) buffer, never a T x T matrix. Backward recomputes S with the very same GEMM call as
// the forward, so p = exp(S - lse) is exactly the forward's probability. Every pair is owned by
// one thread and summed in a fixed order, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {

constexpr int kQueryBlock = 64;

// Row-major C (M,N) = op(A) @ op(B) + beta C for one thread: lmtrain's sgemm for float (it
// stays on the calling thread inside a parallel region), a plain loop for double.
void block_gemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
}
void block_gemm(bool trans_a, bool trans_b, int M, int N, int K, const double* A, int lda,
                const double* B, int ldb, double beta, double* C, int ldc) {
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double sum = 0.0;
      for (int k = 0; k < K; ++k) {
        const double a = trans_a ? A[int64_t{k} * lda + i] : A[int64_t{i} * lda + k];
        const double b = trans_b ? B[int64_t{j} * ldb + k] : B[int64_t{k} * ldb + j];
        sum += a * b;
      }
      double& c = C[int64_t{i} * ldc + j];
      c = (beta != 0.0 ? c : 0.0) + sum;
    }
  }
}

// Per-thread scratch that only grows, so the training loop does not allocate.
template <typename Real>
struct AttentionScratch {
  std::vector<Real> scaled_queries;  // (64,HS)
  std::vector<Real> scores;          // (64,T): S, then P
  std::vector<Real> dscores;         // (64,T): dP, then dS

  static AttentionScratch& get(int T, int HS) {
    thread_local AttentionScratch scratch;
    const size_t block = size_t(kQueryBlock) * std::max(T, 1);
    if (scratch.scores.size() < block) {
      scratch.scores.resize(block);
      scratch.dscores.resize(block);
    }
    if (scratch.scaled_queries.size() < size_t(kQueryBlock) * HS) {
      scratch.scaled_queries.resize(size_t(kQueryBlock) * HS);
    }
    return scratch;
  }
};

// The block's scores S (rows, t_end) = (scale q[t0..t0+rows)) @ k[0..t_end)^T; the same call
// in forward and backward.
template <typename Real>
void block_scores(Real* scores, Real* scaled_queries, const Real* qkv_head, int64_t row_stride,
                  int t0, int rows, int C, int HS, Real scale) {
  const int t_end = t0 + rows;
  for (int r = 0; r < rows; ++r) {
    const Real* query = qkv_head + (t0 + r) * row_stride;
    for (int d = 0; d < HS; ++d) scaled_queries[r * HS + d] = query[d] * scale;
  }
  block_gemm(false, true, rows, t_end, HS, scaled_queries, HS, qkv_head + C,
             static_cast<int>(row_stride), Real{0}, scores, t_end);
}

}  // namespace

template <typename Real>
void attention_forward(Real* out, Real* lse, const Real* qkv, int B, int T, int C, int NH) {
  const int HS = C / NH;
  const int64_t qkv_row_stride = int64_t{3} * C;
  const Real scale = Real{1} / std::sqrt(static_cast<Real>(HS));
  const int num_pairs = B * NH;
#pragma omp parallel
  {
    AttentionScratch<Real>& scratch = AttentionScratch<Real>::get(T, HS);
#pragma omp for schedule(static)
    for (int pair = 0; pair < num_pairs; ++pair) {
      const int b = pair / NH;
      const int h = pair % NH;
      const Real* qkv_head = qkv + int64_t{b} * T * qkv_row_stride + h * HS;  // q of row 0
      Real* lse_row = lse + (int64_t{b} * NH + h) * T;                        // (T)
      for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, T - t0);
        const int t_end = t0 + rows;
        Real* scores = scratch.scores.data();
        block_scores(scores, scratch.scaled_queries.data(), qkv_head, qkv_row_stride, t0, rows,
                     C, HS, scale);
        for (int r = 0; r < rows; ++r) {
          Real* row = scores + int64_t{r} * t_end;
          const int keys = t0 + r + 1;  // causal: keys 0..t
          Real max_score = -std::numeric_limits<Real>::infinity();
          for (int j = 0; j < keys; ++j) max_score = std::max(max_score, row[j]);
          // Subtracting the max keeps exp in range; lse adds it back.
          Real sum_exp = Real{0};
          for (int j = 0; j < keys; ++j) {
            row[j] = exp_fast(row[j] - max_score);
            sum_exp += row[j];
          }
          lse_row[t0 + r] = max_score + std::log(sum_exp);
          const Real inv_sum_exp = Real{1} / sum_exp;
          for (int j = 0; j < keys; ++j) row[j] *= inv_sum_exp;
          std::fill(row + keys, row + t_end, Real{0});
        }
        // out rows t0.. (head h) = P @ v[0..t_end)
        block_gemm(false, false, rows, HS, t_end, scores, t_end, qkv_head + 2 * C,
                   static_cast<int>(qkv_row_stride), Real{0},
                   out + (int64_t{b} * T + t0) * C + h * HS, C);
      }
    }
  }
}

template <typename Real>
void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* out,
                        const Real* lse, int B, int T, int C, int NH) {
  // The flash-attention backward, per query t and key j <= t:
  //   p = exp(scale * q_t . k_j - lse_t)      D_t = dout_t . out_t
  //   dS = p * (dout_t . v_j - D_t)
  //   dq_t += scale * dS * k_j,  dk_j += scale * dS * q_t,  dv_j += p * dout_t
  // D_t replaces the row sum of p * dP of the softmax backward, which is why out is an input.
  // Each (b, h) pair owns the columns of head h in batch row b of dqkv.
  const int HS = C / NH;
  const int64_t qkv_row_stride = int64_t{3} * C;
  const int ld = static_cast<int>(qkv_row_stride);
  const Real scale = Real{1} / std::sqrt(static_cast<Real>(HS));
  const int num_pairs = B * NH;
#pragma omp parallel
  {
    AttentionScratch<Real>& scratch = AttentionScratch<Real>::get(T, HS);
#pragma omp for schedule(static)
    for (int pair = 0; pair < num_pairs; ++pair) {
      const int b = pair / NH;
      const int h = pair % NH;
      const Real* qkv_head = qkv + int64_t{b} * T * qkv_row_stride + h * HS;  // q of row 0
      Real* dqkv_head = dqkv + int64_t{b} * T * qkv_row_stride + h * HS;      // dq of row 0
      const Real* dout_head = dout + int64_t{b} * T * C + h * HS;             // row 0
      const Real* out_head = out + int64_t{b} * T * C + h * HS;               // row 0
      const Real* lse_row = lse + (int64_t{b} * NH + h) * T;                  // (T)
      for (int t = 0; t < T; ++t) {  // dk and dv accumulate over the query blocks
        std::fill_n(dqkv_head + t * qkv_row_stride + C, HS, Real{0});
        std::fill_n(dqkv_head + t * qkv_row_stride + 2 * C, HS, Real{0});
      }
      for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, T - t0);
        const int t_end = t0 + rows;
        Real* probabilities = scratch.scores.data();
        Real* dscores = scratch.dscores.data();
        block_scores(probabilities, scratch.scaled_queries.data(), qkv_head, qkv_row_stride, t0,
                     rows, C, HS, scale);
        // dP (rows, t_end) = dout[t0..) @ v[0..t_end)^T
        block_gemm(false, true, rows, t_end, HS, dout_head + int64_t{t0} * C, C,
                   qkv_head + 2 * C, ld, Real{0}, dscores, t_end);
        for (int r = 0; r < rows; ++r) {
          const int t = t0 + r;
          const int keys = t + 1;
          const Real* dout_row = dout_head + int64_t{t} * C;
          const Real* out_row = out_head + int64_t{t} * C;
          Real dout_dot_out = Real{0};
          for (int d = 0; d < HS; ++d) dout_dot_out += dout_row[d] * out_row[d];
          Real* p_row = probabilities + int64_t{r} * t_end;
          Real* ds_row = dscores + int64_t{r} * t_end;
          for (int j = 0; j < keys; ++j) {
            p_row[j] = exp_fast(p_row[j] - lse_row[t]);
            ds_row[j] = p_row[j] * (ds_row[j] - dout_dot_out) * scale;
          }
          std::fill(p_row + keys, p_row + t_end, Real{0});
          std::fill(ds_row + keys, ds_row + t_end, Real{0});
        }
        // dq[t0..) = dS @ k[0..t_end)
        block_gemm(false, false, rows, HS, t_end, dscores, t_end, qkv_head + C, ld, Real{0},
                   dqkv_head + t0 * qkv_row_stride, ld);
        // dk[0..t_end) += dS^T @ q[t0..),  dv[0..t_end) += P^T @ dout[t0..)
        block_gemm(true, false, t_end, HS, rows, dscores, t_end, qkv_head + t0 * qkv_row_stride,
                   ld, Real{1}, dqkv_head + C, ld);
        block_gemm(true, false, t_end, HS, rows, probabilities, t_end,
                   dout_head + int64_t{t0} * C, C, Real{1}, dqkv_head + 2 * C, ld);
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, int, int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, int, int, int, int);

}  // namespace lmt::cpu
