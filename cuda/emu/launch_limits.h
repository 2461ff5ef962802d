// What a GPU refuses when a kernel is launched, per architecture: the table of sm_80 (A100) and
// sm_90 (H100) limits, and the checks the CPU emulator (cuda_emu.h) makes before it runs a grid.
// The table is plain C++, so the [cuda] tests can hold it against cudaGetDeviceProperties on a
// real GPU; the checks exist in the emulator build only (launch_limits.cpp).
//
// Checked at every emulated launch, against the emulated architecture (sm_90 unless the
// environment says LMTRAIN_EMU_ARCH=80, or a test calls emu::set_emulated_arch):
//   - threads per block 1..1024, block x, y <= 1024 and z <= 64;
//   - grid x 1..2^31-1, y and z 1..65535;
//   - dynamic shared memory above 48 KiB only after cudaFuncSetAttribute(MaxDynamicSharedMemorySize)
//     for that kernel on the current device, and never above the architecture's opt-in maximum
//     (163 KiB on sm_80, 227 KiB on sm_90), which also bounds the attribute's value itself;
//   - a kernel declared __launch_bounds__(N) launched with more than N threads per block: the
//     kernel's first statement is LMT_CHECK_LAUNCH_BOUNDS(N) (cuda/common.cuh), which aborts
//     there, since the emulator cannot read the attribute (a test checks that every
//     __launch_bounds__ kernel of cuda/ states it).
// Static shared memory is known only to the compiler: tools/check_kernel_resources.sh holds
// static + dynamic shared memory, registers, spills and occupancy against the same table, from
// ptxas's report for both architectures.
#pragma once
#include <cstddef>

namespace lmt::emu {

// The per-block and per-SM limits of one compute capability, as cudaDeviceProp reports them on
// an A100 (sm_80) and an H100 (sm_90).
struct ArchLimits {
  int sm;           // 80 or 90
  const char* gpu;  // the GPU whose figures these are
  unsigned max_threads_per_block;
  unsigned max_block[3];
  unsigned max_grid[3];
  size_t shared_per_block;           // without an opt-in (sharedMemPerBlock)
  size_t shared_per_block_optin;     // sharedMemPerBlockOptin: static + dynamic, per block
  size_t shared_per_sm;              // sharedMemPerMultiprocessor (the largest carveout)
  size_t reserved_shared_per_block;  // reservedSharedMemPerBlock: taken from the SM per resident block
  unsigned registers_per_sm;         // regsPerMultiprocessor
  unsigned max_registers_per_thread;
  unsigned max_threads_per_sm;  // maxThreadsPerMultiProcessor
  unsigned max_blocks_per_sm;   // maxBlocksPerMultiProcessor
};

inline constexpr ArchLimits kSm80Limits{.sm = 80,
                                        .gpu = "A100",
                                        .max_threads_per_block = 1024,
                                        .max_block = {1024, 1024, 64},
                                        .max_grid = {2147483647u, 65535, 65535},
                                        .shared_per_block = 48 * 1024,
                                        .shared_per_block_optin = 166912,  // 163 KiB
                                        .shared_per_sm = 167936,           // 164 KiB
                                        .reserved_shared_per_block = 1024,
                                        .registers_per_sm = 65536,
                                        .max_registers_per_thread = 255,
                                        .max_threads_per_sm = 2048,
                                        .max_blocks_per_sm = 32};
inline constexpr ArchLimits kSm90Limits{.sm = 90,
                                        .gpu = "H100",
                                        .max_threads_per_block = 1024,
                                        .max_block = {1024, 1024, 64},
                                        .max_grid = {2147483647u, 65535, 65535},
                                        .shared_per_block = 48 * 1024,
                                        .shared_per_block_optin = 232448,  // 227 KiB
                                        .shared_per_sm = 233472,           // 228 KiB
                                        .reserved_shared_per_block = 1024,
                                        .registers_per_sm = 65536,
                                        .max_registers_per_thread = 255,
                                        .max_threads_per_sm = 2048,
                                        .max_blocks_per_sm = 32};

// The table's entry for sm 80 or 90; null for another.
inline const ArchLimits* arch_limits(int sm) {
  return sm == 80 ? &kSm80Limits : sm == 90 ? &kSm90Limits : nullptr;
}

// ---- the emulator's side (launch_limits.cpp) ---------------------------------------------------

// The architecture whose limits emulated launches meet: LMTRAIN_EMU_ARCH (80 or 90) when set,
// else sm_90; emu::set_emulated_arch (emu_hooks.h) changes it.
const ArchLimits& emulated_arch();

// Aborts, saying which limit and by how much, when a GPU of the emulated architecture would
// refuse to launch `kernel` with this grid, block and dynamic shared memory on the current device.
void check_launch(const void* kernel, const unsigned grid[3], const unsigned block[3], size_t dynamic_shared_bytes);

// cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize, bytes) on `device`: false (the call
// returns cudaErrorInvalidValue) when bytes is negative or above the opt-in maximum.
bool set_shared_opt_in(const void* kernel, int device, int bytes);

// LMT_CHECK_LAUNCH_BOUNDS(max_threads): aborts when the running block has more threads.
void check_launch_bounds(unsigned max_threads);

// Whether a launch runs block (x, y, z) of grid (gx, gy, gz): every block, unless a test has set
// a block filter (emu::set_block_filter).
bool block_selected(unsigned x, unsigned y, unsigned z, unsigned gx, unsigned gy, unsigned gz);

}  // namespace lmt::emu
