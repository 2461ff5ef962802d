// Fused causal self-attention on tensor cores, for bf16 and fp16 at head sizes 64 and 128,
// FlashAttention-2's structure. The op and its layouts are attention.cu's (core/ops.def): qkv
// (B, T, 3C), out (B, T, C), lse (B, NH, T) the natural log-sum-exp of each row's scaled scores;
// dqkv is overwritten (=). fp32, head size 32 and unaligned pointers keep attention.cu.
//
// Forward: a block owns 64 queries of one (b, h), each of its 4 warps 16 rows. Keys and values
// stream through shared memory 64 at a time, double-buffered with cp.async (the next tile loads
// while this one is used); tiles above the diagonal are skipped, the diagonal one is masked.
// S = Q K^T and O += P V are mma.sync.m16n8k16 with fp32 accumulators, their operands loaded by
// ldmatrix (Q kept in registers; K plain, V .trans). The softmax is online, in registers: each
// lane holds 2 rows' scores of its quad, row maxima and sums reduced over the quad's 4 lanes.
// P is rounded to the input type for the P V product (the accumulator stays fp32).
//
// Backward, deterministic (no atomics), P recomputed from q, k and the saved lse:
// dP = dO V^T, delta = rowsum(dO * O), dS = P * (dP - delta). One kernel over query blocks
// writes dQ = scale * dS K (and delta, which it needs first), a second over key blocks dK =
// scale * dS^T Q and dV = P^T dO, with S^T = K Q^T computed the other way round so that every
// product keeps its accumulator in registers. dS and P are rounded to the input type as mma
// operands.
//
// Shared rows are padded by 16 bytes so that the 8 rows an ldmatrix reads fall in different
// banks, which also keeps every row 16-byte aligned for cp.async.
#include "cuda/attention_slices.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/mma.cuh"

namespace lmt::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 64;  // queries or keys per block, and per streamed tile
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
__host__ __device__ constexpr int pitch() {
  return D + 8;  // elements per shared row
}
template <int D>
__host__ __device__ constexpr int tile_elements() {
  return kTileRows * pitch<D>();
}

// Rows [first, first + 64) of one head into a shared tile; `head` is the head's row 0 and
// consecutive rows are `row_stride` elements apart. Rows at or past T are zeros (src-size 0).
template <typename T, int D>
__device__ __forceinline__ void load_tile_async(T* tile, const T* head, long long row_stride, int first, int T_) {
  constexpr int kChunks = D / 8;  // 16 bytes each
  for (int index = threadIdx.x; index < kTileRows * kChunks; index += kThreads) {
    const int r = index / kChunks, c = index % kChunks, t = first + r;
    const bool valid = t < T_;
    cp_async_16(tile + r * pitch<D>() + c * 8, head + (valid ? t * row_stride : 0) + c * 8, valid);
  }
}

