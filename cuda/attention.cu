// Fused causal self-attention, flash style: no T x T matrix in global memory.
// qkv (B, T, 3C) holds q | k | v; head h occupies columns [h*HS, (h+1)*HS) of each. out (B, T, C);
// lse (B, NH, T) = log-sum-exp of each row's scaled scores, saved for the backward pass.
// Gradient rule: dqkv is an activation gradient and is overwritten (=).
//
// Forward: a block takes 16 queries of one (b, h); each of its 4 warps owns 4 query rows. Keys and
// values stream through shared memory 32 at a time; lane j scores key j against the warp's rows,
// the softmax is online (running max and sum in fp32, the accumulator rescaled when the max
// grows), and for the value product each lane owns HS/32 output dimensions.
//
// Backward, deterministic (no atomics): with P = exp(S - lse), dP = dO V^T, delta = rowsum(dO * O)
// and dS = P * (dP - delta): dQ = scale * dS K is one kernel over query blocks (keys streamed),
// dK = scale * dS^T Q and dV = P^T dO another over key blocks (queries streamed). Both recompute
// P from q, k and the saved lse.
#include <algorithm>

#include "cuda/attention_slices.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // queries (forward, dQ) or keys (dK/dV) per block
constexpr int kTile = 32;                          // keys (forward, dQ) or queries (dK/dV) per step
constexpr int kThreads = kWarps * 32;

struct HeadView {
  int T, C, NH, HS;
  // Index of element d of row t's q (part 0), k (1) or v (2) for head h of batch b in qkv.
  __device__ __forceinline__ long long qkv_index(int b, int t, int part, int h, int d) const {
    return (static_cast<long long>(b) * T + t) * 3 * C + static_cast<long long>(part) * C + h * HS + d;
  }
  __device__ __forceinline__ long long out_index(int b, int t, int h, int d) const {
    return (static_cast<long long>(b) * T + t) * C + h * HS + d;
  }
  __device__ __forceinline__ long long lse_index(int b, int h, int t) const {
    return (static_cast<long long>(b) * NH + h) * T + t;
  }
};

// rows [first, first + count) of one part of qkv (or of a (B,T,C) tensor when part < 0) into a
// shared tile with row pitch `pitch`, times `scale`; rows past T are zero.
template <typename T, int D>
__device__ void load_rows(SmemPtr<float> tile, int pitch, const T* src, const HeadView& view, int b, int h, int part,
                          int first, int count, float scale) {
  for (int index = threadIdx.x; index < count * D; index += blockDim.x) {
    const int r = index / D, d = index % D, t = first + r;
    float value = 0.0f;
    if (t < view.T)
      value = to_float(src[part >= 0 ? view.qkv_index(b, t, part, h, d) : view.out_index(b, t, h, d)]) * scale;
    tile[r * pitch + d] = value;
  }
}

