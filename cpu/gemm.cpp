// lmtrain's single-precision GEMM (see cpu/gemm.h): Goto-style blocking with packed panels.
//
//   for each block of NC columns of C and KC steps of K:
//     strips of NR columns of op(B)[k block, column block]
//     for each block of MC rows:
//       panels of MR rows of op(A)[row block, k block]
//       every (strip, panel) pair: micro-kernel C[MR x NR] (+)= panel @ strip
//
// The micro-kernel keeps an MR x NR tile of C in registers for a whole k block. Only what
// cannot be read in place is packed: a transposed B (the weights of a forward layer), and the
// last strip or panel when N or M is not a multiple of the tile (padded with zeros). Tiles that
// stick out of C are computed into a scratch tile and the valid part copied.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LMT_GEMM_X86 1
#endif

namespace lmt::cpu {

namespace {

// Micro-kernel: C (MR x NR, leading dimension ldc) = (accumulate ? C : 0) + A-panel @ B-strip
// over kc. The B strip is read as b(k, j) = B[k * b_step + j] (packed: b_step = NR; a
// non-transposed B in place: its ld). The A panel is read as a(i, k) = A[k * a_step + i] when
// rows_contiguous (packed: a_step = MR; a transposed A in place: its ld), otherwise as
// a(i, k) = A[i * a_step + k] (a non-transposed A in place), so full panels need no packing.
// Without accumulate, the tile starts from bias (NR values added to every row) or from zero.
// Each instruction set instantiates its kernel for both A layouts.
using MicroKernel = void (*)(int kc, const float* A, int64_t a_step, const float* B,
                             int64_t b_step, float* C, int64_t ldc, bool accumulate,
                             const float* bias);

struct Kernel {
  int mr;
  int nr;
  MicroKernel rows_contiguous;  // a(i, k) = A[k * a_step + i]
  MicroKernel rows_strided;     // a(i, k) = A[i * a_step + k]
};

constexpr int kMaxTile = 12 * 32;  // the largest MR * NR below

// Portable: 4 x 16 with the tile in a local array the compiler keeps in vector registers.
template <bool kRowsContiguous>
void kernel_generic(int kc, const float* A, int64_t a_step, const float* B, int64_t b_step,
                    float* C, int64_t ldc, bool accumulate, const float* bias) {
  constexpr int MR = 4, NR = 16;
  const int64_t row_stride = kRowsContiguous ? 1 : a_step;
  const int64_t k_stride = kRowsContiguous ? a_step : 1;
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      acc[i][j] = accumulate ? C[i * ldc + j] : (bias != nullptr ? bias[j] : 0.0f);
    }
  }
  for (int k = 0; k < kc; ++k) {
    const float* b = B + k * b_step;
    for (int i = 0; i < MR; ++i) {
      const float a = A[i * row_stride + k * k_stride];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) C[i * ldc + j] = acc[i][j];
  }
}

#ifdef LMT_GEMM_X86
// AVX2 + FMA: 6 x 16, twelve ymm accumulators, two strip loads and six broadcasts per k.
template <bool kRowsContiguous>
__attribute__((target("avx2,fma"))) void kernel_avx2(int kc, const float* A, int64_t a_step,
                                                          const float* B, int64_t b_step,
                                                          float* C, int64_t ldc,
                                                          bool accumulate, const float* bias) {
  constexpr int MR = 6;
  __m256 c0[MR], c1[MR];
  const __m256 start0 = bias != nullptr ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 start1 = bias != nullptr ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    c0[i] = accumulate ? _mm256_loadu_ps(C + i * ldc) : start0;
    c1[i] = accumulate ? _mm256_loadu_ps(C + i * ldc + 8) : start1;
  }
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B);
    const __m256 b1 = _mm256_loadu_ps(B + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(kRowsContiguous ? A + i : A + i * a_step);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    A += kRowsContiguous ? a_step : 1;
    B += b_step;
  }
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(C + i * ldc, c0[i]);
    _mm256_storeu_ps(C + i * ldc + 8, c1[i]);
  }
}

