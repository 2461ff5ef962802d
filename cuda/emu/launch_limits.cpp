// The emulator's launch checks (launch_limits.h): each refusal a GPU of the emulated
// architecture would make, as an abort that names the limit, the kernel's request and the
// architecture.
#include "cuda/emu/launch_limits.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "cuda/emu/cuda_emu.h"
#include "cuda/emu/emu_hooks.h"

namespace lmt::emu {
namespace {

const ArchLimits* arch_from_environment() {
  const char* value = std::getenv("LMTRAIN_EMU_ARCH");
  if (value == nullptr || *value == '\0') return &kSm90Limits;
  const char* digits = std::strncmp(value, "sm_", 3) == 0 ? value + 3 : value;
  const ArchLimits* arch = arch_limits(std::atoi(digits));
  if (arch == nullptr) {
    std::fprintf(stderr, "cuda emulator: LMTRAIN_EMU_ARCH=%s; the emulator knows 80 (A100) and 90 (H100)\n", value);
    std::abort();
  }
  return arch;
}

const ArchLimits*& current_arch() {
  static const ArchLimits* arch = arch_from_environment();
  return arch;
}

// The dynamic shared memory each kernel opted in to, per device.
std::map<std::pair<const void*, int>, int>& shared_opt_in() {
  static std::map<std::pair<const void*, int>, int> opt_in;
  return opt_in;
}

std::function<bool(BlockIndex, BlockIndex)>& block_filter() {
  static std::function<bool(BlockIndex, BlockIndex)> keep;
  return keep;
}

[[noreturn]] void refuse(const std::string& what) {
  const ArchLimits& arch = emulated_arch();
  std::fprintf(stderr, "cuda emulator: %s; a GPU of sm_%d (%s) refuses this launch\n", what.c_str(), arch.sm,
               arch.gpu);
  std::abort();
}

}  // namespace

const ArchLimits& emulated_arch() { return *current_arch(); }

int set_emulated_arch(int sm) {
  const ArchLimits* arch = arch_limits(sm);
  if (arch == nullptr) {
    std::fprintf(stderr, "cuda emulator: set_emulated_arch(%d); the emulator knows 80 (A100) and 90 (H100)\n", sm);
    std::abort();
  }
  const int previous = current_arch()->sm;
  current_arch() = arch;
  return previous;
}

void set_block_filter(std::function<bool(BlockIndex block, BlockIndex grid)> keep) { block_filter() = std::move(keep); }

bool block_selected(unsigned x, unsigned y, unsigned z, unsigned gx, unsigned gy, unsigned gz) {
  const auto& keep = block_filter();
  return !keep || keep(BlockIndex{x, y, z}, BlockIndex{gx, gy, gz});
}

void check_launch(const void* kernel, const unsigned grid[3], const unsigned block[3], size_t dynamic_shared_bytes) {
  const ArchLimits& arch = emulated_arch();
  const char* axis[3] = {"x", "y", "z"};
  const unsigned long long threads = 1ull * block[0] * block[1] * block[2];
  if (threads == 0 || threads > arch.max_threads_per_block)
    refuse("a launch asks for " + std::to_string(threads) + " threads per block (block " + std::to_string(block[0]) +
           " x " + std::to_string(block[1]) + " x " + std::to_string(block[2]) + "; 1.." +
           std::to_string(arch.max_threads_per_block) + " allowed)");
  for (int i = 0; i < 3; ++i) {
    if (block[i] > arch.max_block[i])
      refuse(std::string("block ") + axis[i] + " is " + std::to_string(block[i]) + " (at most " +
             std::to_string(arch.max_block[i]) + ")");
    if (grid[i] == 0 || grid[i] > arch.max_grid[i])
      refuse(std::string("grid ") + axis[i] + " is " + std::to_string(grid[i]) + " in grid " + std::to_string(grid[0]) +
             " x " + std::to_string(grid[1]) + " x " + std::to_string(grid[2]) + " (1.." +
             std::to_string(arch.max_grid[i]) + " allowed)");
  }
  if (dynamic_shared_bytes > arch.shared_per_block_optin)
    refuse("a launch asks for " + std::to_string(dynamic_shared_bytes) +
           " bytes of dynamic shared memory, above the opt-in maximum of " +
           std::to_string(arch.shared_per_block_optin) + " per block");
  if (dynamic_shared_bytes > arch.shared_per_block) {
    int device = 0;
    cudaGetDevice(&device);
    const auto found = shared_opt_in().find({kernel, device});
    const int opted = found == shared_opt_in().end() ? -1 : found->second;
    if (opted < 0 || static_cast<size_t>(opted) < dynamic_shared_bytes)
      refuse("a launch asks for " + std::to_string(dynamic_shared_bytes) + " bytes of dynamic shared memory on device " +
             std::to_string(device) + ", but the kernel opted in to " +
             (opted < 0 ? std::string("nothing (48 KiB without it)") : std::to_string(opted)) +
             " there (cudaFuncSetAttribute(MaxDynamicSharedMemorySize) is per kernel and device)");
  }
}

bool set_shared_opt_in(const void* kernel, int device, int bytes) {
  // Static shared memory counts against the same maximum on a GPU; the emulator cannot see it
  // (tools/check_kernel_resources.sh adds it up from ptxas's report).
  if (bytes < 0 || static_cast<size_t>(bytes) > emulated_arch().shared_per_block_optin) return false;
  shared_opt_in()[{kernel, device}] = bytes;
  return true;
}

void check_launch_bounds(unsigned max_threads) {
  const unsigned long long threads = 1ull * block_dim.x * block_dim.y * block_dim.z;
  if (threads > max_threads)
    refuse("a launch of " + std::to_string(threads) + " threads per block runs a kernel declared __launch_bounds__(" +
           std::to_string(max_threads) + ") (block " + std::to_string(block_idx.x) + "," + std::to_string(block_idx.y) +
           "," + std::to_string(block_idx.z) + ")");
}

}  // namespace lmt::emu
