// lmtrain's own single-precision GEMM for the CPU backend (cpu/gemm.cpp).
//
// Row-major C (M,N) = op(A) (M,K) @ op(B) (K,N) + beta * C, with beta 0 or 1, op = identity or
// transpose. Packed panels and a register-blocked micro-kernel per instruction set: AVX-512
// (12 x 32 tile), AVX2 + FMA (6 x 16) and portable C++ (4 x 16), chosen at run time from what the
// CPU reports, so a build for x86-64-v3 still uses AVX-512 where it exists and does not depend
// on OpenBLAS recognising the CPU (Debian's OpenBLAS 0.3.21 falls back to its SSE3 "Prescott"
// kernels on CPUs it does not know).
//
// Threads: one OpenMP team splits the output tiles. Every element of C is computed by exactly
// one thread, over K in a fixed order, so the result has the same bits for any thread count.
#pragma once
#include <cstdint>
#include <string>

namespace lmt::cpu {

enum class GemmIsa { kGeneric, kAvx2, kAvx512 };

// The instruction set in use: the best the CPU supports, unless LMTRAIN_CPU_ISA=generic|avx2|
// avx512 asks for a lower one (for tests and comparisons; asking for one the CPU lacks is an
// error at first use).
GemmIsa gemm_isa();
std::string gemm_isa_name(GemmIsa isa);
// The instruction sets this CPU (and this build) can run, lowest first.
bool gemm_isa_supported(GemmIsa isa);

// Called once for every finished tile of C (after the last k block), on the thread that
// computed it, while the tile is still in cache: rows [row0, row0+rows) and columns
// [col0, col0+cols) of C, with tile pointing at C[row0][col0]. Fuses an elementwise op into
// the GEMM (matmul + GELU) without another pass over C.
struct GemmEpilogue {
  void (*fn)(const void* context, float* tile, int64_t ldc, int row0, int col0, int rows,
             int cols) = nullptr;
  const void* context = nullptr;
};

// Where a tile's products are known to vanish (a causal mask): for the tile at rows
// [row0, row0+rows) and columns [col0, col0+cols) of C, the k range [*k_begin, *k_end) outside
// of which every op(A)(i, k) * op(B)(k, j) of the tile is exactly zero (finite times zero), so
// leaving those terms out gives the same sums. An empty range writes beta * C (zeros for beta 0;
// for a tile whose outputs are never read). Used for products of at most one k block (short
// K, see cpu/gemm.cpp); elsewhere every k is computed, which gives the same result.
struct GemmTileRange {
  void (*fn)(const void* context, int row0, int rows, int col0, int cols, int* k_begin,
             int* k_end) = nullptr;
  const void* context = nullptr;
};

// C = op(A) @ op(B) + beta * C. trans_a: A is stored (K,M) with leading dimension lda;
// otherwise (M,K). trans_b: B is stored (N,K); otherwise (K,N). beta must be 0 or 1. A bias
// (N values, beta 0 only) is added to every row of C in the micro-kernel's first k block,
// saving the separate pass that seeding C with it would cost.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, const float* bias = nullptr,
           const GemmEpilogue& epilogue = {}, const GemmTileRange& tile_range = {});

// The same with an explicit instruction set (must be supported), for tests.
void sgemm_with_isa(GemmIsa isa, bool trans_a, bool trans_b, int M, int N, int K, const float* A,
                    int lda, const float* B, int ldb, float beta, float* C, int ldc,
                    const float* bias = nullptr, const GemmEpilogue& epilogue = {},
                    const GemmTileRange& tile_range = {});

// dst (cols, rows) = src (rows, cols)^T, row strides dst_ld and src_ld (8 x 8 register blocks).
void transpose_block(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int rows,
                     int cols);

}  // namespace lmt::cpu
