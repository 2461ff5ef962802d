// Shared by every kernel file: the CUDA headers (or the CPU emulator's, see cuda/emu/), the check
// macros, the launch macro and the warp/block reductions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#ifdef LMTRAIN_CUDA_EMU
#include "cuda/emu/cublaslt_emu.h"
#include "cuda/emu/cuda_emu.h"
// LMT_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...)
#define LMT_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  ((void)(stream), ::lmt::emu::make_launch(kernel, dim3(grid), dim3(block), (shared_bytes)))
#define LMT_CHECK_LAUNCH_BOUNDS(max_threads) ::lmt::emu::check_launch_bounds(max_threads)
// A kernel's dynamically sized shared memory, as an array of `type` (an SmemPtr<type>).
#define LMT_DYNAMIC_SHARED(type, name) \
  ::lmt::emu::SmemPtr<type> name = ::lmt::emu::dynamic_smem<type>(__FILE__, __LINE__)
// A shared array: LMT_SHARED(float, sums, [8][33]) is `__shared__ float sums[8][33]`, which the
// emulator's shared-memory checker follows (a plain __shared__ array it does not).
#define LMT_SHARED(type, name, dims) static ::lmt::emu::SmemArray<type dims> name(#name, __FILE__, __LINE__)
#else
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define LMT_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<(grid), (block), (shared_bytes), (stream)>>>
#define LMT_DYNAMIC_SHARED(type, name)               \
  extern __shared__ __align__(16) char name##_raw[]; \
  type* name = reinterpret_cast<type*>(name##_raw)
#define LMT_CHECK_LAUNCH_BOUNDS(max_threads) ((void)0)
#define LMT_SHARED(type, name, dims) __shared__ type name dims
#endif

// The first statement of every kernel declared __launch_bounds__(N), with the same N:
//   __global__ void __launch_bounds__(kThreads) k(...) { LMT_CHECK_LAUNCH_BOUNDS(kThreads); ... }
// A GPU refuses to launch such a kernel with more than N threads per block; the emulator, which
// cannot read the attribute, aborts here instead (cuda/emu/launch_limits.h). On a GPU it is
// nothing. A test in tests/cuda_ops holds every __launch_bounds__ of cuda/ to it.

// Device failures are bugs, not user errors: report the statement and where, then abort.
#define CUDA_CHECK(call)                                                                      \
  do {                                                                                        \
    cudaError_t lmt_err_ = (call);                                                            \
    if (lmt_err_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "CUDA error: %s\n  in %s\n  at %s:%d\n", cudaGetErrorString(lmt_err_), \
                   #call, __FILE__, __LINE__);                                                \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

#define CUBLAS_CHECK(call)                                                                    \
  do {                                                                                        \
    cublasStatus_t lmt_status_ = (call);                                                      \
    if (lmt_status_ != CUBLAS_STATUS_SUCCESS) {                                               \
      std::fprintf(stderr, "cuBLAS error: %s\n  in %s\n  at %s:%d\n",                         \
                   cublasLtGetStatusString(lmt_status_), #call, __FILE__, __LINE__);          \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

// After a launch: configuration errors surface here, not at the next synchronization.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace lmt::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// A pointer into shared memory (LMT_SHARED, LMT_DYNAMIC_SHARED): T* on a GPU, a checked pointer
// in the emulator (cuda/emu/cuda_emu.h). Kernels keep shared addresses in this type.
#ifdef LMTRAIN_CUDA_EMU
template <typename T>
using SmemPtr = ::lmt::emu::SmemPtr<T>;
// The plain address, for the instructions that take one (ldmatrix, cp.async: the emulator's
// models check those accesses by address); direct reads and writes keep the SmemPtr.
template <typename T>
__device__ __forceinline__ T* smem_raw(SmemPtr<T> p) {
  return p.raw();
}
// The same shared bytes as another element type (reinterpret_cast on a GPU).
template <typename U, typename T>
__device__ __forceinline__ SmemPtr<U> smem_cast(SmemPtr<T> p) {
  return p.template as<U>();
}
#else
template <typename T>
using SmemPtr = T*;
template <typename T>
__device__ __forceinline__ T* smem_raw(T* p) {
  return p;
}
template <typename U, typename T>
__device__ __forceinline__ U* smem_cast(T* p) {
  return reinterpret_cast<U*>(p);
}
#endif

// Element types of activations (DType): float, __nv_bfloat16, __half. Kernels load them into
// fp32, compute in fp32 and round once when storing.
template <typename T>
__device__ __forceinline__ float to_float(T value);
template <>
__device__ __forceinline__ float to_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half value) {
  return __half2float(value);
}
template <typename T>
__device__ __forceinline__ T from_float(float value);
template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float value) {
  return __float2bfloat16(value);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float value) {
  return __float2half(value);
}

// Explicit instantiation of a launcher template for the three element types.
#define LMT_INSTANTIATE_FOR_TYPES(MACRO) \
  MACRO(float)                           \
  MACRO(__nv_bfloat16)                   \
  MACRO(__half)

// ceil(a / b), mostly a grid size: aborts where it does not fit an int (a grid x holds 2^31 - 1
// blocks) instead of wrapping to a grid the launch then refuses or, worse, accepts. A launcher
// whose count can grow that large strides or loops instead (attention.cu, encoder.cu).
inline int ceil_div(long long a, long long b) {
  const long long quotient = (a + b - 1) / b;
  if (quotient > 2147483647LL) {
    std::fprintf(stderr, "ceil_div(%lld, %lld) = %lld does not fit a grid dimension\n", a, b, quotient);
    std::abort();
  }
  return static_cast<int>(quotient);
}

// Above 48 KiB a kernel must opt in to dynamic shared memory, on each device: the attribute
// belongs to the kernel on the current device.
template <typename Kernel>
void allow_dynamic_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  return value;
}

__device__ __forceinline__ double warp_sum(double value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// Sum over a block of up to 1024 threads (a multiple of 32); every thread gets the result.
// `scratch` is 32 values of shared memory; it may be reused after the call.
template <typename T>
__device__ T block_sum(T value, SmemPtr<T> scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  value = warp_sum(value);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  T total = lane < num_warps ? scratch[lane] : T(0);
  return warp_sum(total);
}

__device__ __forceinline__ float block_max(float value, SmemPtr<float> scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  value = warp_max(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = lane < num_warps ? scratch[lane] : -INFINITY;
  return warp_max(total);
}

}  // namespace lmt::cuda
