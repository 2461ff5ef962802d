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
// Schedules (emu_hooks.h: set_schedule; or LMTRAIN_EMU_SCHEDULE=NAME for a whole process): the
// order in which the ready threads run between barriers, and the blocks of a grid.
//   forward     threads in index order, blocks in index order (the default);
//   reverse     threads and blocks in reverse index order;
//   random:SEED threads in a new seeded random order at every step, blocks in seeded random order;
//   warps:SEED  one warp at a time: in each interval between __syncthreads the warps run one
//               after another, in a seeded random order drawn anew for each interval, each
//               through all its shuffles and __syncwarps (the other schedules move every warp
//               one collective per step, in lockstep); its lanes in random order; blocks in
//               seeded random order.
// Under every schedule a thread runs from one barrier to the next without a switch, so lanes of a
// warp never run in lockstep between collectives (the extreme of what a GPU may do). A correct
// kernel gives the same bits under each; a missing barrier, a dependence on the order of blocks
// or on warps moving in lockstep, or a float atomicAdd (its order follows the block order) shows
// up as a difference. Shared memory is refilled at the start of every block, with 0xFF under
// forward and with another byte under the other schedules (random ones per block), so a read of
// shared memory nobody wrote differs too. The random sequence is restarted by set_schedule and
// advances with each launch.
//
// The shared-memory checker (on unless LMTRAIN_EMU_SHARED_CHECKS=0; emu_hooks.h): shared memory
// declared with LMT_SHARED or LMT_DYNAMIC_SHARED (cuda/common.cuh) is reached through SmemPtr /
// SmemRef, which record, per 2-byte granule, the last writer and the readers of the current
// barrier interval. A read or write that conflicts with an access by another thread of the same
// interval (no __syncthreads between them, and for two lanes of one warp no __syncwarp both
// took part in; a shuffle orders no memory) is a race; a read of a granule no thread of the block
// has written is reported too; so is an access outside the array or buffer. Each finding names
// the block, both threads, the array (file:line) and the byte offset, and aborts (or is kept for
// a test, collect_shared_findings). The models of ldmatrix (a read of each named row by the lane
// that names it) and cp.async (a write by the issuing thread when issued and when it lands) of
// mma_emu.h report their accesses by address (smem_touch). Plain __shared__ variables are not
// tracked. Readers of one granule in one warp are summarized by their lane mask and their latest
// clock, which is exact with full-warp __syncwarp (what our kernels use) and can over-report with
// partial masks; 1-byte elements of two threads in one granule are reported as a conflict.
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
#include <type_traits>

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
// A warp collective: __syncwarp (orders_memory) or one half of a shuffle (orders no memory).
void warp_sync(unsigned mask, bool orders_memory = true);
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
  warp_sync(mask, false);
  T result;
  std::memcpy(&result, warp_slot(source), sizeof(T));
  warp_sync(mask, false);
  return result;
}

// --- checked shared memory (the checker described at the top) -----------------------------------
struct SmemRegion;         // one LMT_SHARED array or the dynamic shared memory (cuda_emu.cpp)
extern bool smem_checks;   // read at every access; set_shared_checks
void smem_access(SmemRegion* region, const void* address, size_t bytes, bool write);
SmemRegion* register_smem(void* base, size_t bytes, const char* name, const char* file, int line);
SmemRegion* dynamic_smem_region(const char* file, int line);
// An access through a plain address (the models of ldmatrix and cp.async, mma_emu.h): checked
// when it falls in an LMT_SHARED array or the dynamic shared memory, ignored otherwise.
void smem_touch(const void* address, size_t bytes, bool write);

template <typename E>
class SmemPtr;

