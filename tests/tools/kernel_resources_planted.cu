// Planted violations for tools/check_kernel_resources.sh, which must report each one
// (tests/tools/test_kernel_resources.sh); fine_kernel must pass. Never built into lmtrain.
#include <cuda_runtime.h>

// 40 KiB of static shared memory per block (and 1 KiB reserved): an A100's 164 KiB holds 4 such
// blocks, an H100's 228 KiB 5, not the 8 claimed.
// occupancy: at least 8 blocks of 256 threads per SM
__global__ void overclaimed_kernel(float* out) {
  __shared__ float tile[10240];
  tile[threadIdx.x] = out[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = tile[(threadIdx.x * 7) % 10240];
}

// 200000 bytes of dynamic shared memory: within an H100's 227 KiB opt-in maximum, above an A100's
// 163 KiB (cudaFuncSetAttribute and then the launch fail there).
// occupancy: at least 1 blocks of 128 threads per SM with 200000 bytes of dynamic shared memory
__global__ void big_shared_kernel(float* out) {
  extern __shared__ float dynamic_tile[];
  dynamic_tile[threadIdx.x] = out[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = dynamic_tile[127 - threadIdx.x];
}

// __launch_bounds__(1024, 2) leaves 32 registers per thread for 64 live values: ptxas spills.
__global__ void __launch_bounds__(1024, 2) spilling_kernel(float* out, const float* in) {
  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = in[threadIdx.x + i * 1024];
#pragma unroll
  for (int round = 1; round < 8; ++round)
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = acc[i] * acc[(i + round) % 64] + in[i];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 64; ++i) sum += acc[i] * static_cast<float>(i);
  out[threadIdx.x] = sum;
}

// A claim whose pattern names no instantiation (typo_kernel<float> only): vacuous, so reported.
// occupancy <int>: at least 1 blocks of 32 threads per SM
template <typename T>
__global__ void typo_kernel(T* out) {
  out[threadIdx.x] = T(1);
}
template __global__ void typo_kernel<float>(float*);

// Within every limit: 8 blocks of 256 threads fill an SM.
// occupancy: at least 8 blocks of 256 threads per SM
__global__ void fine_kernel(float* out) { out[blockIdx.x * 256 + threadIdx.x] *= 2.0f; }
