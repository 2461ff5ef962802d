// The fiber scheduler behind cuda_emu.h and its schedules, the runtime calls, and the cuBLASLt
// subset. Shared memory and its checker are in smem_emu.cpp.
#include "cuda/emu/cuda_emu.h"

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda/emu/cublaslt_emu.h"
#include "cuda/emu/emu_hooks.h"
#include "cuda/emu/emu_internal.h"

namespace lmt::emu {

dim3 thread_idx, block_idx, block_dim, grid_dim;

namespace {

enum class State { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  State state = State::kReady;
  unsigned warp_mask = 0;
  bool at_syncwarp = false;  // at a __syncwarp, not a shuffle: its release orders memory
  dim3 index;
};

constexpr size_t kStackBytes = 256 * 1024;

struct Scheduler {
  std::vector<Fiber> fibers;
  ucontext_t main_context;
  int current = -1;
  const std::function<void()>* body = nullptr;
  std::vector<uint64_t> warp_slots;  // 32 per warp
  std::vector<char> shared;
  bool running = false;
  // The schedule (emu_hooks.h) and its random sequence.
  bool configured = false;
  Schedule schedule;
  std::mt19937_64 rng;
  std::vector<size_t> order, blocks, warp_order;
  bool draw_warp_order = true;  // warps: at the start of a block and after each __syncthreads
};

Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

// LMTRAIN_EMU_SCHEDULE and LMTRAIN_EMU_SHARED_CHECKS, read before the first launch or hook.
void configure(Scheduler& s) {
  if (s.configured) return;
  s.configured = true;
  if (const char* env = std::getenv("LMTRAIN_EMU_SCHEDULE"); env && *env) {
    if (!parse_schedule(env, s.schedule)) {
      std::fprintf(stderr,
                   "cuda emulator: LMTRAIN_EMU_SCHEDULE=%s is not forward, reverse, random:SEED or warps:SEED\n", env);
      std::abort();
    }
  }
  s.rng.seed(s.schedule.seed);
  internal::configure_shared_checks();
}

// A uniform draw from [0, n), the same on every standard library (std::shuffle's is not).
size_t draw(Scheduler& s, size_t n) { return static_cast<size_t>(s.rng() % n); }

void shuffle(Scheduler& s, std::vector<size_t>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[draw(s, i)]);
}

void fiber_main() {
  Scheduler& s = scheduler();
  (*s.body)();
  s.fibers[static_cast<size_t>(s.current)].state = State::kDone;
  // Returning resumes uc_link, the scheduler.
}

void yield_to_scheduler() {
  Scheduler& s = scheduler();
  swapcontext(&s.fibers[static_cast<size_t>(s.current)].context, &s.main_context);
}

std::string describe_states(const Scheduler& s) {
  std::string out;
  for (size_t i = 0; i < s.fibers.size(); ++i) {
    const char* name = "ready";
    switch (s.fibers[i].state) {
      case State::kAtBlockBarrier: name = "__syncthreads"; break;
      case State::kAtWarpBarrier: name = "warp collective"; break;
      case State::kDone: name = "exited"; break;
      default: break;
    }
    char line[96];
    std::snprintf(line, sizeof line, "  thread %zu: %s\n", i, name);
    out += line;
    if (out.size() > 4000) {
      out += "  ...\n";
      break;
    }
  }
  return out;
}

// Releases every barrier whose participants have all arrived; false when nothing can run.
bool release_barriers(Scheduler& s) {
  bool any_ready = false;
  const size_t n = s.fibers.size();
  for (size_t warp = 0; warp * 32 < n; ++warp) {
    const size_t first = warp * 32, last = std::min(n, first + 32);
    unsigned waiting = 0, mask = 0;
    for (size_t i = first; i < last; ++i) {
      if (s.fibers[i].state == State::kAtWarpBarrier) {
        waiting |= 1u << (i - first);
        mask |= s.fibers[i].warp_mask;
      }
    }
    if (waiting == 0) continue;
    bool complete = true;
    for (size_t i = first; i < last; ++i) {
      if (!(mask & (1u << (i - first)))) continue;
      if (s.fibers[i].state == State::kDone) {
        std::fprintf(stderr,
                     "cuda emulator: a warp collective's mask names lane %zu of warp %zu, which has exited%s\n%s",
                     i - first, warp, internal::where_suffix().c_str(), describe_states(s).c_str());
        std::abort();
      }
      if (s.fibers[i].state != State::kAtWarpBarrier) complete = false;
    }
    if (complete) {
      bool syncwarp = true;
      for (size_t i = first; i < last; ++i)
        if (mask & (1u << (i - first))) {
          syncwarp = syncwarp && s.fibers[i].at_syncwarp;
          s.fibers[i].state = State::kReady;
        }
      if (syncwarp) internal::smem_syncwarp(warp, mask);
      any_ready = true;
    }
  }
  if (any_ready) return true;
  bool all_at_block = true, any_at_block = false;
  for (const Fiber& f : s.fibers) {
    if (f.state == State::kDone) continue;
    if (f.state == State::kAtBlockBarrier) any_at_block = true;
    else all_at_block = false;
  }
  if (any_at_block && all_at_block) {
    for (Fiber& f : s.fibers)
      if (f.state == State::kAtBlockBarrier) f.state = State::kReady;
    internal::smem_syncthreads();
    s.draw_warp_order = true;
    return true;
  }
  return false;
}

bool run_if_ready(Scheduler& s, size_t i) {
  if (s.fibers[i].state != State::kReady) return false;
  s.current = static_cast<int>(i);
  thread_idx = s.fibers[i].index;
  swapcontext(&s.main_context, &s.fibers[i].context);
  return true;
}

// One step of the schedule: runs ready threads to their next barrier; false when none was ready.
bool step(Scheduler& s) {
  const size_t n = s.fibers.size();
  bool ran = false;
  switch (s.schedule.kind) {
    case ScheduleKind::kForward:
      for (size_t i = 0; i < n; ++i) ran = run_if_ready(s, i) || ran;
      break;
    case ScheduleKind::kReverse:
      for (size_t i = n; i-- > 0;) ran = run_if_ready(s, i) || ran;
      break;
    case ScheduleKind::kRandom:
      s.order.clear();
      for (size_t i = 0; i < n; ++i)
        if (s.fibers[i].state == State::kReady) s.order.push_back(i);
      shuffle(s, s.order);
      for (size_t i : s.order) ran = run_if_ready(s, i) || ran;
      break;
    case ScheduleKind::kWarps: {
      // One warp at a time, in an order drawn at the start of each barrier interval: the first
      // of that order that has a ready lane runs to its next collective.
      if (s.draw_warp_order) {
        s.warp_order.resize((n + 31) / 32);
        for (size_t w = 0; w < s.warp_order.size(); ++w) s.warp_order[w] = w;
        shuffle(s, s.warp_order);
        s.draw_warp_order = false;
      }
      for (size_t warp : s.warp_order) {
        s.order.clear();
        for (size_t i = warp * 32; i < std::min(n, warp * 32 + 32); ++i)
          if (s.fibers[i].state == State::kReady) s.order.push_back(i);
        if (s.order.empty()) continue;
        shuffle(s, s.order);
        for (size_t i : s.order) ran = run_if_ready(s, i) || ran;
        break;
      }
      break;
    }
  }
  return ran;
}

// The byte shared memory starts as in each block: NaN floats under forward, something else
// under the others, so a read of shared memory nobody wrote differs between schedules.
unsigned char block_fill(Scheduler& s) {
  switch (s.schedule.kind) {
    case ScheduleKind::kForward: return 0xFF;
    case ScheduleKind::kReverse: return 0x7F;
    default: return static_cast<unsigned char>(s.rng() >> 56);
  }
}

}  // namespace