// The double buffer of K/V tiles 0..last, at tile j: starts loading tile j + 1 into the other
// buffer, then waits until tile j (in buffer j & 1) has landed for the whole block.
template <typename T, int D>
__device__ __forceinline__ void next_kv_tiles(T* k_tiles, T* v_tiles, const T* k_head, const T* v_head,
                                              long long row_stride, int j, int last, int T_) {
  if (j < last) {
    const int other = (j & 1) ^ 1;
    load_tile_async<T, D>(k_tiles + other * tile_elements<D>(), k_head, row_stride, (j + 1) * kTileRows, T_);
    load_tile_async<T, D>(v_tiles + other * tile_elements<D>(), v_head, row_stride, (j + 1) * kTileRows, T_);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// 64 floats of a (B, NH, T) row from `first` into shared memory, zeros past T; threads
// [thread0, thread0 + 64) of the block issue them.
__device__ __forceinline__ void load_row_async(SmemPtr<float> dst, const float* row, int first, int T_, int thread0) {
  const int i = static_cast<int>(threadIdx.x) - thread0;
  if (i < 0 || i >= kTileRows) return;
  const bool valid = first + i < T_;
  cp_async_4(smem_raw(dst + i), row + (valid ? first + i : 0), valid);
}

// The A fragments (16 rows x 16 columns at column 16 kk) of rows [row0, row0 + 16) of a tile.
template <int D>
__device__ __forceinline__ const void* a_address(const void* tile, int row0, int kk, int lane, int element_bytes) {
  const int row = row0 + (lane / 8 % 2) * 8 + lane % 8, col = kk * 16 + lane / 16 * 8;
  return static_cast<const char*>(tile) + (row * pitch<D>() + col) * element_bytes;
}
// Two B fragments (n-tiles of 8 rows at rows 16 np, k = columns 16 kk..) from a tile whose rows
// are B's columns (ldmatrix_x4, registers {0,1} for n-tile 2 np and {2,3} for 2 np + 1).
template <int D>
__device__ __forceinline__ const void* b_rows_address(const void* tile, int np, int kk, int lane, int element_bytes) {
  const int row = np * 16 + lane / 16 * 8 + lane % 8, col = kk * 16 + (lane / 8 % 2) * 8;
  return static_cast<const char*>(tile) + (row * pitch<D>() + col) * element_bytes;
}
// Two B fragments (k = rows 16 kc.., n-tiles of 8 columns at columns 16 dp and 16 dp + 8) from a
// tile whose rows run along k (ldmatrix_x4_trans).
template <int D>
__device__ __forceinline__ const void* b_cols_address(const void* tile, int kc, int dp, int lane, int element_bytes) {
  const int row = kc * 16 + (lane / 8 % 2) * 8 + lane % 8, col = dp * 16 + lane / 16 * 8;
  return static_cast<const char*>(tile) + (row * pitch<D>() + col) * element_bytes;
}

// acc[n] (16 x 8 at n-tile n, n < 8) += A (16 x D, fragments a_frag) B, B's columns the 64 rows
// of `tile` (S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T).
template <typename T, int D>
__device__ __forceinline__ void multiply_chunk_by_rows(float (&acc)[8][4], const uint32_t (&a)[4], const T* tile,
                                                       int kk, int lane) {
  #pragma unroll
  for (int np = 0; np < 4; ++np) {
    uint32_t b[4];
    ldmatrix_x4(b, b_rows_address<D>(tile, np, kk, lane, sizeof(T)));
    mma_m16n8k16<T>(acc[2 * np], a, b);
    mma_m16n8k16<T>(acc[2 * np + 1], a, b + 2);
  }
}
template <typename T, int D>
__device__ __forceinline__ void multiply_by_rows(float (&acc)[8][4], const uint32_t (&a_frag)[D / 16][4],
                                                 const T* tile, int lane) {
  #pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) multiply_chunk_by_rows<T, D>(acc, a_frag[kk], tile, kk, lane);
}
// The same with A's fragments read from rows [row0, row0 + 16) of the shared `a_tile` one
// k-chunk at a time, for a kernel that cannot keep all of them in registers.
template <typename T, int D>
__device__ __forceinline__ void multiply_by_rows(float (&acc)[8][4], const T* a_tile, int row0, const T* tile,
                                                 int lane) {
  #pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldmatrix_x4(a, a_address<D>(a_tile, row0, kk, lane, sizeof(T)));
    multiply_chunk_by_rows<T, D>(acc, a, tile, kk, lane);
  }
}

// acc (16 x D) += A (16 x 64, the C fragments `c` rounded to T) B, B the 64 x D `tile` whose rows
// run along k (O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q).
template <typename T, int D>
__device__ __forceinline__ void multiply_by_columns(float (&acc)[D / 8][4], const float (&c)[8][4], const T* tile,
                                                    int lane) {
  #pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    // The C fragments of n-tiles 2 kc and 2 kc + 1 are the A fragment of k-chunk kc.
    const uint32_t a[4] = {pack_pair<T>(c[2 * kc][0], c[2 * kc][1]), pack_pair<T>(c[2 * kc][2], c[2 * kc][3]),
                           pack_pair<T>(c[2 * kc + 1][0], c[2 * kc + 1][1]),
                           pack_pair<T>(c[2 * kc + 1][2], c[2 * kc + 1][3])};
    #pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, b_cols_address<D>(tile, kc, dp, lane, sizeof(T)));
      mma_m16n8k16<T>(acc[2 * dp], a, b);
      mma_m16n8k16<T>(acc[2 * dp + 1], a, b + 2);
    }
  }
}

