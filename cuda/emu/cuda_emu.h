// A CPU emulator for the subset of CUDA C++ our kernels use, so that they can be run and tested
// on machines without a GPU (every CI run). Compiled with the host compiler instead of
// cuda_runtime.h when LMTRAIN_CUDA_EMU is defined (see cuda/common.cuh).
//
// What it models: a grid runs one block at a time; each thread of the block is a fiber
// (ucontext) that runs until it finishes or reaches a barrier. __syncthreads() releases when
// every live thread of the block has reached it; warp collectives (__shfl_*_sync, __syncwarp)
// when every lane of their mask has. A barrier that can never release (threads waiting at
// different barriers, a shuffle whose mask names a lane that exited or reads a lane outside the
// mask) aborts with a description: on a GPU those are hangs or undefined results. __shared__
// variables are function statics, which is exactly block-shared while one block runs at a time.
// Device memory is host memory filled with 0xFF bytes (NaN floats) on allocation, so reading an
// element nobody wrote shows up in results.
//
// Launches meet the limits of a GPU of the emulated architecture, sm_90 or sm_80: threads and
// grid sizes, dynamic shared memory and its opt-in, __launch_bounds__ (launch_limits.h).
//
// What it does not model: concurrent blocks, memory ordering, timing, registers and static shared
// memory (tools/check_kernel_resources.sh checks those from ptxas's report). It checks the logic
// of a kernel (indexing, reductions, barriers), not its speed.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#include "core/dtype.h"
#include "cuda/emu/launch_limits.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace lmt::emu {

extern dim3 thread_idx, block_idx, block_dim, grid_dim;

void syncthreads();
void warp_sync(unsigned mask);
int lane_id();
// An 8-byte exchange slot of `lane` in the current thread's warp.
void* warp_slot(int lane);
void* dynamic_shared();
// Aborts with `what` and the current block and thread (a device-side failure).
[[noreturn]] void fail(const char* what);
void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

template <typename Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  size_t shared_bytes;
  template <typename... Args>
  void operator()(Args... args) const {
    Kernel k = kernel;
    const unsigned grid_size[3] = {grid.x, grid.y, grid.z}, block_size[3] = {block.x, block.y, block.z};
    check_launch(reinterpret_cast<const void*>(k), grid_size, block_size, shared_bytes);
    run_grid(grid, block, shared_bytes, [=] { k(args...); });
  }
};

template <typename... Params>
Launch<void (*)(Params...)> make_launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes) {
  return {kernel, grid, block, shared_bytes};
}

template <typename T>
T shuffle_from(unsigned mask, T value, int source) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  const int lane = lane_id();
  if (!(mask & (1u << lane))) fail("a warp shuffle was called by a lane outside its mask");
  if (source < 0 || source > 31 || !(mask & (1u << source)))
    fail("a warp shuffle reads a lane outside its mask");
  std::memcpy(warp_slot(lane), &value, sizeof(T));
  warp_sync(mask);
  T result;
  std::memcpy(&result, warp_slot(source), sizeof(T));
  warp_sync(mask);
  return result;
}

}  // namespace lmt::emu

#define threadIdx ::lmt::emu::thread_idx
#define blockIdx ::lmt::emu::block_idx
#define blockDim ::lmt::emu::block_dim
#define gridDim ::lmt::emu::grid_dim

inline void __syncthreads() { ::lmt::emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::lmt::emu::warp_sync(mask); }

template <typename T>
T __shfl_sync(unsigned mask, T value, int source, int width = 32) {
  const int lane = ::lmt::emu::lane_id();
  return ::lmt::emu::shuffle_from(mask, value, (lane & ~(width - 1)) + (source % width));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  const int lane = ::lmt::emu::lane_id();
  const int source = lane ^ lane_mask;
  // CUDA: a source outside the lane's width-sized segment returns the lane's own value.
  const bool inside = (source & ~(width - 1)) == (lane & ~(width - 1));
  const T got = ::lmt::emu::shuffle_from(mask, value, inside ? source : lane);
  return got;
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  const int lane = ::lmt::emu::lane_id();
  const int source = lane + static_cast<int>(delta);
  const bool inside = (source & ~(width - 1)) == (lane & ~(width - 1));
  return ::lmt::emu::shuffle_from(mask, value, inside ? source : lane);
}

// Blocks run one at a time, so atomics need no synchronization.
inline float atomicAdd(float* address, float value) {
  const float old = *address;
  *address = old + value;
  return old;
}
inline int atomicAdd(int* address, int value) {
  const int old = *address;
  *address = old + value;
  return old;
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
// Device code's min/max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }

// --- 16-bit types: storage plus CUDA's conversion functions (round to nearest even) ----------
struct __nv_bfloat16 {
  uint16_t bits;
};
struct __half {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 value) { return ::lmt::bf16_to_f32(value.bits); }
inline __nv_bfloat16 __float2bfloat16(float value) { return {::lmt::f32_to_bf16(value)}; }
inline float __half2float(__half value) { return ::lmt::f16_to_f32(value.bits); }
inline __half __float2half(float value) { return {::lmt::f32_to_f16(value)}; }

// --- runtime API subset ----------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorDevicesUnavailable = 46,
  cudaErrorInvalidDevice = 101
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;

cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaFuncSetAttributeEmu(const void* kernel, cudaFuncAttribute attr, int value);
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel kernel, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttributeEmu(reinterpret_cast<const void*>(kernel), attr, value);
}
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t error);