// AVX-512: 12 x 32, twenty-four zmm accumulators, two strip loads and twelve broadcasts per k.
template <bool kRowsContiguous>
__attribute__((target("avx512f"))) void kernel_avx512(int kc, const float* A,
                                                           int64_t a_step, const float* B,
                                                           int64_t b_step, float* C, int64_t ldc,
                                                           bool accumulate, const float* bias) {
  constexpr int MR = 12;
  __m512 c0[MR], c1[MR];
  const __m512 start0 = bias != nullptr ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 start1 = bias != nullptr ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    c0[i] = accumulate ? _mm512_loadu_ps(C + i * ldc) : start0;
    c1[i] = accumulate ? _mm512_loadu_ps(C + i * ldc + 16) : start1;
  }
#pragma GCC unroll 2
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(B);
    const __m512 b1 = _mm512_loadu_ps(B + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(kRowsContiguous ? A[i] : A[i * a_step]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    A += kRowsContiguous ? a_step : 1;
    B += b_step;
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(C + i * ldc, c0[i]);
    _mm512_storeu_ps(C + i * ldc + 16, c1[i]);
  }
}

#endif

Kernel kernel_for(GemmIsa isa) {
  switch (isa) {
#ifdef LMT_GEMM_X86
    case GemmIsa::kAvx512:
      return {12, 32, kernel_avx512<true>, kernel_avx512<false>};
    case GemmIsa::kAvx2:
      return {6, 16, kernel_avx2<true>, kernel_avx2<false>};
#endif
    default:
      return {4, 16, kernel_generic<true>, kernel_generic<false>};
  }
}

// Blocking: a k block of 256 keeps a strip (256 x NR floats, 32 KiB at NR = 32) in L1 while the
// panels of a row block (MC x 256, at most 192 KiB) stream from L2.
constexpr int kKc = 256;
constexpr int kPanelsPerRowBlock = 16;
constexpr int kNc = 1024;
constexpr int kWholeKMax = 1024;                     // K up to this runs unblocked ...
constexpr int64_t kWholePackMax = int64_t{1} << 21;  // ... if B (K x N) has at most 8 MiB

// Packs rows [i0, i0+rows) and k [p0, p0+kc) of op(A) into one panel of mr rows (zero-padded).
void pack_a_panel(float* dst, bool trans_a, const float* A, int64_t lda, int i0, int rows, int p0,
                  int kc, int mr) {
  if (trans_a) {
    // op(A)(i, k) = A[k * lda + i]: for each k the panel's rows are contiguous in A.
    for (int k = 0; k < kc; ++k) {
      const float* src = A + int64_t{p0 + k} * lda + i0;
      float* out = dst + k * mr;
      std::memcpy(out, src, sizeof(float) * rows);
      for (int i = rows; i < mr; ++i) out[i] = 0.0f;
    }
  } else {
    // op(A)(i, k) = A[i * lda + k]: read each row once, scatter with stride mr.
    for (int i = 0; i < rows; ++i) {
      const float* src = A + int64_t{i0 + i} * lda + p0;
      for (int k = 0; k < kc; ++k) dst[k * mr + i] = src[k];
    }
    for (int i = rows; i < mr; ++i) {
      for (int k = 0; k < kc; ++k) dst[k * mr + i] = 0.0f;
    }
  }
}

// Packs panels [first_panel, end_panel) of a transposed A (op(A)(i, k) = A[k * lda + i]) over
// k [p0, p0+kc), panel p at dst + p * mr * kc (the last one zero-padded to mr rows). Row by row
// of A, so the reads are sequential within each row and the hardware prefetcher keeps up.
void pack_a_panels_transposed(float* dst, const float* A, int64_t lda, int M, int first_panel,
                              int end_panel, int p0, int kc, int mr) {
  if (first_panel >= end_panel) return;
  const int full_end = std::min(end_panel, M / mr);  // panels with mr real rows
  const int64_t panel_size = int64_t{mr} * kc;
  // A fixed-size copy per (k, panel), inlined: a library memcpy call per 48 bytes cost a
  // quarter of a weight-gradient GEMM.
  auto copy_rows = [&](auto fixed_mr) {
    constexpr int kMr = decltype(fixed_mr)::value;
    for (int k = 0; k < kc; ++k) {
      const float* src = A + int64_t{p0 + k} * lda;
      for (int panel = first_panel; panel < full_end; ++panel) {
        std::memcpy(dst + panel * panel_size + int64_t{k} * kMr, src + int64_t{panel} * kMr,
                    sizeof(float) * kMr);
      }
    }
  };
  switch (mr) {
    case 12:
      copy_rows(std::integral_constant<int, 12>{});
      break;
    case 6:
      copy_rows(std::integral_constant<int, 6>{});
      break;
    case 4:
      copy_rows(std::integral_constant<int, 4>{});
      break;
    default:
      LMT_CHECK(false, "sgemm: no panel copy for mr " + std::to_string(mr));
  }
  for (int panel = std::max(first_panel, full_end); panel < end_panel; ++panel) {
    pack_a_panel(dst + panel * panel_size, true, A, lda, panel * mr, M - panel * mr, p0, kc, mr);
  }
}