// Resident blocks per SM on an A100 and an H100 (tools/check_kernel_resources.sh holds them to
// ptxas's registers): head size 128 is limited by its shared memory, 32 by registers.
// occupancy <*, 32>: at least 8 blocks of 128 threads per SM with 12416 bytes of dynamic shared memory
// occupancy <*, 64>: at least 6 blocks of 128 threads per SM with 22656 bytes of dynamic shared memory
// occupancy <*, 128>: at least 3 blocks of 128 threads per SM with 43136 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(T* out, float* lse, const T* qkv,
                                                                     HeadView view, float scale) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  constexpr int kDimsPerLane = D / 32;
  LMT_DYNAMIC_SHARED(float, shared);
  SmemPtr<float> q_tile = shared;                    // [kBlockRows][D], scaled
  SmemPtr<float> k_tile = q_tile + kBlockRows * D;   // [kTile][D + 1] (padded: lane j reads row j)
  SmemPtr<float> v_tile = k_tile + kTile * (D + 1);  // [kTile][D]
  SmemPtr<float> p_tile = v_tile + kTile * D;        // [kWarps][kRowsPerWarp][kTile]
  const int b = blockIdx.z, h = blockIdx.y, first_query = blockIdx.x * kBlockRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T, D>(q_tile, D, qkv, view, b, h, 0, first_query, kBlockRows, scale);

  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.0f;
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) acc[i][e] = 0.0f;
  }
  const int last_query = min(first_query + kBlockRows, view.T) - 1;
  for (int first_key = 0; first_key <= last_query; first_key += kTile) {
    __syncthreads();  // the previous tile is no longer read
    load_rows<T, D>(k_tile, D + 1, qkv, view, b, h, 1, first_key, kTile, 1.0f);
    load_rows<T, D>(v_tile, D, qkv, view, b, h, 2, first_key, kTile, 1.0f);
    __syncthreads();
    float score[kRowsPerWarp] = {};
    #pragma unroll 4
    for (int d = 0; d < D; ++d) {
      const float k = k_tile[lane * (D + 1) + d];
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) score[i] += q_tile[(warp * kRowsPerWarp + i) * D + d] * k;
    }
    const int key = first_key + lane;
    #pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int query = first_query + warp * kRowsPerWarp + i;
      const bool valid = key <= query && query < view.T;
      const float s = valid ? score[i] : -INFINITY;
      const float new_max = fmaxf(row_max[i], warp_max(s));
      // A row with no valid key yet keeps max -inf; subtract 0 instead so nothing becomes NaN.
      const float shift = new_max == -INFINITY ? 0.0f : new_max;
      const float p = valid ? expf(s - shift) : 0.0f;
      const float correction = expf(row_max[i] - shift);
      row_sum[i] = row_sum[i] * correction + warp_sum(p);
      row_max[i] = new_max;
      #pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) acc[i][e] *= correction;
      p_tile[(warp * kRowsPerWarp + i) * kTile + lane] = p;
    }
    __syncwarp();
    #pragma unroll 4
    for (int j = 0; j < kTile; ++j) {
      float v[kDimsPerLane];
      #pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) v[e] = v_tile[j * D + lane + 32 * e];
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const float p = p_tile[(warp * kRowsPerWarp + i) * kTile + j];
        #pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) acc[i][e] += p * v[e];
      }
    }
    __syncwarp();  // p_tile is rewritten by this warp in the next step
  }
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int query = first_query + warp * kRowsPerWarp + i;
    if (query >= view.T) continue;
    const float inverse = 1.0f / row_sum[i];
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) out[view.out_index(b, query, h, lane + 32 * e)] = from_float<T>(acc[i][e] * inverse);
    if (lane == 0) lse[view.lse_index(b, h, query)] = row_max[i] + logf(row_sum[i]);
  }
}

// delta (B, NH, T) = sum over d of dout * out, one warp per (b, t, h). The warps stride over the
// rows: B * T * NH can pass 2^31 (plan accepts such shapes), a grid's x cannot.
// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void attention_delta_kernel(float* delta, const T* dout, const T* out, HeadView view, int B) {
  const int lane = threadIdx.x % 32;
  const long long rows = static_cast<long long>(B) * view.T * view.NH;
  const long long warps = static_cast<long long>(gridDim.x) * (blockDim.x / 32);
  for (long long row = static_cast<long long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += warps) {
    const int h = static_cast<int>(row % view.NH);
    const int t = static_cast<int>(row / view.NH % view.T);
    const int b = static_cast<int>(row / view.NH / view.T);
    float sum = 0.0f;
    for (int d = lane; d < view.HS; d += 32)
      sum += to_float(dout[view.out_index(b, t, h, d)]) * to_float(out[view.out_index(b, t, h, d)]);
    sum = warp_sum(sum);
    if (lane == 0) delta[view.lse_index(b, h, t)] = sum;
  }
}

