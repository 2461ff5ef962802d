// Test hooks of the CUDA emulator, for paths a GPU takes only on some shapes, drivers or library
// versions, and for the emulator's race detection (schedules and the shared-memory checker, see
// cuda_emu.h). Plain C++: a test includes this without the emulator's CUDA stand-ins.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
// --- schedules -----------------------------------------------------------------------------
// The order in which the emulator runs a block's threads between barriers and a grid's blocks
// (cuda_emu.h describes each). A correct kernel gives the same bits under every one.
enum class ScheduleKind { kForward, kReverse, kRandom, kWarps };
struct Schedule {
  ScheduleKind kind = ScheduleKind::kForward;
  uint64_t seed = 0;  // kRandom and kWarps
  bool operator==(const Schedule&) const = default;
};
// "forward", "reverse", "random:SEED" or "warps:SEED" (the syntax of LMTRAIN_EMU_SCHEDULE).
std::string schedule_name(const Schedule& schedule);
// False (and `out` untouched) when `text` is none of the above.
bool parse_schedule(const std::string& text, Schedule& out);
// The launches from now on run under `schedule` (at start: LMTRAIN_EMU_SCHEDULE, else forward).
// Setting one restarts its random sequence, so a test that sets it is reproducible.
void set_schedule(const Schedule& schedule);
Schedule current_schedule();
// One schedule of each kind, the current one first: what a kernel test compares.
std::vector<Schedule> every_schedule();

// --- the shared-memory checker -------------------------------------------------------------
// On at start unless LMTRAIN_EMU_SHARED_CHECKS=0. Covers LMT_SHARED arrays and dynamic shared
// memory (LMT_DYNAMIC_SHARED), not plain __shared__ variables.
void set_shared_checks(bool on);
bool shared_checks();
// By default a finding is printed and aborts the process, as a device fault would. With
// collect_shared_findings(true) findings are kept instead (at most 1024 until taken; the rest
// are counted in the last one) for a test to read; false returns to aborting.
void collect_shared_findings(bool collect);
// The findings kept since the last call, oldest first; clears them.
std::vector<std::string> take_shared_findings();

}  // namespace lmt::emu