// --- schedules (emu_hooks.h) ---

std::string schedule_name(const Schedule& schedule) {
  switch (schedule.kind) {
    case ScheduleKind::kForward: return "forward";
    case ScheduleKind::kReverse: return "reverse";
    case ScheduleKind::kRandom: return "random:" + std::to_string(schedule.seed);
    case ScheduleKind::kWarps: return "warps:" + std::to_string(schedule.seed);
  }
  return "?";
}

bool parse_schedule(const std::string& text, Schedule& out) {
  if (text == "forward" || text == "reverse") {
    out = Schedule{text == "forward" ? ScheduleKind::kForward : ScheduleKind::kReverse, 0};
    return true;
  }
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return false;
  const std::string kind = text.substr(0, colon), seed = text.substr(colon + 1);
  if (kind != "random" && kind != "warps") return false;
  if (seed.empty() || seed.find_first_not_of("0123456789") != std::string::npos) return false;
  uint64_t value = 0;
  for (const char digit : seed) {
    const uint64_t d = static_cast<uint64_t>(digit - '0');
    if (value > (UINT64_MAX - d) / 10) return false;  // past 2^64 - 1
    value = value * 10 + d;
  }
  out = Schedule{kind == "random" ? ScheduleKind::kRandom : ScheduleKind::kWarps, value};
  return true;
}