#ifdef LMT_GEMM_X86
bool transpose_8x8_available() {
  static const bool available = __builtin_cpu_supports("avx2");
  return available;
}

// dst[r][c] = src[c][r] for an 8 x 8 block (row strides dst_ld, src_ld), in AVX registers.
__attribute__((target("avx2"))) void transpose_8x8(float* dst, int64_t dst_ld, const float* src,
                                                   int64_t src_ld) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  // t0 = a0 b0 a1 b1 | a4 b4 a5 b5, t1 = a2 b2 a3 b3 | a6 b6 a7 b7, t2/t3 likewise for c, d ...
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));      // a0 b0 c0 d0 | a4..
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));  // a1 b1 c1 d1 | a5..
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));  // a2.. | a6..
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));  // a3.. | a7..
  }
  // r0..r3 hold columns 0-3 (low half) and 4-7 (high half) of rows a-d; r4..r7 of rows e-h.
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * dst_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * dst_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Packs k [p0, p0+kc) and columns [j0, j0+cols) of op(B) into a strip of width nr.
void pack_b_strip(float* dst, bool trans_b, const float* B, int64_t ldb, int j0, int cols, int p0,
                  int kc, int nr) {
  if (trans_b) {
    // op(B)(k, j) = B[j * ldb + k]: a transpose. Whole 8 x 8 blocks go through registers;
    // the rest (a ragged k tail, columns past cols) element by element.
    int k_done = 0;
#ifdef LMT_GEMM_X86
    if (transpose_8x8_available()) {
      k_done = kc / 8 * 8;
      const int full_cols = cols / 8 * 8;
      for (int j = 0; j < full_cols; j += 8) {
        for (int k = 0; k < k_done; k += 8) {
          transpose_8x8(dst + int64_t{k} * nr + j, nr, B + int64_t{j0 + j} * ldb + p0 + k, ldb);
        }
      }
      for (int j = full_cols; j < cols; ++j) {
        const float* src = B + int64_t{j0 + j} * ldb + p0;
        for (int k = 0; k < k_done; ++k) dst[k * nr + j] = src[k];
      }
      for (int j = cols; j < nr; ++j) {
        for (int k = 0; k < k_done; ++k) dst[k * nr + j] = 0.0f;
      }
    }
#endif
    for (int k = k_done; k < kc; ++k) {
      float* out = dst + int64_t{k} * nr;
      for (int j = 0; j < cols; ++j) out[j] = B[int64_t{j0 + j} * ldb + p0 + k];
      for (int j = cols; j < nr; ++j) out[j] = 0.0f;
    }
  } else {
    for (int k = 0; k < kc; ++k) {
      const float* src = B + int64_t{p0 + k} * ldb + j0;
      float* out = dst + k * nr;
      int j = 0;
      for (; j < cols; ++j) out[j] = src[j];
      for (; j < nr; ++j) out[j] = 0.0f;
    }
  }
}

// A thread's share of the tiles of one (column block, k block) pass: items [front, back),
// packed into one word so that the owner (taking from the front) and a thread that has run out
// of work (taking from the back) claim disjoint chunks with one compare-and-swap.
struct alignas(64) WorkRange {
  std::atomic<uint64_t> bounds{0};
};

