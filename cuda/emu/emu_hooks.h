// Test hooks of the CUDA emulator, for paths a GPU takes only on some shapes, drivers or library
// versions. Plain C++: a test includes this without the emulator's CUDA stand-ins.
#pragma once
#include <functional>

namespace lmt::emu {

// The next `heuristic_queries` cuBLASLt heuristic queries return one algorithm whose state is
// CUBLAS_STATUS_NOT_SUPPORTED (cublasLtMatmul refuses to run it), and the next `gelu_matmuls`
// matmuls with a GELU epilogue return CUBLAS_STATUS_NOT_SUPPORTED having written nothing.
void cublaslt_inject_unsupported(int heuristic_queries, int gelu_matmuls);
// How many injected refusals have not happened yet (0 once the code under test met them all).
int cublaslt_injections_left();

// The emulator shows `count` devices (1 at start) and makes device 0 current.
void set_device_count(int count);
// cudaSetDevice(device) fails from now on as it does for a busy or exclusive-process GPU
// (cudaErrorDevicesUnavailable); -1 clears it.
void make_device_unavailable(int device);

// Launches meet the limits of sm 80 (A100) or 90 (H100) from now on (cuda/emu/launch_limits.h);
// returns the previous one. The environment's LMTRAIN_EMU_ARCH gives the first (90 unset).
int set_emulated_arch(int sm);

// One block of a grid and the grid's size, for a block filter.
struct BlockIndex {
  unsigned x, y, z;
};
// Until reset (an empty function), a launch runs only the blocks for which keep(block, grid) is
// true; the others are skipped as if they had not been scheduled yet, their memory untouched.
// With lazily mapped buffers (mmap MAP_NORESERVE) this runs a kernel at shapes far larger than
// memory, to test its indexing where the offsets pass 2^31 and 2^32.
void set_block_filter(std::function<bool(BlockIndex block, BlockIndex grid)> keep);

}  // namespace lmt::emu