void set_schedule(const Schedule& schedule) {
  Scheduler& s = scheduler();
  if (s.running) fail("the schedule changed inside a kernel");
  configure(s);
  s.schedule = schedule;
  s.rng.seed(schedule.seed);
}

Schedule current_schedule() {
  Scheduler& s = scheduler();
  configure(s);
  return s.schedule;
}

std::vector<Schedule> every_schedule() {
  std::vector<Schedule> out = {current_schedule()};
  for (const Schedule candidate : {Schedule{ScheduleKind::kForward, 0}, Schedule{ScheduleKind::kReverse, 0},
                                   Schedule{ScheduleKind::kRandom, 1}, Schedule{ScheduleKind::kWarps, 1}})
    if (candidate.kind != out[0].kind) out.push_back(candidate);
  return out;
}

namespace internal {
size_t current_thread() { return static_cast<size_t>(scheduler().current); }
bool in_kernel() { return scheduler().running; }
std::string where_suffix() {
  const Schedule schedule = scheduler().schedule;
  return schedule.kind == ScheduleKind::kForward ? "" : ", schedule " + schedule_name(schedule);
}
}  // namespace internal

void fail(const char* what) {
  std::fprintf(stderr, "cuda emulator: %s (block %u,%u,%u thread %u,%u,%u%s)\n", what, block_idx.x, block_idx.y,
               block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z, internal::where_suffix().c_str());
  std::abort();
}

int lane_id() {
  return scheduler().current % 32;
}

void* warp_slot(int lane) {
  Scheduler& s = scheduler();
  const size_t warp = static_cast<size_t>(s.current) / 32;
  return &s.warp_slots[warp * 32 + static_cast<size_t>(lane)];
}

void* dynamic_shared() { return scheduler().shared.data(); }

void syncthreads() {
  Scheduler& s = scheduler();
  if (!s.running) fail("__syncthreads outside a kernel");
  s.fibers[static_cast<size_t>(s.current)].state = State::kAtBlockBarrier;
  yield_to_scheduler();
}

