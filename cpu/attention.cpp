// Fused causal multi-head self-attention, scale 1/sqrt(HS).
// qkv (B,T,3C) holds q|k|v per row, head h at columns [h*HS,(h+1)*HS) of each third.
// Forward saves lse (B,NH,T), the natural log-sum-exp of each query's scaled scores over keys
// 0..t, so backward can recompute the probabilities p = exp(score - lse) without storing any
// T x T matrix.
// Gradient rule: dqkv is an activation gradient and is overwritten (=).
//
// Work is split by (batch, head) pair over the threads; within a pair, queries go in blocks of
// up to 64 against the keys up to the block's end. Each block works on transposed scores
// S^T (keys, queries), which makes every product a GEMM on operands as they lie in qkv (no
// packing) and the softmax over keys a loop over rows that vectorizes across queries:
//   forward:  S^T = K (q scale)^T,  P^T = column softmax,  out = (P^T)^T V
//   backward: dP^T = V dout^T,  dS^T = P^T (dP^T - D) scale,
//             dq = (dS^T)^T K,  dk += dS^T q,  dv += P^T dout
// The score buffers are per thread, (T, 64) at most, never T x T per head. Backward recomputes
// S^T with the very same GEMM call as the forward, so p = exp(s - lse) is exactly the forward's
// probability. Every pair is owned by one thread and summed in a fixed order, so the result
// does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {

constexpr int kQueryBlock = 64;

// The causal mask inside a query block [t0, t0 + rows): key j (0 <= j < t_end) is seen by
// block query r iff j <= t0 + r. The block's products skip what the mask makes zero
// (cpu/gemm.h, GemmTileRange); keys are offset by key0 where a product covers keys key0...
struct CausalBlock {
  int t0;
  int rows;
  int key0;
};

// C rows = keys, C columns = queries (S^T and dP^T): a tile whose keys all come after its last
// query is never read (the softmax skips it), so it is not computed.
void keys_by_queries_range(const void* context, int row0, int, int col0, int cols,
                           int* k_begin, int* k_end) {
  const auto& block = *static_cast<const CausalBlock*>(context);
  if (block.key0 + row0 > block.t0 + col0 + cols - 1) *k_end = *k_begin;
}
// C rows = queries, K = keys (out = P V, dq = dS K): query r sees keys up to t0 + r.
void queries_by_keys_range(const void* context, int row0, int rows, int, int, int*,
                           int* k_end) {
  const auto& block = *static_cast<const CausalBlock*>(context);
  *k_end = std::min(*k_end, block.t0 + row0 + rows);
}
// C rows = keys key0 + row0.., K = queries (dk += dS^T q, dv += P^T dout): key j is seen by
// queries from j - t0 on.
void keys_by_queries_k_range(const void* context, int row0, int, int, int, int* k_begin, int*) {
  const auto& block = *static_cast<const CausalBlock*>(context);
  *k_begin = std::max(*k_begin, block.key0 + row0 - block.t0);
}

using RangeFn = void (*)(const void*, int, int, int, int, int*, int*);

// Row-major C (M,N) = op(A) @ op(B) + beta C for one thread: lmtrain's sgemm for float (it
// stays on the calling thread inside a parallel region, and leaves out the masked products),
// a plain loop over everything for double.
void block_gemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc, RangeFn range = nullptr,
                const CausalBlock* block = nullptr) {
  sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, nullptr, GemmEpilogue{},
        GemmTileRange{range, block});
}
void block_gemm(bool trans_a, bool trans_b, int M, int N, int K, const double* A, int lda,
                const double* B, int ldb, double beta, double* C, int ldc, RangeFn = nullptr,
                const CausalBlock* = nullptr) {
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

// dst (cols, rows) = src (rows, cols)^T
void transpose(float* dst, int dst_ld, const float* src, int64_t src_ld, int rows, int cols) {
  transpose_block(dst, dst_ld, src, src_ld, rows, cols);
}
void transpose(double* dst, int dst_ld, const double* src, int64_t src_ld, int rows, int cols) {
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) dst[int64_t{j} * dst_ld + i] = src[i * src_ld + j];
  }
}

// Column softmax of the causal block: column r (query t0 + r) sees keys 0..t0+r of the
// (t_end, rows) matrix st; other entries become 0. Writes lse[r] and overwrites st with P^T.
template <typename Real>
[[gnu::always_inline]] inline void softmax_columns(Real* st, Real* lse, Real* col_max, Real* col_sum, int t0, int rows,
                     int t_end) {
  for (int r = 0; r < rows; ++r) {
    col_max[r] = -std::numeric_limits<Real>::infinity();
    col_sum[r] = Real{0};
  }
  for (int j = 0; j < t_end; ++j) {
    const Real* row = st + int64_t{j} * rows;
    for (int r = std::max(0, j - t0); r < rows; ++r) col_max[r] = std::max(col_max[r], row[r]);
  }
  // Subtracting the max keeps exp in range; lse adds it back.
  for (int j = 0; j < t_end; ++j) {
    Real* row = st + int64_t{j} * rows;
    const int first = std::min(rows, std::max(0, j - t0));
    for (int r = 0; r < first; ++r) row[r] = Real{0};
    for (int r = first; r < rows; ++r) {
      row[r] = exp_fast(row[r] - col_max[r]);
      col_sum[r] += row[r];
    }
  }
  for (int r = 0; r < rows; ++r) {
    lse[r] = col_max[r] + std::log(col_sum[r]);
    col_sum[r] = Real{1} / col_sum[r];
  }
  for (int j = 0; j < t_end; ++j) {
    Real* row = st + int64_t{j} * rows;
    for (int r = 0; r < rows; ++r) row[r] *= col_sum[r];
  }
}

