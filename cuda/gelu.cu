// tanh-approximated GELU: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Gradient rule: dinp is an activation gradient and is overwritten (=); it may alias dout.
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = to_float(inp[i]);
    out[i] = from_float<T>(0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kCubic * x * x * x))));
  }
}

// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = to_float(inp[i]);
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float th = tanhf(u);
    const float sech2 = 1.0f - th * th;
    const float local = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] = from_float<T>(local * to_float(dout[i]));
  }
}

// Grid-stride loops: enough blocks to fill any GPU, never more than the data needs.
int elementwise_blocks(size_t n, int threads) {
  const size_t needed = (n + threads - 1) / threads;
  return static_cast<int>(needed < 65536 ? (needed == 0 ? 1 : needed) : 65536);
}

}  // namespace

template <typename T>
void launch_gelu_forward(T* out, const T* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  LMT_LAUNCH(gelu_forward_kernel<T>, elementwise_blocks(n, 256), 256, 0, stream)(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_gelu_backward(T* dinp, const T* inp, const T* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  LMT_LAUNCH(gelu_backward_kernel<T>, elementwise_blocks(n, 256), 256, 0, stream)(dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

#define LMT_INSTANTIATE(T)                                                        \
  template void launch_gelu_forward<T>(T*, const T*, size_t, cudaStream_t); \
  template void launch_gelu_backward<T>(T*, const T*, const T*, size_t, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