// Claims a chunk of at most `chunk` items, from the front (the owner) or the back (a thread
// that has run out of its own work); false once the range is empty.
bool take(WorkRange& range, int chunk, bool from_back, int& first, int& last) {
  uint64_t current = range.bounds.load(std::memory_order_relaxed);
  for (;;) {
    uint32_t front = static_cast<uint32_t>(current >> 32);
    uint32_t back = static_cast<uint32_t>(current);
    if (front >= back) return false;
    const uint32_t size = std::min<uint32_t>(back - front, static_cast<uint32_t>(chunk));
    first = static_cast<int>(from_back ? back - size : front);
    last = first + static_cast<int>(size);
    if (from_back) {
      back -= size;
    } else {
      front += size;
    }
    if (range.bounds.compare_exchange_weak(current, (uint64_t{front} << 32) | back,
                                           std::memory_order_relaxed)) {
      return true;
    }
  }
}

// Scratch owned by the calling thread (Gloo tests run several ranks as threads of one
// process, so the buffers cannot be shared process-wide). They only grow: no allocation once
// the shapes of a training step have been seen.
struct GemmScratch {
  std::vector<float> a_panels;
  std::vector<float> b_strips;
  std::unique_ptr<WorkRange[]> ranges;  // one per thread per (column block, k block) pass
  int num_ranges = 0;
};
GemmScratch& scratch() {
  thread_local GemmScratch instance;
  return instance;
}