// occupancy <*, 32>: at least 8 blocks of 128 threads per SM with 14592 bytes of dynamic shared memory
// occupancy <*, 64>: at least 6 blocks of 128 threads per SM with 26880 bytes of dynamic shared memory
// occupancy <*, 128>: at least 3 blocks of 128 threads per SM with 51456 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_backward_query_kernel(T* dqkv, const T* dout,
                                                                            const T* qkv, const float* lse,
                                                                            const float* delta, HeadView view,
                                                                            float scale) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  constexpr int kDimsPerLane = D / 32;
  LMT_DYNAMIC_SHARED(float, shared);
  SmemPtr<float> q_tile = shared;                     // [kBlockRows][D], scaled
  SmemPtr<float> do_tile = q_tile + kBlockRows * D;   // [kBlockRows][D]
  SmemPtr<float> k_tile = do_tile + kBlockRows * D;   // [kTile][D + 1]
  SmemPtr<float> v_tile = k_tile + kTile * (D + 1);   // [kTile][D + 1]
  SmemPtr<float> ds_tile = v_tile + kTile * (D + 1);  // [kWarps][kRowsPerWarp][kTile]
  const int b = blockIdx.z, h = blockIdx.y, first_query = blockIdx.x * kBlockRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T, D>(q_tile, D, qkv, view, b, h, 0, first_query, kBlockRows, scale);
  load_rows<T, D>(do_tile, D, dout, view, b, h, -1, first_query, kBlockRows, 1.0f);
  float row_lse[kRowsPerWarp], row_delta[kRowsPerWarp], dq[kRowsPerWarp][kDimsPerLane];
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int query = first_query + warp * kRowsPerWarp + i;
    row_lse[i] = query < view.T ? lse[view.lse_index(b, h, query)] : 0.0f;
    row_delta[i] = query < view.T ? delta[view.lse_index(b, h, query)] : 0.0f;
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) dq[i][e] = 0.0f;
  }
  const int last_query = min(first_query + kBlockRows, view.T) - 1;
  for (int first_key = 0; first_key <= last_query; first_key += kTile) {
    __syncthreads();
    load_rows<T, D>(k_tile, D + 1, qkv, view, b, h, 1, first_key, kTile, 1.0f);
    load_rows<T, D>(v_tile, D + 1, qkv, view, b, h, 2, first_key, kTile, 1.0f);
    __syncthreads();
    float score[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    // Unrolled by 8, not 4: by 4, ptxas for sm_90 spills 8 bytes at head size 32
    // (tools/check_kernel_resources.sh); by 8 it needs 56 registers there and spills nothing.
    #pragma unroll 8
    for (int d = 0; d < D; ++d) {
      const float k = k_tile[lane * (D + 1) + d], v = v_tile[lane * (D + 1) + d];
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        score[i] += q_tile[(warp * kRowsPerWarp + i) * D + d] * k;
        dp[i] += do_tile[(warp * kRowsPerWarp + i) * D + d] * v;
      }
    }
    const int key = first_key + lane;
    #pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int query = first_query + warp * kRowsPerWarp + i;
      const bool valid = key <= query && query < view.T;
      const float p = valid ? expf(score[i] - row_lse[i]) : 0.0f;
      ds_tile[(warp * kRowsPerWarp + i) * kTile + lane] = p * (dp[i] - row_delta[i]);
    }
    __syncwarp();
    #pragma unroll 4
    for (int j = 0; j < kTile; ++j) {
      float k[kDimsPerLane];
      #pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) k[e] = k_tile[j * (D + 1) + lane + 32 * e];
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const float ds = ds_tile[(warp * kRowsPerWarp + i) * kTile + j];
        #pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) dq[i][e] += ds * k[e];
      }
    }
    __syncwarp();
  }
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int query = first_query + warp * kRowsPerWarp + i;
    if (query >= view.T) continue;
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e)
      dqkv[view.qkv_index(b, query, 0, h, lane + 32 * e)] = from_float<T>(dq[i][e] * scale);
  }
}