void warp_sync(unsigned mask, bool orders_memory) {
  Scheduler& s = scheduler();
  if (!s.running) fail("a warp collective outside a kernel");
  const size_t warp_first = static_cast<size_t>(s.current) / 32 * 32;
  // Lanes past the end of a partial last warp do not exist: a mask naming them is a bug.
  const size_t lanes = std::min<size_t>(32, s.fibers.size() - warp_first);
  if (lanes < 32 && (mask >> lanes) != 0) fail("a warp collective's mask names lanes the block does not have");
  Fiber& f = s.fibers[static_cast<size_t>(s.current)];
  f.warp_mask = mask;
  f.at_syncwarp = orders_memory;
  f.state = State::kAtWarpBarrier;
  yield_to_scheduler();
}

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  if (s.running) fail("a kernel launched from inside a kernel");
  // The launch limits were checked by Launch (launch_limits.h).
  configure(s);
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  if (s.fibers.size() < threads) s.fibers.resize(threads);
  s.fibers.resize(threads);
  for (Fiber& f : s.fibers)
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
  s.warp_slots.assign((threads + 31) / 32 * 32, 0);
  s.shared.resize(shared_bytes);  // filled at the start of every block (smem_block_start)
  internal::smem_launch(threads, s.shared.data(), shared_bytes);
  s.body = &body;
  block_dim = block;
  grid_dim = grid;
  s.running = true;
  // The order of the blocks: by index (forward), the reverse, or a seeded permutation.
  const size_t num_blocks = static_cast<size_t>(grid.x) * grid.y * grid.z;
  const bool permuted = s.schedule.kind == ScheduleKind::kRandom || s.schedule.kind == ScheduleKind::kWarps;
  if (permuted) {
    s.blocks.resize(num_blocks);
    for (size_t i = 0; i < num_blocks; ++i) s.blocks[i] = i;
    shuffle(s, s.blocks);
  }
  for (size_t position = 0; position < num_blocks; ++position) {
    const size_t linear = permuted ? s.blocks[position]
                          : s.schedule.kind == ScheduleKind::kReverse ? num_blocks - 1 - position
                                                                       : position;
    const unsigned bx = static_cast<unsigned>(linear % grid.x), by = static_cast<unsigned>(linear / grid.x % grid.y),
                   bz = static_cast<unsigned>(linear / (static_cast<size_t>(grid.x) * grid.y));
    block_idx = dim3(bx, by, bz);
    // A test's block filter (emu::set_block_filter) may skip the block: none of its threads
    // start. (Not a plain `continue` first: GCC's -Wclobbered then flags i below, under
    // getcontext, in the ASan build.)
    const size_t starting = block_selected(bx, by, bz, grid.x, grid.y, grid.z) ? threads : 0;
    if (starting == 0) continue;
    for (size_t i = 0; i < starting; ++i) {
      Fiber& f = s.fibers[i];
      f.state = State::kReady;
      f.index = dim3(static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                     static_cast<unsigned>(i / (static_cast<size_t>(block.x) * block.y)));
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack.get();
      f.context.uc_stack.ss_size = kStackBytes;
      f.context.uc_link = &s.main_context;
      makecontext(&f.context, fiber_main, 0);
    }
    internal::smem_block_start(block_fill(s));
    s.draw_warp_order = true;
    for (;;) {
      const bool ran = step(s);
      bool all_done = true;
      for (const Fiber& f : s.fibers) all_done = all_done && f.state == State::kDone;
      if (all_done) break;
      if (!release_barriers(s) && !ran) {
        std::fprintf(stderr,
                     "cuda emulator: deadlock in block %u,%u,%u%s: threads wait at barriers that cannot release\n%s",
                     bx, by, bz, internal::where_suffix().c_str(), describe_states(s).c_str());
        std::abort();
      }
    }
  }
  s.running = false;
  s.current = -1;
}

}  // namespace lmt::emu

// --- runtime ---------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
  if (!p) return cudaErrorMemoryAllocation;
  std::memset(p, 0xFF, rounded == 0 ? 256 : rounded);
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes) std::memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(ptr, value, bytes);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  static int token;
  *stream = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
// Devices: one by default (emu::set_device_count gives more, for tests of per-device state); the
// current one is per process, as the tests use it, not per thread as in CUDA.
namespace {
int emulated_devices = 1;
int current_device = 0;
int failing_device = -1;  // emu::make_device_unavailable
}  // namespace

namespace lmt::emu {
void set_device_count(int count) {
  emulated_devices = count;
  current_device = 0;
}
void make_device_unavailable(int device) { failing_device = device; }

}  // namespace lmt::emu

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= emulated_devices) return cudaErrorInvalidDevice;
  if (device == failing_device) return cudaErrorDevicesUnavailable;
  current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttributeEmu(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return lmt::emu::set_shared_opt_in(kernel, current_device, value) ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorDevicesUnavailable: return "CUDA-capable device(s) is/are busy or unavailable";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return "invalid argument";
  }
}

// --- cuBLASLt ----------------------------------------------------------------------------------

struct cublasLtContext {};
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int bias_type = -1;  // unset: D's type, as in cuBLASLt
  void* aux = nullptr;
  int64_t aux_ld = 0;
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque_t {
  size_t workspace = 0;
  uint32_t min_alignment = 256;  // cuBLASLt's default
};

