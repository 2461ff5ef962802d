// Between the emulator's scheduler (cuda_emu.cpp) and its shared memory and checker
// (smem_emu.cpp). Not for kernels or tests.
#pragma once
#include <cstddef>
#include <string>

namespace lmt::emu::internal {

// --- the scheduler, for the checker ---
size_t current_thread();    // index of the running thread in its block
bool in_kernel();
std::string where_suffix();  // ", schedule NAME" unless forward

// --- shared memory, for the scheduler ---
// Reads LMTRAIN_EMU_SHARED_CHECKS once.
void configure_shared_checks();
// A launch of `threads` per block whose dynamic shared memory is [base, base + bytes).
void smem_launch(size_t threads, char* base, size_t bytes);
// A block starts: every shared array and the dynamic shared memory are filled with `fill`
// bytes, and no granule counts as written.
void smem_block_start(unsigned char fill);
// __syncthreads released: a new barrier interval for every thread.
void smem_syncthreads();
// A __syncwarp of `mask` released in warp `warp`: its lanes are ordered with each other.
void smem_syncwarp(size_t warp, unsigned mask);

}  // namespace lmt::emu::internal