// Backward of the block: st holds S^T and becomes P^T = exp(S^T - lse) (0 where masked);
// dst holds dP^T and becomes dS^T = P^T (dP^T - D) scale.
template <typename Real>
[[gnu::always_inline]] inline void backward_columns(Real* st, Real* dst, const Real* lse, const Real* dout_dot_out, int t0,
                      int rows, int t_end, Real scale) {
  for (int j = 0; j < t_end; ++j) {
    Real* p_row = st + int64_t{j} * rows;
    Real* ds_row = dst + int64_t{j} * rows;
    const int first = std::min(rows, std::max(0, j - t0));
    for (int r = 0; r < first; ++r) {
      p_row[r] = Real{0};
      ds_row[r] = Real{0};
    }
    for (int r = first; r < rows; ++r) {
      p_row[r] = exp_fast(p_row[r] - lse[r]);
      ds_row[r] = p_row[r] * (ds_row[r] - dout_dot_out[r]) * scale;
    }
  }
}

// float: both compiled for AVX-512 too (cpu/vec_math.h); the templates are forced inline so
// that each clone gets its own copy of the loops.
LMT_AVX512_CLONES void softmax_columns_f32(float* st, float* lse, float* col_max,
                                           float* col_sum, int t0, int rows, int t_end) {
  softmax_columns(st, lse, col_max, col_sum, t0, rows, t_end);
}
LMT_AVX512_CLONES void backward_columns_f32(float* st, float* dst, const float* lse,
                                            const float* dout_dot_out, int t0, int rows,
                                            int t_end, float scale) {
  backward_columns(st, dst, lse, dout_dot_out, t0, rows, t_end, scale);
}
void run_softmax_columns(float* st, float* lse, float* col_max, float* col_sum, int t0, int rows,
                         int t_end) {
  softmax_columns_f32(st, lse, col_max, col_sum, t0, rows, t_end);
}
void run_softmax_columns(double* st, double* lse, double* col_max, double* col_sum, int t0,
                         int rows, int t_end) {
  softmax_columns(st, lse, col_max, col_sum, t0, rows, t_end);
}
void run_backward_columns(float* st, float* dst, const float* lse, const float* dout_dot_out,
                          int t0, int rows, int t_end, float scale) {
  backward_columns_f32(st, dst, lse, dout_dot_out, t0, rows, t_end, scale);
}
void run_backward_columns(double* st, double* dst, const double* lse,
                          const double* dout_dot_out, int t0, int rows, int t_end, double scale) {
  backward_columns(st, dst, lse, dout_dot_out, t0, rows, t_end, scale);
}

// Per-thread scratch that only grows, so the training loop does not allocate.
template <typename Real>
struct AttentionScratch {
  std::vector<Real> queries_t;  // (HS,64): scaled queries, transposed
  std::vector<Real> dout_t;     // (HS,64): backward, dout of the block, transposed
  std::vector<Real> scores_t;   // (T,64): S^T, then P^T
  std::vector<Real> dscores_t;  // (T,64): dP^T, then dS^T
  std::vector<Real> columns;    // (2,64): per-query max and sum (forward), D (backward)

  static AttentionScratch& get(int T, int HS) {
    thread_local AttentionScratch scratch;
    const size_t block = size_t(kQueryBlock) * std::max(T, 1);
    if (scratch.scores_t.size() < block) {
      scratch.scores_t.resize(block);
      scratch.dscores_t.resize(block);
    }
    if (scratch.queries_t.size() < size_t(kQueryBlock) * HS) {
      scratch.queries_t.resize(size_t(kQueryBlock) * HS);
      scratch.dout_t.resize(size_t(kQueryBlock) * HS);
    }
    if (scratch.columns.size() < size_t(2) * kQueryBlock) {
      scratch.columns.resize(2 * kQueryBlock);
    }
    return scratch;
  }
};