template <int D>
__device__ __forceinline__ void load_a_fragments(uint32_t (&frag)[D / 16][4], const void* tile, int row0, int lane,
                                                 int element_bytes) {
  #pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(frag[kk], a_address<D>(tile, row0, kk, lane, element_bytes));
}

// Row `r` of C fragment element i: 0 for rows g, 1 for g + 8; its column in the n-tile.
__device__ __forceinline__ int fragment_half(int i) { return i / 2; }
__device__ __forceinline__ int fragment_col(int n, int i, int lane) { return n * 8 + lane % 4 * 2 + (i & 1); }

// occupancy <*, 64>: at least 3 blocks of 128 threads per SM with 46080 bytes of dynamic shared memory
// occupancy <*, 128>: at least 1 block of 128 threads per SM with 87040 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_mma_forward_kernel(T* out, float* lse, const T* qkv, int T_,
                                                                         int C, int NH, float scale_log2) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  LMT_DYNAMIC_SHARED(T, shared);
  // Reached only by cp.async and ldmatrix, whose addresses the emulator checks (cuda/mma.cuh).
  T* q_tile = smem_raw(shared);                   // [64][pitch]
  T* k_tiles = q_tile + tile_elements<D>();       // [2][64][pitch]
  T* v_tiles = k_tiles + 2 * tile_elements<D>();  // [2][64][pitch]
  const int num_tiles = (T_ + kTileRows - 1) / kTileRows;
  const int tile = num_tiles - 1 - static_cast<int>(blockIdx.x);  // the longest rows first
  const int h = blockIdx.y, b = blockIdx.z, first_query = tile * kTileRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long row_stride = 3LL * C;
  const T* q_head = qkv + static_cast<long long>(b) * T_ * row_stride + h * D;
  const T* k_head = q_head + C;
  const T* v_head = q_head + 2 * C;
  load_tile_async<T, D>(q_tile, q_head, row_stride, first_query, T_);
  load_tile_async<T, D>(k_tiles, k_head, row_stride, 0, T_);
  load_tile_async<T, D>(v_tiles, v_head, row_stride, 0, T_);
  cp_async_commit();

  uint32_t q_frag[D / 16][4];
  float o[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n)
    #pragma unroll
    for (int i = 0; i < 4; ++i) o[n][i] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // log2 units; rows g, g + 8
  for (int j = 0; j <= tile; ++j) {
    const int buffer = j & 1;
    next_kv_tiles<T, D>(k_tiles, v_tiles, k_head, v_head, row_stride, j, tile, T_);
    if (j == 0) load_a_fragments<D>(q_frag, q_tile, warp * 16, lane, sizeof(T));
    const T* k_tile = k_tiles + buffer * tile_elements<D>();
    const T* v_tile = v_tiles + buffer * tile_elements<D>();
    float s[8][4];
    #pragma unroll
    for (int n = 0; n < 8; ++n)
      #pragma unroll
      for (int i = 0; i < 4; ++i) s[n][i] = 0.0f;
    multiply_by_rows<T, D>(s, q_frag, k_tile, lane);
    #pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = warp * 16 + lane / 4 + 8 * half;  // in the tile; keys of tile j start at 64 j
      float tile_max = -INFINITY;
      #pragma unroll
      for (int n = 0; n < 8; ++n)
        #pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool masked = j == tile && fragment_col(n, e, lane) > row;
          const float x = masked ? -INFINITY : s[n][2 * half + e] * scale_log2;
          s[n][2 * half + e] = x;
          tile_max = fmaxf(tile_max, x);
        }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 2));
      const float new_max = fmaxf(row_max[half], tile_max);
      const float shift = new_max == -INFINITY ? 0.0f : new_max;  // no NaN from -inf - -inf
      const float correction = exp2f(row_max[half] - shift);
      row_max[half] = new_max;
      float sum = 0.0f;
      #pragma unroll
      for (int n = 0; n < 8; ++n)
        #pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[n][2 * half + e] - shift);
          s[n][2 * half + e] = p;
          sum += p;
        }
      row_sum[half] = row_sum[half] * correction + sum;  // this lane's columns; the quad's at the end
      #pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * half] *= correction;
        o[n][2 * half + 1] *= correction;
      }
    }
    multiply_by_columns<T, D>(o, s, v_tile, lane);
    __syncthreads();  // the buffer is refilled in the next step
  }
  #pragma unroll
  for (int half = 0; half < 2; ++half) {
    float sum = row_sum[half];
    sum += __shfl_xor_sync(kFullMask, sum, 1);
    sum += __shfl_xor_sync(kFullMask, sum, 2);
    const int query = first_query + warp * 16 + lane / 4 + 8 * half;
    if (query >= T_) continue;
    const float inverse = 1.0f / sum;
    T* dst = out + (static_cast<long long>(b) * T_ + query) * C + h * D;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n)
      store_pair(dst + fragment_col(n, 0, lane), o[n][2 * half] * inverse, o[n][2 * half + 1] * inverse);
    if (lane % 4 == 0) lse[(static_cast<long long>(b) * NH + h) * T_ + query] = (row_max[half] + log2f(sum)) / kLog2e;
  }
}

