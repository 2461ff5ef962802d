// Causal attention against a KV cache, for generation (the CPU reference is
// cpu/attention_cached.cpp; the contract is in core/ops.def). Two kernels on the stream:
//   append: the Tn new positions' k and v into k_cache, v_cache (B, NH, capacity, HS);
//   attend: one warp per (query, head, sequence). Its lanes take every 32nd cached key: the
//           scaled scores go to shared memory with their max and sum reduced over the warp
//           (fp32), then each lane owns every 32nd channel of the head and sums p_j v_j over the
//           keys in order.
// A decode step (Tn = 1) reads each cached key and value once; there is no T x T work.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

template <typename T>
__global__ void kv_append_kernel(T* k_cache, T* v_cache, const T* qkv, int Tn, int pos, int capacity, int C,
                                 int NH, size_t n) {
  const int HS = C / NH;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int c = static_cast<int>(i % C);
    const size_t bt = i / C;
    const int t = static_cast<int>(bt % Tn), b = static_cast<int>(bt / Tn);
    const int h = c / HS, d = c % HS;
    const size_t dst = ((static_cast<size_t>(b) * NH + h) * capacity + pos + t) * HS + d;
    k_cache[dst] = qkv[bt * 3 * C + C + c];
    v_cache[dst] = qkv[bt * 3 * C + 2 * C + c];
  }
}

template <typename T>
__global__ void attention_cached_kernel(T* out, const T* k_cache, const T* v_cache, const T* qkv, int Tn, int pos,
                                        int capacity, int C, int NH, float scale) {
  LMT_DYNAMIC_SHARED(float, shared);
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int lane = threadIdx.x;
  const int HS = C / NH;
  const int keys = pos + t + 1;
  SmemPtr<float> q = shared;            // [HS]
  SmemPtr<float> scores = shared + HS;  // [keys]
  const T* q_src = qkv + (static_cast<size_t>(b) * Tn + t) * 3 * C + h * HS;
  for (int d = lane; d < HS; d += 32) q[d] = to_float(q_src[d]);
  __syncwarp();
  const size_t head = (static_cast<size_t>(b) * NH + h) * capacity;
  float max_score = -INFINITY;
  for (int j = lane; j < keys; j += 32) {
    const T* k = k_cache + (head + j) * HS;
    float dot = 0.0f;
    for (int d = 0; d < HS; ++d) dot += q[d] * to_float(k[d]);
    scores[j] = dot * scale;
    max_score = fmaxf(max_score, scores[j]);
  }
  max_score = warp_max(max_score);
  float sum = 0.0f;
  for (int j = lane; j < keys; j += 32) {
    scores[j] = expf(scores[j] - max_score);
    sum += scores[j];
  }
  sum = warp_sum(sum);
  __syncwarp();
  const float inv = 1.0f / sum;
  T* o = out + (static_cast<size_t>(b) * Tn + t) * C + h * HS;
  for (int d = lane; d < HS; d += 32) {
    float acc = 0.0f;
    for (int j = 0; j < keys; ++j) acc += scores[j] * to_float(v_cache[(head + j) * HS + d]);
    o[d] = from_float<T>(acc * inv);
  }
}

}  // namespace

size_t attention_cached_shared_bytes(int keys, int HS) { return (static_cast<size_t>(keys) + HS) * sizeof(float); }

template <typename T>
void launch_attention_cached_forward(T* out, T* k_cache, T* v_cache, const T* qkv, int B, int Tn, int pos,
                                     int capacity, int C, int NH, cudaStream_t stream) {
  if (B == 0 || Tn == 0) return;
  const size_t n = static_cast<size_t>(B) * Tn * C;
  const size_t blocks = (n + 255) / 256;
  LMT_LAUNCH(kv_append_kernel<T>, static_cast<int>(blocks < 65536 ? blocks : 65536), 256, 0, stream)(
      k_cache, v_cache, qkv, Tn, pos, capacity, C, NH, n);
  CUDA_CHECK_LAUNCH();
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  // Heads are grid y and sequences grid z, at most 65535 each: a larger batch (or head count)
  // runs as several launches, each on a slice of the tensors indexed from its first element.
  constexpr int kMaxGridYZ = 65535;
  for (int b0 = 0; b0 < B; b0 += kMaxGridYZ)
    for (int h0 = 0; h0 < NH; h0 += kMaxGridYZ) {
      const size_t rows = static_cast<size_t>(b0) * Tn, head = static_cast<size_t>(h0) * HS;
      const size_t cache = (static_cast<size_t>(b0) * NH + h0) * capacity * HS;
      const dim3 grid(Tn, std::min(kMaxGridYZ, NH - h0), std::min(kMaxGridYZ, B - b0));
      LMT_LAUNCH(attention_cached_kernel<T>, grid, 32, attention_cached_shared_bytes(pos + Tn, HS), stream)(
          out + rows * C + head, k_cache + cache, v_cache + cache, qkv + rows * 3 * C + head, Tn, pos, capacity, C, NH,
          scale);
      CUDA_CHECK_LAUNCH();
    }
}

#define LMT_INSTANTIATE(T)                                                                                   \
  template void launch_attention_cached_forward<T>(T*, T*, T*, const T*, int, int, int, int, int, int, \
                                                   cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