// One thread's share of C = op(A) @ op(B) + beta * C (thread `tid` of `num_threads`; with
// more than one thread the caller is inside an OpenMP parallel region of exactly that team and
// the barriers below synchronize it). Work is split by hand rather than with `omp for`, so that
// a single-threaded call made from inside another parallel region (attention calls GEMMs per
// head) does not bind to that region's team.
void gemm_share(const Kernel& kernel, int tid, int num_threads, bool trans_a, bool trans_b, int M,
                int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb,
                float beta, float* C, int64_t ldc, const float* bias, float* a_panels,
                float* b_strips, WorkRange* ranges, const GemmEpilogue& epilogue,
                int k_block, int column_block, bool pack_all_b, bool pack_all_a,
                const GemmTileRange& tile_range) {
  const int mr = kernel.mr;
  const int nr = kernel.nr;
  const int num_panels = (M + mr - 1) / mr;
  const int short_panel_rows = M % mr;
  auto barrier = [num_threads] {
    if (num_threads > 1) {
#pragma omp barrier
    }
  };
  // [begin, end) of `count` items for this thread: contiguous, static.
  auto share = [tid, num_threads](int count, int& begin, int& end) {
    begin = static_cast<int>(int64_t{count} * tid / num_threads);
    end = static_cast<int>(int64_t{count} * (tid + 1) / num_threads);
  };
  alignas(64) float edge_tile[kMaxTile];
  alignas(64) float edge_bias[kMaxTile];  // a short strip's bias, zero-padded to nr
  int iteration = 0;                      // index of the (column block, k block) pair
  // Packed strips: all of them for a transposed B (or when asked); for a B read in place only
  // the ragged last one, which then sits at the start of the buffer.
  const bool pack_all = trans_b || pack_all_b;
  auto strip_offset = [&](int s, int kc) { return pack_all ? int64_t{s} * kc * nr : int64_t{0}; };
  for (int j0 = 0; j0 < N; j0 += column_block) {
    const int nc = std::min(column_block, N - j0);
    const int num_strips = (nc + nr - 1) / nr;
    for (int p0 = 0; p0 < K; p0 += k_block) {
      const int kc = std::min(k_block, K - p0);
      const bool accumulate = beta != 0.0f || p0 > 0;
      const bool last_k_block = p0 + kc == K;
      // A non-transposed B is read in place, except for a last strip narrower than nr.
      int begin, end;
      share(num_strips, begin, end);
      for (int s = begin; s < end; ++s) {
        const int cols = std::min(nr, nc - s * nr);
        if (pack_all || cols < nr) {
          pack_b_strip(b_strips + strip_offset(s, kc), trans_b, B, ldb, j0 + s * nr, cols, p0, kc,
                       nr);
        }
      }
      // Full panels of A are read in place; only a last panel shorter than mr is packed.
      // Except for a transposed A over a long K (a weight gradient, K = tokens): a panel's k
      // steps are short pieces of distant rows of A, so every panel is copied into contiguous
      // memory once (the threads split the panels) and then read sequentially by each strip.
      if (pack_all_a) {
        int first_panel, end_panel;
        share(num_panels, first_panel, end_panel);
        pack_a_panels_transposed(a_panels, A, lda, M, first_panel, end_panel, p0, kc, mr);
      } else if (short_panel_rows > 0 && tid == num_threads - 1) {
        pack_a_panel(a_panels, trans_a, A, lda, (num_panels - 1) * mr, short_panel_rows, p0, kc,
                     mr);
      }
      const int num_items = num_strips * num_panels;
      WorkRange* pass_ranges = ranges + int64_t{iteration} * num_threads;
      if (num_threads > 1) {
        const uint64_t front = uint64_t(int64_t{num_items} * tid / num_threads);
        const uint64_t back = uint64_t(int64_t{num_items} * (tid + 1) / num_threads);
        pass_ranges[tid].bounds.store((front << 32) | back, std::memory_order_relaxed);
      }
      barrier();  // strips, the short panel and every thread's share are ready
      // Items in (row block, strip, panel) order: a thread's consecutive tiles share a strip
      // (in L1) and its row blocks of A stay in L2; the split is over all of C at once, so the
      // threads meet only after the packing and at the end of the k block.
      auto compute_tile = [&](int item) {
        const int block = item / (num_strips * kPanelsPerRowBlock);
        const int first_panel = block * kPanelsPerRowBlock;
        const int block_panels = std::min(kPanelsPerRowBlock, num_panels - first_panel);
        const int within = item - block * num_strips * kPanelsPerRowBlock;
        const int s = within / block_panels;
        const int panel = first_panel + within % block_panels;
        const int i0 = panel * mr;
        const int rows = std::min(mr, M - i0);
        const int cols = std::min(nr, nc - s * nr);
        const float* b_strip;
        int64_t b_step;
        if (pack_all || cols < nr) {
          b_strip = b_strips + strip_offset(s, kc);
          b_step = nr;
        } else {
          b_strip = B + int64_t{p0} * ldb + j0 + s * nr;
          b_step = ldb;
        }
        const float* a_panel;
        int64_t a_step;
        bool rows_contiguous;
        if (pack_all_a) {
          a_panel = a_panels + int64_t{panel} * mr * kc;
          a_step = mr;
          rows_contiguous = true;
        } else if (rows < mr) {
          a_panel = a_panels;
          a_step = mr;
          rows_contiguous = true;
        } else if (trans_a) {
          a_panel = A + int64_t{p0} * lda + i0;
          a_step = lda;
          rows_contiguous = true;
        } else {
          a_panel = A + int64_t{i0} * lda + p0;
          a_step = lda;
          rows_contiguous = false;
        }
        // A known-zero k range only shortens a product done in one k block.
        int tile_kc = kc;
        if (tile_range.fn != nullptr && kc == K) {
          int k_begin = 0, k_end = K;
          tile_range.fn(tile_range.context, i0, rows, j0 + s * nr, cols, &k_begin, &k_end);
          k_begin = std::clamp(k_begin, 0, K);
          k_end = std::clamp(k_end, k_begin, K);
          tile_kc = k_end - k_begin;
          a_panel += rows_contiguous ? k_begin * a_step : k_begin;
          b_strip += k_begin * b_step;
        }
        const MicroKernel micro_kernel =
            rows_contiguous ? kernel.rows_contiguous : kernel.rows_strided;
        float* c_tile = C + int64_t{i0} * ldc + j0 + s * nr;
        const float* tile_bias = bias != nullptr ? bias + j0 + s * nr : nullptr;
        if (tile_bias != nullptr && cols < nr) {
          std::fill_n(edge_bias, nr, 0.0f);
          std::copy_n(tile_bias, cols, edge_bias);
          tile_bias = edge_bias;
        }
        if (rows == mr && cols == nr) {
          micro_kernel(tile_kc, a_panel, a_step, b_strip, b_step, c_tile, ldc, accumulate,
                       tile_bias);
          if (last_k_block && epilogue.fn != nullptr) {
            epilogue.fn(epilogue.context, c_tile, ldc, i0, j0 + s * nr, rows, cols);
          }
          return;
        }
        if (accumulate) {
          for (int i = 0; i < rows; ++i) {
            std::memcpy(edge_tile + i * nr, c_tile + i * ldc, sizeof(float) * cols);
          }
        }
        micro_kernel(tile_kc, a_panel, a_step, b_strip, b_step, edge_tile, nr, accumulate,
                     tile_bias);
        for (int i = 0; i < rows; ++i) {
          std::memcpy(c_tile + i * ldc, edge_tile + i * nr, sizeof(float) * cols);
        }
        if (last_k_block && epilogue.fn != nullptr) {
          epilogue.fn(epilogue.context, c_tile, ldc, i0, j0 + s * nr, rows, cols);
        }
      };
      // Each thread starts on its own contiguous share of the tiles (the same rows every call,
      // so a layer's operands stay in the cache of the core that produced them), then takes
      // chunks from the back of the others' shares: on a shared machine one core can lose its
      // time slice, and the other then takes over its tiles. Which thread computes a tile does
      // not change its bits.
      if (num_threads == 1) {
        for (int item = 0; item < num_items; ++item) compute_tile(item);
      } else {
        const int chunk = std::max(1, num_items / (num_threads * 16));
        int first, last;
        while (take(pass_ranges[tid], chunk, /*from_back=*/false, first, last)) {
          for (int item = first; item < last; ++item) compute_tile(item);
        }
        for (int v = 1; v < num_threads; ++v) {
          WorkRange& victim = pass_ranges[(tid + v) % num_threads];
          while (take(victim, chunk, /*from_back=*/true, first, last)) {
            for (int item = first; item < last; ++item) compute_tile(item);
          }
        }
      }
      ++iteration;
      // The strips and the short panel are repacked for the next k or column block.
      if (p0 + k_block < K || j0 + column_block < N) barrier();
    }
  }
}

