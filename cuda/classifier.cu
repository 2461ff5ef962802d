// Fused classifier: softmax + cross-entropy + its gradient, one block per row of logits.
// logits (N, Vp): columns [0, V) are real classes, [V, Vp) padding (ignored, gradient 0).
// Gradient rule: losses and dlogits are outputs and are overwritten (=). dlogits is
// (softmax(row[:V]) - onehot(target)) * dloss and may alias logits: every thread reads what it
// needs of the row before a barrier, then writes only the elements it read.
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr int kThreads = 512;

// occupancy: at least 4 blocks of 512 threads per SM
template <typename T>
__global__ void __launch_bounds__(kThreads) classifier_kernel(T* dlogits, float* losses, const T* logits,
                                                              const int32_t* targets, float dloss, int V, int Vp) {
  LMT_CHECK_LAUNCH_BOUNDS(kThreads);
  LMT_SHARED(float, scratch, [32]);
  const long long offset = static_cast<long long>(blockIdx.x) * Vp;
  const T* row = logits + offset;
  // Online max and sum of exponentials per thread, then combined over the block.
  float thread_max = -INFINITY, thread_sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = to_float(row[v]);
    if (x > thread_max) {
      thread_sum = thread_sum * expf(thread_max - x) + 1.0f;
      thread_max = x;
    } else {
      thread_sum += expf(x - thread_max);
    }
  }
  const float row_max = block_max(thread_max, scratch);
  const float scaled = thread_max == -INFINITY ? 0.0f : thread_sum * expf(thread_max - row_max);
  const float row_sum = block_sum(scaled, scratch);
  const float log_sum_exp = row_max + logf(row_sum);
  const int target = targets[blockIdx.x];
  const float target_logit = to_float(row[target]);
  if (threadIdx.x == 0) losses[blockIdx.x] = log_sum_exp - target_logit;
  if (dlogits == nullptr) return;
  __syncthreads();  // row[target] is read by every thread before anyone overwrites it
  T* drow = dlogits + offset;
  for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
    if (v < V) {
      const float probability = expf(to_float(row[v]) - log_sum_exp);
      drow[v] = from_float<T>((probability - (v == target ? 1.0f : 0.0f)) * dloss);
    } else {
      drow[v] = from_float<T>(0.0f);
    }
  }
}

}  // namespace

template <typename T>
void launch_classifier(T* dlogits, float* losses, const T* logits, const int32_t* targets, float dloss, int N, int V,
                       int Vp, cudaStream_t stream) {
  if (N == 0) return;
  LMT_LAUNCH(classifier_kernel<T>, N, kThreads, 0, stream)(dlogits, losses, logits, targets, dloss, V, Vp);
  CUDA_CHECK_LAUNCH();
}

#define LMT_INSTANTIATE(T)                                                                             \
  template void launch_classifier<T>(T*, float*, const T*, const int32_t*, float, int, int, int, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
