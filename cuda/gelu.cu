// tanh-approximated GELU: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Gradient rule: dinp is an activation gradient and is overwritten (=); it may alias dout.
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kCubic * x * x * x)));
  }
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float th = tanhf(u);
    const float sech2 = 1.0f - th * th;
    const float local = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] = local * dout[i];
  }
}

// Grid-stride loops: enough blocks to fill any GPU, never more than the data needs.
int elementwise_blocks(size_t n, int threads) {
  const size_t needed = (n + threads - 1) / threads;
  return static_cast<int>(needed < 65536 ? (needed == 0 ? 1 : needed) : 65536);
}

}  // namespace

void launch_gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  LMT_LAUNCH(gelu_forward_kernel, elementwise_blocks(n, 256), 256, 0, stream)(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

void launch_gelu_backward(float* dinp, const float* inp, const float* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  LMT_LAUNCH(gelu_backward_kernel, elementwise_blocks(n, 256), 256, 0, stream)(dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace lmt::cuda