void run_gemm(const Kernel& kernel, bool trans_a, bool trans_b, int M, int N, int K,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc, const float* bias, const GemmEpilogue& epilogue,
              const GemmTileRange& tile_range) {
  LMT_CHECK(beta == 0.0f || beta == 1.0f, "sgemm: beta must be 0 or 1");
  LMT_CHECK(beta == 0.0f || bias == nullptr, "sgemm: a bias needs beta 0");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == 0.0f) {
      for (int i = 0; i < M; ++i) {
        if (bias != nullptr) {
          std::copy_n(bias, N, C + i * ldc);
        } else {
          std::fill_n(C + i * ldc, N, 0.0f);
        }
      }
    }
    if (epilogue.fn != nullptr) epilogue.fn(epilogue.context, C, ldc, 0, 0, M, N);
    return;
  }
  // Products with a short K whose packed B is small are done in one k block and one column
  // block: each tile then runs the whole K in registers, and the threads meet once (after the
  // packing) or not at all. The sums are the same, in the same order, as with k blocks.
  const int64_t padded_n = (int64_t{N} + kernel.nr - 1) / kernel.nr * kernel.nr;
  const bool whole_k = K <= kWholeKMax && int64_t{K} * padded_n <= kWholePackMax;
  // Unblocked, a B read in place would stream K rows at a stride of ldb floats through L1 for
  // every tile; past one k block's worth of rows that thrashed (a 768 x 512 B ran at 60% of the
  // blocked speed), so such a B is packed into contiguous strips too.
  const bool pack_all_b = whole_k && !trans_b && K > kKc;
  // A transposed A over a long K is packed whole when each panel serves several strips.
  const bool pack_all_a = whole_k && trans_a && K > kKc && N > 2 * kernel.nr;
  const int k_block = whole_k ? K : kKc;
  const int column_block = whole_k ? N : kNc;
  const int64_t nc_max =
      std::min<int64_t>((int64_t{column_block} + kernel.nr - 1) / kernel.nr * kernel.nr, padded_n);
  const int64_t kc_max = std::min(k_block, K);
  GemmScratch& buffers = scratch();
  const int num_iterations = ((N + column_block - 1) / column_block) * ((K + k_block - 1) / k_block);
  const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int num_ranges = num_iterations * max_threads;
  if (buffers.num_ranges < num_ranges) {
    buffers.ranges = std::make_unique<WorkRange[]>(num_ranges);
    buffers.num_ranges = num_ranges;
  }
  WorkRange* ranges = buffers.ranges.get();
  const size_t a_size =
      size_t(kernel.mr) * kc_max * (pack_all_a ? size_t((M + kernel.mr - 1) / kernel.mr) : 1);
  const size_t b_size = size_t(trans_b || pack_all_b ? nc_max : kernel.nr) * kc_max;
  if (buffers.a_panels.size() < a_size) buffers.a_panels.resize(a_size);
  if (buffers.b_strips.size() < b_size) buffers.b_strips.resize(b_size);
  float* a_panels = buffers.a_panels.data();
  float* b_strips = buffers.b_strips.data();

  // Small products are not worth waking the team, and calls from inside a parallel region run
  // on the calling thread alone.
  const double flops = 2.0 * M * N * K;
  const int num_threads = flops < 4e5 ? 1 : max_threads;
  if (num_threads == 1) {
    gemm_share(kernel, 0, 1, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, bias,
               a_panels, b_strips, ranges, epilogue, k_block, column_block, pack_all_b,
               pack_all_a, tile_range);
    return;
  }