// occupancy <*, 64>: at least 2 blocks of 128 threads per SM with 55296 bytes of dynamic shared memory
// occupancy <*, 128>: at least 1 block of 128 threads per SM with 104448 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_backward_query_kernel(T* dqkv, float* delta, const T* dout, const T* out, const T* qkv,
                                        const float* lse, int T_, int C, int NH, float scale_log2, float scale) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  LMT_DYNAMIC_SHARED(T, shared);
  // Reached only by cp.async and ldmatrix, whose addresses the emulator checks (cuda/mma.cuh).
  T* q_tile = smem_raw(shared);                   // [64][pitch]
  T* do_tile = q_tile + tile_elements<D>();       // [64][pitch]
  T* k_tiles = do_tile + tile_elements<D>();      // [2][64][pitch]
  T* v_tiles = k_tiles + 2 * tile_elements<D>();  // [2][64][pitch]
  const int num_tiles = (T_ + kTileRows - 1) / kTileRows;
  const int tile = num_tiles - 1 - static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z, first_query = tile * kTileRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long row_stride = 3LL * C;
  const T* q_head = qkv + static_cast<long long>(b) * T_ * row_stride + h * D;
  const T* k_head = q_head + C;
  const T* v_head = q_head + 2 * C;
  const long long out_head = static_cast<long long>(b) * T_ * C + h * D;
  load_tile_async<T, D>(q_tile, q_head, row_stride, first_query, T_);
  load_tile_async<T, D>(do_tile, dout + out_head, C, first_query, T_);
  load_tile_async<T, D>(k_tiles, k_head, row_stride, 0, T_);
  load_tile_async<T, D>(v_tiles, v_head, row_stride, 0, T_);
  cp_async_commit();

  // delta of the warp's 16 rows: lanes 2r and 2r + 1 sum half of row r each.
  const long long stat_row = (static_cast<long long>(b) * NH + h) * T_;
  float partial = 0.0f;
  {
    const int query = first_query + warp * 16 + lane / 2;
    if (query < T_) {
      const long long at = out_head + static_cast<long long>(query) * C + lane % 2 * (D / 2);
      for (int d = 0; d < D / 2; ++d) partial += to_float(dout[at + d]) * to_float(out[at + d]);
    }
    partial += __shfl_xor_sync(kFullMask, partial, 1);
    if (query < T_ && lane % 2 == 0) delta[stat_row + query] = partial;
  }
  float row_delta[2], row_lse[2];
  #pragma unroll
  for (int half = 0; half < 2; ++half) {
    row_delta[half] = __shfl_sync(kFullMask, partial, 2 * (lane / 4 + 8 * half));
    const int query = first_query + warp * 16 + lane / 4 + 8 * half;
    row_lse[half] = query < T_ ? lse[stat_row + query] * kLog2e : 0.0f;
  }

  // At head size 128 dO's fragments are read from shared memory for every tile: in registers
  // too, with dq, s and dp, they made ptxas spill on sm_90 (255 registers).
  constexpr bool kDoInRegisters = D <= 64;
  uint32_t q_frag[D / 16][4], do_frag[kDoInRegisters ? D / 16 : 1][4];
  float dq[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n)
    #pragma unroll
    for (int i = 0; i < 4; ++i) dq[n][i] = 0.0f;
  for (int j = 0; j <= tile; ++j) {
    const int buffer = j & 1;
    next_kv_tiles<T, D>(k_tiles, v_tiles, k_head, v_head, row_stride, j, tile, T_);
    if (j == 0) {
      load_a_fragments<D>(q_frag, q_tile, warp * 16, lane, sizeof(T));
      if constexpr (kDoInRegisters) load_a_fragments<D>(do_frag, do_tile, warp * 16, lane, sizeof(T));
    }
    const T* k_tile = k_tiles + buffer * tile_elements<D>();
    const T* v_tile = v_tiles + buffer * tile_elements<D>();
    float s[8][4], dp[8][4];
    #pragma unroll
    for (int n = 0; n < 8; ++n)
      #pragma unroll
      for (int i = 0; i < 4; ++i) s[n][i] = dp[n][i] = 0.0f;
    multiply_by_rows<T, D>(s, q_frag, k_tile, lane);
    if constexpr (kDoInRegisters)
      multiply_by_rows<T, D>(dp, do_frag, v_tile, lane);
    else
      multiply_by_rows<T, D>(dp, do_tile, warp * 16, v_tile, lane);
    #pragma unroll
    for (int n = 0; n < 8; ++n)
      #pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int half = fragment_half(i), row = warp * 16 + lane / 4 + 8 * half;
        const bool valid = (j < tile || fragment_col(n, i, lane) <= row) && first_query + row < T_;
        const float p = valid ? exp2f(s[n][i] * scale_log2 - row_lse[half]) : 0.0f;
        s[n][i] = p * (dp[n][i] - row_delta[half]);  // dS
      }
    multiply_by_columns<T, D>(dq, s, k_tile, lane);
    __syncthreads();
  }
  #pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int query = first_query + warp * 16 + lane / 4 + 8 * half;
    if (query >= T_) continue;
    T* dst = dqkv + (static_cast<long long>(b) * T_ + query) * row_stride + h * D;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n)
      store_pair(dst + fragment_col(n, 0, lane), dq[n][2 * half] * scale, dq[n][2 * half + 1] * scale);
  }
}