namespace {

constexpr uint64_t kAlgoTag = 0x5EED, kUnsupportedAlgoTag = 0xBAD5EED;

struct Injected {
  int heuristic_queries = 0, gelu_matmuls = 0;
};
Injected injected;

// The largest power of two up to 256 that divides the address (256 for null: nothing to read).
uint64_t pointer_alignment(const void* p) {
  uint64_t alignment = 256;
  const auto address = reinterpret_cast<uintptr_t>(p);
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

[[noreturn]] void matmul_fail(const std::string& what) {
  std::fprintf(stderr, "cublasLt emulator: %s\n", what.c_str());
  std::abort();
}

template <typename T>
void read_attr(T& dst, const void* buf, size_t size) {
  if (size != sizeof(T)) matmul_fail("attribute size does not match its type");
  std::memcpy(&dst, buf, sizeof(T));
}

float load(const void* base, cudaDataType_t type, size_t index) {
  switch (type) {
    case CUDA_R_32F: return static_cast<const float*>(base)[index];
    case CUDA_R_16BF: return lmt::bf16_to_f32(static_cast<const uint16_t*>(base)[index]);
    case CUDA_R_16F: return lmt::f16_to_f32(static_cast<const uint16_t*>(base)[index]);
  }
  matmul_fail("unknown data type");
}

void store(void* base, cudaDataType_t type, size_t index, float value) {
  switch (type) {
    case CUDA_R_32F: static_cast<float*>(base)[index] = value; return;
    case CUDA_R_16BF: static_cast<uint16_t*>(base)[index] = lmt::f32_to_bf16(value); return;
    case CUDA_R_16F: static_cast<uint16_t*>(base)[index] = lmt::f32_to_f16(value); return;
  }
  matmul_fail("unknown data type");
}

}  // namespace

namespace lmt::emu {
void cublaslt_inject_unsupported(int heuristic_queries, int gelu_matmuls) {
  injected.heuristic_queries = heuristic_queries;
  injected.gelu_matmuls = gelu_matmuls;
}
int cublaslt_injections_left() { return injected.heuristic_queries + injected.gelu_matmuls; }
}  // namespace lmt::emu

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
size_t cublasLtGetVersion() { return 0; }
const char* cublasLtGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_NOT_SUPPORTED";
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
  if (scale_type != CUDA_R_32F) matmul_fail("scale type must be CUDA_R_32F");
  *desc = new cublasLtMatmulDescOpaque_t{compute};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: read_attr(desc->trans_a, buf, size); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: read_attr(desc->trans_b, buf, size); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: read_attr(desc->epilogue, buf, size); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: read_attr(desc->bias, buf, size); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: read_attr(desc->aux, buf, size); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: read_attr(desc->aux_ld, buf, size); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: {
      cudaDataType_t type;
      read_attr(type, buf, size);
      desc->bias_type = type;
      break;
    }
    default: matmul_fail("unknown matmul descriptor attribute");
  }
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) matmul_fail("leading dimension smaller than the row count (column-major)");
  *layout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
    uint64_t bytes = 0;
    read_attr(bytes, buf, size);
    pref->workspace = bytes;
    return CUBLAS_STATUS_SUCCESS;
  }
  uint32_t alignment = 0;
  read_attr(alignment, buf, size);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) matmul_fail("alignment must be a power of two");
  pref->min_alignment = std::min(pref->min_alignment, alignment);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t* results, int* returned) {
  if (requested < 1) matmul_fail("requested no algorithm");
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].algo.data[0] = kAlgoTag;
  results[0].algo.data[1] = pref ? pref->min_alignment : 256;
  // The epilogue pointers are read from the descriptor: the algorithm assumes their alignment.
  results[0].algo.data[2] = pointer_alignment(desc->bias);
  results[0].algo.data[3] = pointer_alignment(desc->aux);
  if (injected.heuristic_queries > 0) {
    --injected.heuristic_queries;
    results[0].algo.data[0] = kUnsupportedAlgoTag;
    results[0].state = CUBLAS_STATUS_NOT_SUPPORTED;
  }
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha_ptr, const void* a,
                              cublasLtMatrixLayout_t a_layout, const void* b, cublasLtMatrixLayout_t b_layout,
                              const void* beta_ptr, const void* c, cublasLtMatrixLayout_t c_layout, void* d,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo, void*, size_t,
                              cudaStream_t) {
  if (algo && algo->data[0] == kUnsupportedAlgoTag)
    matmul_fail("the algorithm's heuristic state was NOT_SUPPORTED: it must not be used");
  if (!algo || algo->data[0] != kAlgoTag) matmul_fail("the algorithm does not come from the heuristic query");
  // An algorithm chosen for aligned operands may not be given less aligned ones.
  for (const void* p : {a, b, c, static_cast<const void*>(d), desc->bias, static_cast<const void*>(desc->aux)})
    if (p && reinterpret_cast<uintptr_t>(p) % algo->data[1] != 0)
      matmul_fail("an operand is less aligned than the heuristic was told (" + std::to_string(algo->data[1]) +
                  " bytes)");
  if (desc->bias && pointer_alignment(desc->bias) < algo->data[2])
    matmul_fail("the bias pointer is less aligned (" + std::to_string(pointer_alignment(desc->bias)) +
                " bytes) than the one the heuristic saw (" + std::to_string(algo->data[2]) + " bytes)");
  if (desc->aux && pointer_alignment(desc->aux) < algo->data[3])
    matmul_fail("the epilogue aux pointer is less aligned (" + std::to_string(pointer_alignment(desc->aux)) +
                " bytes) than the one the heuristic saw (" + std::to_string(algo->data[3]) + " bytes)");
  const bool ta = desc->trans_a == CUBLAS_OP_T, tb = desc->trans_b == CUBLAS_OP_T;
  // op(A) is m x k, op(B) is k x n, C and D are m x n; all column-major.
  const uint64_t m = ta ? a_layout->cols : a_layout->rows, k = ta ? a_layout->rows : a_layout->cols;
  const uint64_t kb = tb ? b_layout->cols : b_layout->rows, n = tb ? b_layout->rows : b_layout->cols;
  if (k != kb) matmul_fail("op(A) and op(B) disagree on k: " + std::to_string(k) + " vs " + std::to_string(kb));
  if (c_layout->rows != m || c_layout->cols != n || d_layout->rows != m || d_layout->cols != n)
    matmul_fail("C/D are " + std::to_string(d_layout->rows) + "x" + std::to_string(d_layout->cols) +
                ", the product is " + std::to_string(m) + "x" + std::to_string(n));
  if (a_layout->type != b_layout->type) matmul_fail("A and B have different types");
  if (c_layout->type != d_layout->type) matmul_fail("C and D have different types");
  if (desc->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a_layout->type != CUDA_R_32F)
    matmul_fail("TF32 compute needs fp32 inputs");
  const auto bias_type = desc->bias_type < 0 ? d_layout->type : static_cast<cudaDataType_t>(desc->bias_type);
  const bool bias_epilogue =
      desc->epilogue == CUBLASLT_EPILOGUE_BIAS || desc->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  if (bias_epilogue != (desc->bias != nullptr)) matmul_fail("a bias pointer needs a BIAS epilogue and the reverse");
  const bool gelu_aux = desc->epilogue == CUBLASLT_EPILOGUE_GELU_AUX || desc->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  const bool dgelu = desc->epilogue == CUBLASLT_EPILOGUE_DGELU;
  if ((gelu_aux || dgelu) && (desc->aux == nullptr || desc->aux_ld < static_cast<int64_t>(m)))
    matmul_fail("a GELU epilogue needs an aux pointer and an aux leading dimension of at least m");
  const float alpha = *static_cast<const float*>(alpha_ptr), beta = *static_cast<const float*>(beta_ptr);
  if ((gelu_aux || dgelu) && beta != 0.0f) matmul_fail("the GELU epilogues are used with beta 0 here");
  if ((gelu_aux || dgelu) && injected.gelu_matmuls > 0) {
    --injected.gelu_matmuls;
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  std::vector<float> result(m * n);
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) {
      float sum = 0.0f;
      for (uint64_t p = 0; p < k; ++p) {
        const size_t ai = ta ? i * a_layout->ld + p : p * a_layout->ld + i;
        const size_t bi = tb ? p * b_layout->ld + j : j * b_layout->ld + p;
        sum += load(a, a_layout->type, ai) * load(b, b_layout->type, bi);
      }
      float value = alpha * sum;
      if (beta != 0.0f) value += beta * load(c, c_layout->type, j * c_layout->ld + i);
      if (desc->bias) value += load(desc->bias, bias_type, i);
      // tanh GELU and its derivative, in fp32 as cuda/gelu.cu computes them
      constexpr float kSqrt2OverPi = 0.7978845608028654f, kCubic = 0.044715f;
      if (gelu_aux) {
        store(desc->aux, d_layout->type, j * static_cast<size_t>(desc->aux_ld) + i, value);
        value = 0.5f * value * (1.0f + std::tanh(kSqrt2OverPi * (value + kCubic * value * value * value)));
      } else if (dgelu) {
        const float x = load(desc->aux, d_layout->type, j * static_cast<size_t>(desc->aux_ld) + i);
        const float th = std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
        value *= 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
      }
      result[j * m + i] = value;
    }
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) store(d, d_layout->type, j * d_layout->ld + i, result[j * m + i]);
  return CUBLAS_STATUS_SUCCESS;
}