// One element of shared memory: reads and writes go through the checker.
template <typename T>
class SmemRef {
 public:
  SmemRef(T* p, SmemRegion* region) : p_(p), region_(region) {}
  operator T() const {
    if (smem_checks) smem_access(region_, p_, sizeof(T), false);
    return *p_;
  }
  SmemRef& operator=(const T& value) {
    if (smem_checks) smem_access(region_, p_, sizeof(T), true);
    *p_ = value;
    return *this;
  }
  SmemRef& operator=(const SmemRef& other) { return *this = static_cast<T>(other); }
  template <typename U>
  SmemRef& operator+=(const U& v) { return *this = static_cast<T>(static_cast<T>(*this) + v); }
  template <typename U>
  SmemRef& operator-=(const U& v) { return *this = static_cast<T>(static_cast<T>(*this) - v); }
  template <typename U>
  SmemRef& operator*=(const U& v) { return *this = static_cast<T>(static_cast<T>(*this) * v); }
  template <typename U>
  SmemRef& operator/=(const U& v) { return *this = static_cast<T>(static_cast<T>(*this) / v); }
  SmemPtr<T> operator&() const { return SmemPtr<T>(p_, region_); }

 private:
  T* p_;
  SmemRegion* region_;
};

// A pointer into shared memory (lmt::cuda::SmemPtr<T>, which is T* on a GPU). E may be an array
// type: the rows of an LMT_SHARED array of two dimensions.
template <typename E>
class SmemPtr {
 public:
  SmemPtr() = default;
  SmemPtr(E* p, SmemRegion* region) : p_(p), region_(region) {}
  auto operator[](std::ptrdiff_t i) const {
    if constexpr (std::is_array_v<E>)
      return SmemPtr<std::remove_extent_t<E>>(p_[i], region_);
    else
      return SmemRef<E>(p_ + i, region_);
  }
  auto operator*() const { return (*this)[0]; }
  SmemPtr operator+(std::ptrdiff_t n) const { return SmemPtr(p_ + n, region_); }
  friend SmemPtr operator+(std::ptrdiff_t n, const SmemPtr& p) { return p + n; }
  SmemPtr operator-(std::ptrdiff_t n) const { return SmemPtr(p_ - n, region_); }
  std::ptrdiff_t operator-(const SmemPtr& other) const { return p_ - other.p_; }
  SmemPtr& operator+=(std::ptrdiff_t n) { p_ += n; return *this; }
  SmemPtr& operator-=(std::ptrdiff_t n) { p_ -= n; return *this; }
  SmemPtr& operator++() { ++p_; return *this; }
  SmemPtr& operator--() { --p_; return *this; }
  bool operator==(const SmemPtr& other) const { return p_ == other.p_; }
  auto operator<=>(const SmemPtr& other) const { return p_ <=> other.p_; }
  // Another element type over the same bytes (still checked), as reinterpret_cast on a GPU.
  template <typename U>
  SmemPtr<U> as() const { return SmemPtr<U>(reinterpret_cast<U*>(p_), region_); }
  // The unchecked address, for code the checker cannot follow (inline assembly models).
  E* raw() const { return p_; }
  SmemRegion* region() const { return region_; }

 private:
  E* p_ = nullptr;
  SmemRegion* region_ = nullptr;
};

// A static shared array, LMT_SHARED(float, sums, [8][33]): a function-local static (shared by
// the block while one block runs at a time), registered with the checker and refilled at the
// start of every block like dynamic shared memory.
template <typename A>
class SmemArray : public SmemPtr<std::remove_extent_t<A>> {
  static_assert(std::is_array_v<A>, "LMT_SHARED declares arrays: LMT_SHARED(float, x, [1]) for one value");

 public:
  SmemArray(const char* name, const char* file, int line) {
    static_cast<SmemPtr<std::remove_extent_t<A>>&>(*this) =
        SmemPtr<std::remove_extent_t<A>>(data_, register_smem(data_, sizeof(A), name, file, line));
  }
  SmemArray(const SmemArray&) = delete;
  SmemArray& operator=(const SmemArray&) = delete;

 private:
  alignas(16) A data_;
};

template <typename T>
SmemPtr<T> dynamic_smem(const char* file, int line) {
  SmemRegion* region = dynamic_smem_region(file, line);
  return SmemPtr<T>(static_cast<T*>(dynamic_shared()), region);
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