// occupancy <*, 64>: at least 2 blocks of 128 threads per SM with 56320 bytes of dynamic shared memory
// occupancy <*, 128>: at least 1 block of 128 threads per SM with 105472 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_backward_key_kernel(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* delta,
                                      int T_, int C, int NH, float scale_log2, float scale) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  LMT_DYNAMIC_SHARED(T, shared);
  // The tiles are reached only by cp.async and ldmatrix, whose addresses the emulator checks
  // (cuda/mma.cuh); the statistics after them are read directly.
  T* k_tile = smem_raw(shared);                    // [64][pitch], this block's keys
  T* v_tile = k_tile + tile_elements<D>();         // [64][pitch]
  T* q_tiles = v_tile + tile_elements<D>();        // [2][64][pitch]
  T* do_tiles = q_tiles + 2 * tile_elements<D>();  // [2][64][pitch]
  SmemPtr<float> lse_tiles = smem_cast<float>(shared + 6 * tile_elements<D>());  // [2][64]
  SmemPtr<float> delta_tiles = lse_tiles + 2 * kTileRows;                        // [2][64]
  const int num_tiles = (T_ + kTileRows - 1) / kTileRows;
  const int key_tile = blockIdx.x;  // the first key tiles see the most queries: they go first
  const int h = blockIdx.y, b = blockIdx.z, first_key = key_tile * kTileRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long row_stride = 3LL * C;
  const T* q_head = qkv + static_cast<long long>(b) * T_ * row_stride + h * D;
  const T* do_head = dout + static_cast<long long>(b) * T_ * C + h * D;
  const float* lse_row = lse + (static_cast<long long>(b) * NH + h) * T_;
  const float* delta_row = delta + (static_cast<long long>(b) * NH + h) * T_;
  auto load_queries = [&](int buffer, int first_query) {
    load_tile_async<T, D>(q_tiles + buffer * tile_elements<D>(), q_head, row_stride, first_query, T_);
    load_tile_async<T, D>(do_tiles + buffer * tile_elements<D>(), do_head, C, first_query, T_);
    load_row_async(lse_tiles + buffer * kTileRows, lse_row, first_query, T_, 0);
    load_row_async(delta_tiles + buffer * kTileRows, delta_row, first_query, T_, kTileRows);
  };
  load_tile_async<T, D>(k_tile, q_head + C, row_stride, first_key, T_);
  load_tile_async<T, D>(v_tile, q_head + 2 * C, row_stride, first_key, T_);
  load_queries(0, first_key);  // queries before the block's first key see none of its keys
  cp_async_commit();

  float dk[D / 8][4], dv[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n)
    #pragma unroll
    for (int i = 0; i < 4; ++i) dk[n][i] = dv[n][i] = 0.0f;
  for (int tile = key_tile; tile < num_tiles; ++tile) {
    const int buffer = (tile - key_tile) & 1;
    if (tile + 1 < num_tiles) {
      load_queries(buffer ^ 1, (tile + 1) * kTileRows);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* q_tile = q_tiles + buffer * tile_elements<D>();
    const T* do_tile = do_tiles + buffer * tile_elements<D>();
    const SmemPtr<float> lse_tile = lse_tiles + buffer * kTileRows;
    const SmemPtr<float> delta_tile = delta_tiles + buffer * kTileRows;
    float st[8][4], dpt[8][4];  // S^T and dP^T: the warp's 16 keys x the tile's 64 queries
    #pragma unroll
    for (int n = 0; n < 8; ++n)
      #pragma unroll
      for (int i = 0; i < 4; ++i) st[n][i] = dpt[n][i] = 0.0f;
    {
      uint32_t frag[D / 16][4];
      load_a_fragments<D>(frag, k_tile, warp * 16, lane, sizeof(T));
      multiply_by_rows<T, D>(st, frag, q_tile, lane);
      load_a_fragments<D>(frag, v_tile, warp * 16, lane, sizeof(T));
      multiply_by_rows<T, D>(dpt, frag, do_tile, lane);
    }
    const int first_query = tile * kTileRows;
    #pragma unroll
    for (int n = 0; n < 8; ++n)
      #pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = first_key + warp * 16 + lane / 4 + 8 * fragment_half(i);
        const int col = fragment_col(n, i, lane), query = first_query + col;
        const bool valid = key <= query && query < T_;
        const float p = valid ? exp2f(st[n][i] * scale_log2 - lse_tile[col] * kLog2e) : 0.0f;
        st[n][i] = p;
        dpt[n][i] = p * (dpt[n][i] - delta_tile[col]);  // dS^T
      }
    multiply_by_columns<T, D>(dv, st, do_tile, lane);
    multiply_by_columns<T, D>(dk, dpt, q_tile, lane);
    __syncthreads();
  }
  #pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = first_key + warp * 16 + lane / 4 + 8 * half;
    if (key >= T_) continue;
    T* dst = dqkv + (static_cast<long long>(b) * T_ + key) * row_stride + h * D;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      store_pair(dst + C + fragment_col(n, 0, lane), dk[n][2 * half] * scale, dk[n][2 * half + 1] * scale);
      store_pair(dst + 2 * C + fragment_col(n, 0, lane), dv[n][2 * half], dv[n][2 * half + 1]);
    }
  }
}

