// AdamW with decoupled weight decay, the sum of squares of the gradients (for clipping), and the
// rounding of the fp32 master weights into the compute copy (bf16/fp16) after each step.
// Gradient rule: no gradients are produced; params, m and v are updated in place, grads read.
//
// The sum of squares is deterministic: a fixed grid (its size depends on n only) of per-thread
// double sums, reduced in a fixed order per block, and the block sums added on the host in
// block order.
#include <vector>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr int kSquaresThreads = 256;
constexpr int kMaxSquaresBlocks = 1024;

__global__ void sum_squares_kernel(double* block_sums, const float* values, size_t n) {
  LMT_SHARED(double, scratch, [32]);
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  double sum = 0.0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double x = values[i];
    sum += x * x;
  }
  const double total = block_sum(sum, scratch);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = total;
}

// occupancy: at least 8 blocks of 256 threads per SM
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                             float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                             float bias_correction1, float bias_correction2) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float grad = grads[i] * grad_scale;
    const float m_new = beta1 * m[i] + (1.0f - beta1) * grad;
    const float v_new = beta2 * v[i] + (1.0f - beta2) * grad * grad;
    m[i] = m_new;
    v[i] = v_new;
    const float m_hat = m_new / bias_correction1;
    const float v_hat = v_new / bias_correction2;
    const float old_param = params[i];
    params[i] = old_param - lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * old_param);
  }
}

template <typename T>
__global__ void convert_from_f32_kernel(T* dst, const float* src, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = from_float<T>(src[i]);
}

}  // namespace

template <typename T>
void launch_convert_from_f32(T* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = (n + 255) / 256;
  LMT_LAUNCH(convert_from_f32_kernel<T>, static_cast<int>(blocks < 65536 ? blocks : 65536), 256, 0, stream)(dst, src,
                                                                                                            n);
  CUDA_CHECK_LAUNCH();
}
#define LMT_INSTANTIATE(T) template void launch_convert_from_f32<T>(T*, const float*, size_t, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

double sum_squares(const float* values, size_t n, DeviceScratch& scratch, cudaStream_t stream) {
  if (n == 0) return 0.0;
  const size_t wanted = (n + kSquaresThreads * 8 - 1) / (kSquaresThreads * 8);
  const int blocks = static_cast<int>(wanted < kMaxSquaresBlocks ? wanted : kMaxSquaresBlocks);
  double* block_sums = static_cast<double*>(scratch.get(static_cast<size_t>(blocks) * sizeof(double)));
  LMT_LAUNCH(sum_squares_kernel, blocks, kSquaresThreads, 0, stream)(block_sums, values, n);
  CUDA_CHECK_LAUNCH();
  std::vector<double> host(static_cast<size_t>(blocks));
  CUDA_CHECK(cudaMemcpyAsync(host.data(), block_sums, host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  double total = 0.0;
  for (double partial : host) total += partial;
  return total;
}

void launch_adamw(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, float grad_scale, float bias_correction1,
                  float bias_correction2, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = (n + 255) / 256;
  LMT_LAUNCH(adamw_kernel, static_cast<int>(blocks < 65536 ? blocks : 65536), 256, 0, stream)(
      params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bias_correction1, bias_correction2);
  CUDA_CHECK_LAUNCH();
}

}  // namespace lmt::cuda