// occupancy <*, 32>: at least 8 blocks of 128 threads per SM with 16896 bytes of dynamic shared memory
// occupancy <*, 64>: at least 5 blocks of 128 threads per SM with 29184 bytes of dynamic shared memory
// occupancy <*, 128>: at least 3 blocks of 128 threads per SM with 53760 bytes of dynamic shared memory
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_backward_key_kernel(T* dqkv, const T* dout,
                                                                          const T* qkv, const float* lse,
                                                                          const float* delta, HeadView view,
                                                                          float scale) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  constexpr int kDimsPerLane = D / 32;
  LMT_DYNAMIC_SHARED(float, shared);
  SmemPtr<float> k_own = shared;                                      // [kBlockRows][D]
  SmemPtr<float> v_own = k_own + kBlockRows * D;                      // [kBlockRows][D]
  SmemPtr<float> q_tile = v_own + kBlockRows * D;                     // [kTile][D + 1], scaled
  SmemPtr<float> do_tile = q_tile + kTile * (D + 1);                  // [kTile][D + 1]
  SmemPtr<float> p_tile = do_tile + kTile * (D + 1);                  // [kWarps][kRowsPerWarp][kTile]
  SmemPtr<float> ds_tile = p_tile + kWarps * kRowsPerWarp * kTile;
  SmemPtr<float> lse_tile = ds_tile + kWarps * kRowsPerWarp * kTile;  // [kTile]
  SmemPtr<float> delta_tile = lse_tile + kTile;                       // [kTile]
  const int b = blockIdx.z, h = blockIdx.y, first_key = blockIdx.x * kBlockRows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T, D>(k_own, D, qkv, view, b, h, 1, first_key, kBlockRows, 1.0f);
  load_rows<T, D>(v_own, D, qkv, view, b, h, 2, first_key, kBlockRows, 1.0f);
  float dk[kRowsPerWarp][kDimsPerLane], dv[kRowsPerWarp][kDimsPerLane];
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i)
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) dk[i][e] = dv[i][e] = 0.0f;
  // Queries before the first key see none of this block's keys.
  for (int first_query = first_key / kTile * kTile; first_query < view.T; first_query += kTile) {
    __syncthreads();
    load_rows<T, D>(q_tile, D + 1, qkv, view, b, h, 0, first_query, kTile, scale);
    load_rows<T, D>(do_tile, D + 1, dout, view, b, h, -1, first_query, kTile, 1.0f);
    if (threadIdx.x < kTile) {
      const int query = first_query + threadIdx.x;
      lse_tile[threadIdx.x] = query < view.T ? lse[view.lse_index(b, h, query)] : 0.0f;
      delta_tile[threadIdx.x] = query < view.T ? delta[view.lse_index(b, h, query)] : 0.0f;
    }
    __syncthreads();
    float score[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    #pragma unroll 4
    for (int d = 0; d < D; ++d) {
      const float q = q_tile[lane * (D + 1) + d], g = do_tile[lane * (D + 1) + d];
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        score[i] += k_own[(warp * kRowsPerWarp + i) * D + d] * q;
        dp[i] += v_own[(warp * kRowsPerWarp + i) * D + d] * g;
      }
    }
    const int query = first_query + lane;
    #pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int key = first_key + warp * kRowsPerWarp + i;
      const bool valid = key <= query && query < view.T;
      const float p = valid ? expf(score[i] - lse_tile[lane]) : 0.0f;
      p_tile[(warp * kRowsPerWarp + i) * kTile + lane] = p;
      ds_tile[(warp * kRowsPerWarp + i) * kTile + lane] = p * (dp[i] - delta_tile[lane]);
    }
    __syncwarp();
    #pragma unroll 4
    for (int j = 0; j < kTile; ++j) {
      float q[kDimsPerLane], g[kDimsPerLane];
      #pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) {
        q[e] = q_tile[j * (D + 1) + lane + 32 * e];
        g[e] = do_tile[j * (D + 1) + lane + 32 * e];
      }
      #pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const float p = p_tile[(warp * kRowsPerWarp + i) * kTile + j];
        const float ds = ds_tile[(warp * kRowsPerWarp + i) * kTile + j];
        #pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) {
          dv[i][e] += p * g[e];
          dk[i][e] += ds * q[e];  // q is already scaled
        }
      }
    }
    __syncwarp();
  }
  #pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int key = first_key + warp * kRowsPerWarp + i;
    if (key >= view.T) continue;
    #pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) {
      dqkv[view.qkv_index(b, key, 1, h, lane + 32 * e)] = from_float<T>(dk[i][e]);
      dqkv[view.qkv_index(b, key, 2, h, lane + 32 * e)] = from_float<T>(dv[i][e]);
    }
  }
}

template <int D>
constexpr size_t forward_shared_bytes() {
  return sizeof(float) * (kBlockRows * D + kTile * (D + 1) + kTile * D + kWarps * kRowsPerWarp * kTile);
}
template <int D>
constexpr size_t query_shared_bytes() {
  return sizeof(float) * (2 * kBlockRows * D + 2 * kTile * (D + 1) + kWarps * kRowsPerWarp * kTile);
}
template <int D>
constexpr size_t key_shared_bytes() {
  return sizeof(float) * (2 * kBlockRows * D + 2 * kTile * (D + 1) + 2 * kWarps * kRowsPerWarp * kTile + 2 * kTile);
}

// The opt-ins above 48 KiB (allow_attention_shared_memory, below).
template <typename T, int D>
void allow_shared_for() {
  allow_dynamic_shared(attention_forward_kernel<T, D>, forward_shared_bytes<D>());
  allow_dynamic_shared(attention_backward_query_kernel<T, D>, query_shared_bytes<D>());
  allow_dynamic_shared(attention_backward_key_kernel<T, D>, key_shared_bytes<D>());
}

template <typename T>
void allow_shared_for_head_sizes() {
  allow_shared_for<T, 32>();
  allow_shared_for<T, 64>();
  allow_shared_for<T, 128>();
}