template <int D>
constexpr size_t forward_shared_bytes() {
  return 5 * tile_elements<D>() * 2;  // q, 2 k, 2 v; 16-bit elements
}
template <int D>
constexpr size_t query_shared_bytes() {
  return 6 * tile_elements<D>() * 2;
}
template <int D>
constexpr size_t key_shared_bytes() {
  return 6 * tile_elements<D>() * 2 + 4 * kTileRows * sizeof(float);
}

template <typename T, int D>
void allow_shared_for() {
  allow_dynamic_shared(attention_mma_forward_kernel<T, D>, forward_shared_bytes<D>());
  allow_dynamic_shared(attention_mma_backward_query_kernel<T, D>, query_shared_bytes<D>());
  allow_dynamic_shared(attention_mma_backward_key_kernel<T, D>, key_shared_bytes<D>());
}

float softmax_scale(int D) { return 1.0f / sqrtf(static_cast<float>(D)); }

template <typename T, int D>
void forward_for(T* out, float* lse, const T* qkv, int B, int T_, int C, int NH, cudaStream_t stream) {
  auto kernel = attention_mma_forward_kernel<T, D>;
  for_each_attention_slice(B, T_, C, NH, D, kTileRows, [&](const AttentionSlice& at, dim3 grid) {
    LMT_LAUNCH(kernel, grid, kThreads, forward_shared_bytes<D>(), stream)(out + at.out, lse + at.lse, qkv + at.qkv, T_,
                                                                          C, NH, softmax_scale(D) * kLog2e);
    CUDA_CHECK_LAUNCH();
  });
}