// S^T (t_end, rows) = k[0..t_end) @ (scale q[t0..t0+rows))^T; the same calls in forward and
// backward.
template <typename Real>
void block_scores_t(Real* scores_t, Real* queries_t, const Real* qkv_head, int64_t row_stride,
                    int t0, int rows, int C, int HS, Real scale) {
  transpose(queries_t, rows, qkv_head + t0 * row_stride, row_stride, rows, HS);
  for (int i = 0; i < rows * HS; ++i) queries_t[i] *= scale;
  const CausalBlock block{t0, rows, 0};
  block_gemm(false, false, t0 + rows, rows, HS, qkv_head + C, static_cast<int>(row_stride),
             queries_t, rows, Real{0}, scores_t, rows, keys_by_queries_range, &block);
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
    Real* scores_t = scratch.scores_t.data();
    Real* col_max = scratch.columns.data();
    Real* col_sum = col_max + kQueryBlock;
#pragma omp for schedule(static)
    for (int pair = 0; pair < num_pairs; ++pair) {
      const int b = pair / NH;
      const int h = pair % NH;
      const Real* qkv_head = qkv + int64_t{b} * T * qkv_row_stride + h * HS;  // q of row 0
      Real* lse_row = lse + (int64_t{b} * NH + h) * T;                        // (T)
      for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, T - t0);
        const int t_end = t0 + rows;
        block_scores_t(scores_t, scratch.queries_t.data(), qkv_head, qkv_row_stride, t0, rows, C,
                       HS, scale);
        run_softmax_columns(scores_t, lse_row + t0, col_max, col_sum, t0, rows, t_end);
        // out rows t0.. (head h) = (P^T)^T @ v[0..t_end)
        const CausalBlock block{t0, rows, 0};
        block_gemm(true, false, rows, HS, t_end, scores_t, rows, qkv_head + 2 * C,
                   static_cast<int>(qkv_row_stride), Real{0},
                   out + (int64_t{b} * T + t0) * C + h * HS, C, queries_by_keys_range, &block);
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
    Real* probabilities_t = scratch.scores_t.data();
    Real* dscores_t = scratch.dscores_t.data();
    Real* dout_t = scratch.dout_t.data();
    Real* dout_dot_out = scratch.columns.data();
#pragma omp for schedule(static)
    for (int pair = 0; pair < num_pairs; ++pair) {
      const int b = pair / NH;
      const int h = pair % NH;
      const Real* qkv_head = qkv + int64_t{b} * T * qkv_row_stride + h * HS;  // q of row 0
      Real* dqkv_head = dqkv + int64_t{b} * T * qkv_row_stride + h * HS;      // dq of row 0
      const Real* dout_head = dout + int64_t{b} * T * C + h * HS;             // row 0
      const Real* out_head = out + int64_t{b} * T * C + h * HS;               // row 0
      const Real* lse_row = lse + (int64_t{b} * NH + h) * T;                  // (T)
      for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, T - t0);
        const int t_end = t0 + rows;
        const Real* dout_block = dout_head + int64_t{t0} * C;
        block_scores_t(probabilities_t, scratch.queries_t.data(), qkv_head, qkv_row_stride, t0,
                       rows, C, HS, scale);
        // dP^T (t_end, rows) = v[0..t_end) @ dout[t0..)^T
        transpose(dout_t, rows, dout_block, C, rows, HS);
        const CausalBlock block{t0, rows, 0};
        block_gemm(false, false, t_end, rows, HS, qkv_head + 2 * C, ld, dout_t, rows, Real{0},
                   dscores_t, rows, keys_by_queries_range, &block);
        for (int r = 0; r < rows; ++r) {
          const Real* dout_row = dout_block + int64_t{r} * C;
          const Real* out_row = out_head + int64_t{t0 + r} * C;
          Real sum = Real{0};
          for (int d = 0; d < HS; ++d) sum += dout_row[d] * out_row[d];
          dout_dot_out[r] = sum;
        }
        run_backward_columns(probabilities_t, dscores_t, lse_row + t0, dout_dot_out, t0, rows,
                             t_end, scale);
        // dq[t0..) = (dS^T)^T @ k[0..t_end)
        block_gemm(true, false, rows, HS, t_end, dscores_t, rows, qkv_head + C, ld, Real{0},
                   dqkv_head + t0 * qkv_row_stride, ld, queries_by_keys_range, &block);
        // dk[0..t_end) += dS^T @ q[t0..),  dv[0..t_end) += P^T @ dout[t0..): keys before t0
        // already hold the earlier blocks' sums; keys t0.. are first reached here, so they are
        // written (beta 0) rather than cleared beforehand.
        for (const auto& [k0, k1, beta] :
             {std::tuple{0, t0, Real{1}}, std::tuple{t0, t_end, Real{0}}}) {
          if (k0 >= k1) continue;
          const CausalBlock keys_block{t0, rows, k0};
          block_gemm(false, false, k1 - k0, HS, rows, dscores_t + int64_t{k0} * rows, rows,
                     qkv_head + t0 * qkv_row_stride, ld, beta, dqkv_head + k0 * qkv_row_stride + C,
                     ld, keys_by_queries_k_range, &keys_block);
          block_gemm(false, false, k1 - k0, HS, rows, probabilities_t + int64_t{k0} * rows, rows,
                     dout_block, C, beta, dqkv_head + k0 * qkv_row_stride + 2 * C, ld,
                     keys_by_queries_k_range, &keys_block);
        }
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
