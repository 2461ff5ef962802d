// The residual add, out = inp1 + inp2 (out may alias either input). Its backward is the identity:
// the model passes the residual gradient to both branches, so there is no backward kernel.
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void residual_forward_kernel(T* out, const T* inp1, const T* inp2, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_float<T>(to_float(inp1[i]) + to_float(inp2[i]));
}

}  // namespace

template <typename T>
void launch_residual_forward(T* out, const T* inp1, const T* inp2, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = (n + 255) / 256;
  LMT_LAUNCH(residual_forward_kernel<T>, static_cast<int>(blocks < 65536 ? blocks : 65536), 256, 0, stream)(
      out, inp1, inp2, n);
  CUDA_CHECK_LAUNCH();
}

#define LMT_INSTANTIATE(T) template void launch_residual_forward<T>(T*, const T*, const T*, size_t, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