template <typename T, int D>
void backward_for(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B, int T_, int C, int NH,
                  DeviceScratch& scratch, cudaStream_t stream) {
  float* delta = static_cast<float*>(scratch.get(static_cast<size_t>(B) * NH * T_ * sizeof(float)));
  const float scale = softmax_scale(D);
  auto query_kernel = attention_mma_backward_query_kernel<T, D>;
  auto key_kernel = attention_mma_backward_key_kernel<T, D>;
  for_each_attention_slice(B, T_, C, NH, D, kTileRows, [&](const AttentionSlice& at, dim3 grid) {
    LMT_LAUNCH(query_kernel, grid, kThreads, query_shared_bytes<D>(), stream)(
        dqkv + at.qkv, delta + at.lse, dout + at.out, out + at.out, qkv + at.qkv, lse + at.lse, T_, C, NH,
        scale * kLog2e, scale);
    CUDA_CHECK_LAUNCH();
    LMT_LAUNCH(key_kernel, grid, kThreads, key_shared_bytes<D>(), stream)(
        dqkv + at.qkv, dout + at.out, qkv + at.qkv, lse + at.lse, delta + at.lse, T_, C, NH, scale * kLog2e, scale);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

bool attention_mma_head_size_supported(int HS) { return HS == 64 || HS == 128; }

void allow_attention_mma_shared_memory() {
  allow_shared_for<__nv_bfloat16, 64>();
  allow_shared_for<__nv_bfloat16, 128>();
  allow_shared_for<__half, 64>();
  allow_shared_for<__half, 128>();
}

template <typename T>
void launch_attention_mma_forward(T* out, float* lse, const T* qkv, int B, int T_, int C, int NH,
                                  cudaStream_t stream) {
  if (B == 0 || T_ == 0) return;
  switch (C / NH) {
    case 64: forward_for<T, 64>(out, lse, qkv, B, T_, C, NH, stream); break;
    case 128: forward_for<T, 128>(out, lse, qkv, B, T_, C, NH, stream); break;
    default: std::fprintf(stderr, "attention (mma): unsupported head size %d\n", C / NH); std::abort();
  }
}

template <typename T>
void launch_attention_mma_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B,
                                   int T_, int C, int NH, DeviceScratch& scratch, cudaStream_t stream) {
  if (B == 0 || T_ == 0) return;
  switch (C / NH) {
    case 64: backward_for<T, 64>(dqkv, dout, qkv, out, lse, B, T_, C, NH, scratch, stream); break;
    case 128: backward_for<T, 128>(dqkv, dout, qkv, out, lse, B, T_, C, NH, scratch, stream); break;
    default: std::fprintf(stderr, "attention (mma): unsupported head size %d\n", C / NH); std::abort();
  }
}

#define LMT_INSTANTIATE(T)                                                                                       \
  template void launch_attention_mma_forward<T>(T*, float*, const T*, int, int, int, int, cudaStream_t);        \
  template void launch_attention_mma_backward<T>(T*, const T*, const T*, const T*, const float*, int, int, int, \
                                                 int, DeviceScratch&, cudaStream_t);
LMT_INSTANTIATE(__nv_bfloat16)
LMT_INSTANTIATE(__half)
#undef LMT_INSTANTIATE

}  // namespace lmt::cuda