// Batches beyond grid y and z's 65535 heads or sequences run as slices (attention_slices.cuh).

template <typename T, int D>
void forward_for(T* out, float* lse, const T* qkv, int B, int seq_len, int C, int NH, cudaStream_t stream) {
  const HeadView view{seq_len, C, NH, D};
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  auto kernel = attention_forward_kernel<T, D>;
  for_each_attention_slice(B, seq_len, C, NH, D, kBlockRows, [&](const AttentionSlice& at, dim3 grid) {
    LMT_LAUNCH(kernel, grid, kThreads, forward_shared_bytes<D>(), stream)(out + at.out, lse + at.lse, qkv + at.qkv,
                                                                          view, scale);
    CUDA_CHECK_LAUNCH();
  });
}

template <typename T, int D>
void backward_for(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B,
                  int seq_len, int C, int NH, DeviceScratch& scratch, cudaStream_t stream) {
  const HeadView view{seq_len, C, NH, D};
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  float* delta = static_cast<float*>(scratch.get(static_cast<size_t>(B) * NH * seq_len * sizeof(float)));
  constexpr int kDeltaWarps = 8, kMaxDeltaBlocks = 65536;
  const long long delta_blocks = (static_cast<long long>(B) * seq_len * NH + kDeltaWarps - 1) / kDeltaWarps;
  LMT_LAUNCH(attention_delta_kernel<T>, static_cast<int>(std::min<long long>(delta_blocks, kMaxDeltaBlocks)),
             kDeltaWarps * 32, 0, stream)(delta, dout, out, view, B);
  CUDA_CHECK_LAUNCH();
  auto query_kernel = attention_backward_query_kernel<T, D>;
  auto key_kernel = attention_backward_key_kernel<T, D>;
  for_each_attention_slice(B, seq_len, C, NH, D, kBlockRows, [&](const AttentionSlice& at, dim3 grid) {
    LMT_LAUNCH(query_kernel, grid, kThreads, query_shared_bytes<D>(), stream)(
        dqkv + at.qkv, dout + at.out, qkv + at.qkv, lse + at.lse, delta + at.lse, view, scale);
    CUDA_CHECK_LAUNCH();
    LMT_LAUNCH(key_kernel, grid, kThreads, key_shared_bytes<D>(), stream)(
        dqkv + at.qkv, dout + at.out, qkv + at.qkv, lse + at.lse, delta + at.lse, view, scale);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

bool attention_head_size_supported(int HS) { return HS == 32 || HS == 64 || HS == 128; }

void allow_attention_shared_memory() {
  allow_shared_for_head_sizes<float>();
  allow_shared_for_head_sizes<__nv_bfloat16>();
  allow_shared_for_head_sizes<__half>();
}

template <typename T>
void launch_attention_forward(T* out, float* lse, const T* qkv, int B, int seq_len, int C, int NH,
                              cudaStream_t stream) {
  const int T_ = seq_len;
  if (B == 0 || T_ == 0) return;
  switch (C / NH) {
    case 32: forward_for<T, 32>(out, lse, qkv, B, T_, C, NH, stream); break;
    case 64: forward_for<T, 64>(out, lse, qkv, B, T_, C, NH, stream); break;
    case 128: forward_for<T, 128>(out, lse, qkv, B, T_, C, NH, stream); break;
    default: std::fprintf(stderr, "attention: unsupported head size %d\n", C / NH); std::abort();
  }
}

template <typename T>
void launch_attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B,
                               int seq_len, int C, int NH, DeviceScratch& scratch, cudaStream_t stream) {
  const int T_ = seq_len;
  if (B == 0 || T_ == 0) return;
  switch (C / NH) {
    case 32: backward_for<T, 32>(dqkv, dout, qkv, out, lse, B, T_, C, NH, scratch, stream); break;
    case 64: backward_for<T, 64>(dqkv, dout, qkv, out, lse, B, T_, C, NH, scratch, stream); break;
    case 128: backward_for<T, 128>(dqkv, dout, qkv, out, lse, B, T_, C, NH, scratch, stream); break;
    default: std::fprintf(stderr, "attention: unsupported head size %d\n", C / NH); std::abort();
  }
}

#define LMT_INSTANTIATE(T)                                                                                 \
  template void launch_attention_forward<T>(T*, float*, const T*, int, int, int, int, cudaStream_t);          \
  template void launch_attention_backward<T>(T*, const T*, const T*, const T*, const float*, int, int, int, int, \
                                             DeviceScratch&, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