#pragma omp parallel num_threads(num_threads)
  gemm_share(kernel, omp_get_thread_num(), omp_get_num_threads(), trans_a, trans_b, M, N, K, A,
             lda, B, ldb, beta, C, ldc, bias, a_panels, b_strips, ranges, epilogue, k_block,
             column_block, pack_all_b, pack_all_a, tile_range);
}

GemmIsa detect_isa() {
#ifdef LMT_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return GemmIsa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemmIsa::kAvx2;
#endif
  return GemmIsa::kGeneric;
}

GemmIsa resolve_isa() {
  const GemmIsa best = detect_isa();
  const char* requested = std::getenv("LMTRAIN_CPU_ISA");
  if (requested == nullptr || *requested == '\0') return best;
  const std::string name(requested);
  GemmIsa isa;
  if (name == "generic") {
    isa = GemmIsa::kGeneric;
  } else if (name == "avx2") {
    isa = GemmIsa::kAvx2;
  } else if (name == "avx512") {
    isa = GemmIsa::kAvx512;
  } else {
    throw Error("LMTRAIN_CPU_ISA='" + name + "': expected generic, avx2 or avx512 (or unset it)");
  }
  if (!gemm_isa_supported(isa)) {
    throw Error("LMTRAIN_CPU_ISA=" + name + ": this CPU supports at most " +
                gemm_isa_name(best) + "; unset LMTRAIN_CPU_ISA or ask for a lower one");
  }
  return isa;
}

}  // namespace

void transpose_block(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int rows,
                     int cols) {
  int row_done = 0;
  int col_done = 0;
#ifdef LMT_GEMM_X86
  if (transpose_8x8_available()) {
    row_done = rows / 8 * 8;
    col_done = cols / 8 * 8;
    for (int i = 0; i < row_done; i += 8) {
      for (int j = 0; j < col_done; j += 8) {
        transpose_8x8(dst + int64_t{j} * dst_ld + i, dst_ld, src + int64_t{i} * src_ld + j, src_ld);
      }
    }
  }
#endif
  // What the 8 x 8 blocks did not cover: the column tail of the covered rows, then the rest.
  for (int i = 0; i < row_done; ++i) {
    for (int j = col_done; j < cols; ++j) dst[int64_t{j} * dst_ld + i] = src[int64_t{i} * src_ld + j];
  }
  for (int i = row_done; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) dst[int64_t{j} * dst_ld + i] = src[int64_t{i} * src_ld + j];
  }
}

bool gemm_isa_supported(GemmIsa isa) { return static_cast<int>(isa) <= static_cast<int>(detect_isa()); }

std::string gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512:
      return "avx512";
    case GemmIsa::kAvx2:
      return "avx2";
    default:
      return "generic";
  }
}

GemmIsa gemm_isa() {
  static const GemmIsa isa = resolve_isa();
  return isa;
}

void sgemm_with_isa(GemmIsa isa, bool trans_a, bool trans_b, int M, int N, int K, const float* A,
                    int lda, const float* B, int ldb, float beta, float* C, int ldc,
                    const float* bias, const GemmEpilogue& epilogue,
                    const GemmTileRange& tile_range) {
  LMT_CHECK(gemm_isa_supported(isa), "sgemm: " + gemm_isa_name(isa) + " is not supported here");
  run_gemm(kernel_for(isa), trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, bias,
           epilogue, tile_range);
}

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
           const GemmEpilogue& epilogue, const GemmTileRange& tile_range) {
  run_gemm(kernel_for(gemm_isa()), trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc,
           bias, epilogue, tile_range);
}

}  // namespace lmt::cpu
