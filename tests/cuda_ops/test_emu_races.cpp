// The emulator's race detection (cuda/emu/cuda_emu.h) tested on kernels with planted bugs: a
// missing __syncthreads, a missing __syncwarp, a shuffle taken for a memory fence, warps assumed
// to move in lockstep, a dependence on the order of blocks, a read of shared memory nobody wrote,
// a cp.async tile read by ldmatrix without the barrier after the wait, and float atomics. Each
// must be caught by the shared-memory checker, by the comparison of the schedules, or both, and
// the same kernel with the bug fixed must pass both. Emulator only: the kernels here are
// compiled by the host compiler against cuda/emu/.
#ifdef LMTRAIN_CUDA_EMU
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/emu/emu_hooks.h"
#include "cuda/mma.cuh"
#include "tests/cuda_ops/cuda_test_util.h"

namespace {

using lmt::cuda::kFullMask;
using lmt::emu::Schedule;
using lmt::emu::ScheduleKind;
using lmt::testing::NamedOutputs;
using Catch::Matchers::Contains;

constexpr int kThreads = 64;  // two warps
constexpr int kBlocks = 8;

// Every thread reads the element its mirror thread wrote: needs a __syncthreads between.
__global__ void mirror_kernel(float* out, const float* in, bool sync) {
  LMT_SHARED(float, tile, [kThreads]);
  const int t = threadIdx.x;
  tile[t] = in[blockIdx.x * kThreads + t];
  if (sync) __syncthreads();
  out[blockIdx.x * kThreads + t] = tile[kThreads - 1 - t];
}

enum class WarpOrder { kSyncwarp, kNothing, kShuffle };
// One warp: each lane reads its neighbour's element. Only __syncwarp orders the accesses; a
// shuffle makes the lanes meet but orders no memory.
__global__ void rotate_kernel(float* out, const float* in, WarpOrder order) {
  LMT_DYNAMIC_SHARED(float, lanes);
  const int lane = threadIdx.x;
  float v = in[blockIdx.x * 32 + lane];
  lanes[lane] = v;
  if (order == WarpOrder::kSyncwarp) __syncwarp();
  if (order == WarpOrder::kShuffle) v += __shfl_xor_sync(kFullMask, v, 1);
  out[blockIdx.x * 32 + lane] = lanes[(lane + 1) % 32] * v;
}

// Warp 0 publishes values that warp 1 reads after a warp reduction of its own: without the
// __syncthreads it is right only while the warps move in lockstep.
__global__ void lockstep_kernel(float* out, const float* in, bool sync) {
  LMT_SHARED(float, published, [32]);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float v = in[blockIdx.x * kThreads + threadIdx.x];
  if (warp == 0) published[lane] = v;
  if (sync) __syncthreads();
  const float total = lmt::cuda::warp_sum(v);
  if (warp == 1) out[blockIdx.x * 32 + lane] = published[lane] + total;
}

// Each block adds its value to what the block before it left: right only in block order.
__global__ void chain_kernel(float* out, const float* in) {
  if (threadIdx.x != 0) return;
  const int b = blockIdx.x;
  out[b] = in[b] + (b == 0 ? 0.0f : out[b - 1]);
}
// The fix: every block sums the prefix itself.
__global__ void prefix_kernel(float* out, const float* in) {
  if (threadIdx.x != 0) return;
  float sum = 0.0f;
  for (unsigned b = 0; b <= blockIdx.x; ++b) sum += in[b];
  out[blockIdx.x] = sum;
}

// The upper half of the tile is never written (`all` false), but every thread reads its element.
__global__ void half_written_kernel(float* out, const float* in, bool all) {
  LMT_SHARED(float, tile, [kThreads]);
  const int t = threadIdx.x;
  if (all || t < kThreads / 2) tile[t] = in[blockIdx.x * kThreads + t];
  __syncthreads();
  out[blockIdx.x * kThreads + t] = tile[t];
}

// Each thread copies one 16-byte row of a 64-row tile with cp.async and waits for it; then each
// warp loads, by ldmatrix, the 32 rows the other warp copied: other threads' copies are visible
// only after a __syncthreads that follows their waits.
__global__ void async_tile_kernel(float* out, const float* in, bool sync) {
  LMT_DYNAMIC_SHARED(uint16_t, tile);  // [64][8]
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const uint16_t* src = reinterpret_cast<const uint16_t*>(in) + (blockIdx.x * kThreads + t) * 8;
  lmt::cuda::cp_async_16(lmt::cuda::smem_raw(tile + t * 8), src);
  lmt::cuda::cp_async_commit();
  lmt::cuda::cp_async_wait<0>();
  if (sync) __syncthreads();
  uint32_t r[4];
  lmt::cuda::ldmatrix_x4(r, lmt::cuda::smem_raw(tile + ((1 - warp) * 32 + lane) * 8));
  std::memcpy(out + (blockIdx.x * kThreads + t) * 4, r, sizeof r);
}

// One float atomicAdd per block into one total: its rounding follows the order of the blocks.
__global__ void atomic_sum_kernel(float* total, const float* in) {
  if (threadIdx.x == 0) atomicAdd(total, in[blockIdx.x]);
}

// n floats on the emulated device, freed at scope exit.
class Buffer {
 public:
  explicit Buffer(const std::vector<float>& values) : n_(values.size()) {
    CUDA_CHECK(cudaMalloc(&ptr_, n_ * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(ptr_, values.data(), n_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~Buffer() { cudaFree(ptr_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* get() const { return ptr_; }
  std::vector<float> host() const {
    std::vector<float> out(n_);
    CUDA_CHECK(cudaMemcpy(out.data(), ptr_, n_ * sizeof(float), cudaMemcpyDeviceToHost));
    return out;
  }

 private:
  size_t n_;
  float* ptr_ = nullptr;
};

std::vector<float> inputs(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-12, 12);
  std::vector<float> out(n);
  for (float& x : out) x = std::ldexp(mantissa(rng), exponent(rng)) * (rng() % 2 ? 1.0f : -1.0f);
  return out;
}

// Keeps the checker's findings instead of aborting, for the scope of one test.
class CollectFindings {
 public:
  CollectFindings() {
    lmt::emu::take_shared_findings();
    lmt::emu::collect_shared_findings(true);
  }
  ~CollectFindings() {
    lmt::emu::take_shared_findings();
    lmt::emu::collect_shared_findings(false);
  }
  std::string take() {
    std::string all;
    for (const std::string& finding : lmt::emu::take_shared_findings()) all += finding + "\n";
    return all;
  }
};

// The planted-bug cases start from the forward schedule, whatever LMTRAIN_EMU_SCHEDULE says, so
// that which schedules differ from the first is known; the one before comes back at scope exit.
class StartForward {
 public:
  StartForward() : before_(lmt::emu::current_schedule()) { lmt::emu::set_schedule({ScheduleKind::kForward, 0}); }
  ~StartForward() { lmt::emu::set_schedule(before_); }
  StartForward(const StartForward&) = delete;
  StartForward& operator=(const StartForward&) = delete;

 private:
  Schedule before_;
};

// The schedules of emu::every_schedule() whose outputs differ in any bit from the first's.
std::vector<std::string> schedules_that_differ(const std::function<std::vector<float>()>& run) {
  const Schedule before = lmt::emu::current_schedule();
  std::vector<std::string> differ;
  std::vector<float> first;
  for (const Schedule& schedule : lmt::emu::every_schedule()) {
    lmt::emu::set_schedule(schedule);
    const std::vector<float> outputs = run();
    if (schedule == before)
      first = outputs;
    else if (lmt::testing::differing_bits(outputs, first) != 0)
      differ.push_back(lmt::emu::schedule_name(schedule));
  }
  lmt::emu::set_schedule(before);
  return differ;
}

// `run` of a kernel whose bug is fixed: no finding, the same bits under every schedule.
void check_clean(const std::function<std::vector<float>()>& run) {
  CollectFindings findings;
  lmt::testing::same_bits_under_every_schedule([&] { return NamedOutputs{{"out", run()}}; });
  CHECK(findings.take().empty());
}

}  // namespace

TEST_CASE("emulator schedules: names parse and print", "[cuda][emulator][schedule]") {
  Schedule s;
  for (const std::string name : {"forward", "reverse", "random:7", "warps:0", "random:18446744073709551615"}) {
    INFO(name);
    REQUIRE(lmt::emu::parse_schedule(name, s));
    CHECK(lmt::emu::schedule_name(s) == name);
  }
  for (const std::string bad : {"", "random", "random:", "random:x", "warps:-1", "sideways", "forward:1",
                                "random:123456789012345678901"}) {
    INFO(bad);
    CHECK_FALSE(lmt::emu::parse_schedule(bad, s));
  }
  const auto every = lmt::emu::every_schedule();
  REQUIRE(every.size() == 4);
  CHECK(every[0] == lmt::emu::current_schedule());
}

TEST_CASE("emulator: a missing __syncthreads is a shared-memory race and differs between schedules",
          "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks * kThreads, 1);
  auto run = [&](bool sync) {
    Buffer in(in_values), out(std::vector<float>(kBlocks * kThreads, 0.0f));
    LMT_LAUNCH(mirror_kernel, kBlocks, kThreads, 0, nullptr)(out.get(), in.get(), sync);
    return out.host();
  };
  {
    CollectFindings findings;
    run(false);
    const std::string found = findings.take();
    INFO(found);
    // Thread 0 reads tile[63] before thread 63 writes it: both threads, the array and the byte.
    CHECK_THAT(found, Contains("thread 63,0,0 (warp 1 lane 31) writes tile (") &&
                          Contains("test_emu_races.cpp:") && Contains("at byte 252 (element 63 of 4 bytes)") &&
                          Contains("which thread 0,0,0 (warp 0 lane 0) read in the same barrier interval"));
    CHECK_THAT(found, Contains("which no thread of this block has written"));
    CHECK(schedules_that_differ([&] { return run(false); }).size() == 3);
  }
  check_clean([&] { return run(true); });
}

TEST_CASE("emulator: a missing __syncwarp, or a shuffle in its place, is a race between lanes",
          "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks * 32, 2);
  auto run = [&](WarpOrder order) {
    Buffer in(in_values), out(std::vector<float>(kBlocks * 32, 0.0f));
    LMT_LAUNCH(rotate_kernel, kBlocks, 32, 32 * sizeof(float), nullptr)(out.get(), in.get(), order);
    return out.host();
  };
  CollectFindings findings;
  SECTION("nothing between the write and the read") {
    run(WarpOrder::kNothing);
    const std::string found = findings.take();
    INFO(found);
    CHECK_THAT(found, Contains("dynamic shared memory (") && Contains("test_emu_races.cpp:") &&
                          Contains("and no __syncwarp both took part in"));
    // Lane 0 reads lane 1's element before lane 1 runs (forward); lane 31 reads lane 0's (reverse).
    CHECK(schedules_that_differ([&] { return run(WarpOrder::kNothing); }).size() == 3);
  }
  SECTION("a shuffle: the lanes meet, so every schedule agrees, but it orders no memory") {
    run(WarpOrder::kShuffle);
    const std::string found = findings.take();
    INFO(found);
    CHECK_THAT(found, Contains("thread 0,0,0 (warp 0 lane 0) reads dynamic shared memory (") &&
                          Contains("at byte 4 (element 1 of 4 bytes)") &&
                          Contains("which thread 1,0,0 (warp 0 lane 1) wrote in the same barrier interval") &&
                          Contains("(a shuffle orders no memory)"));
    CHECK(schedules_that_differ([&] { return run(WarpOrder::kShuffle); }).empty());
  }
  SECTION("fixed with __syncwarp") { check_clean([&] { return run(WarpOrder::kSyncwarp); }); }
}

TEST_CASE("emulator: warps assumed to move in lockstep race, and differ under the warps schedule",
          "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks * kThreads, 3);
  auto run = [&](bool sync) {
    Buffer in(in_values), out(std::vector<float>(kBlocks * 32, 0.0f));
    LMT_LAUNCH(lockstep_kernel, kBlocks, kThreads, 0, nullptr)(out.get(), in.get(), sync);
    return out.host();
  };
  {
    CollectFindings findings;
    run(false);
    const std::string found = findings.take();
    INFO(found);
    CHECK_THAT(found, Contains("thread 32,0,0 (warp 1 lane 0) reads published (") &&
                          Contains("which thread 0,0,0 (warp 0 lane 0) wrote in the same barrier interval"));
    // forward, reverse and random move the warps one collective at a time: only warps:SEED,
    // which runs warp 1 first in some blocks, sees it.
    CHECK(schedules_that_differ([&] { return run(false); }) == std::vector<std::string>{"warps:1"});
  }
  check_clean([&] { return run(true); });
}

TEST_CASE("emulator: a dependence on the order of blocks differs between schedules", "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks, 4);
  auto run = [&](bool chained) {
    Buffer in(in_values), out(std::vector<float>(kBlocks, 0.0f));
    if (chained)
      LMT_LAUNCH(chain_kernel, kBlocks, 32, 0, nullptr)(out.get(), in.get());
    else
      LMT_LAUNCH(prefix_kernel, kBlocks, 32, 0, nullptr)(out.get(), in.get());
    return out.host();
  };
  CHECK(schedules_that_differ([&] { return run(true); }).size() == 3);
  check_clean([&] { return run(false); });
}

TEST_CASE("emulator: a read of shared memory nobody wrote is reported and differs between schedules",
          "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks * kThreads, 5);
  auto run = [&](bool all) {
    Buffer in(in_values), out(std::vector<float>(kBlocks * kThreads, 0.0f));
    LMT_LAUNCH(half_written_kernel, kBlocks, kThreads, 0, nullptr)(out.get(), in.get(), all);
    return out.host();
  };
  {
    CollectFindings findings;
    run(false);
    const std::string found = findings.take();
    INFO(found);
    CHECK_THAT(found, Contains("thread 32,0,0 (warp 1 lane 0) reads tile (") && Contains("at byte 128 (element 32") &&
                          Contains("which no thread of this block has written"));
    // Each schedule fills shared memory with other bytes.
    CHECK(schedules_that_differ([&] { return run(false); }).size() == 3);
  }
  check_clean([&] { return run(true); });
}

TEST_CASE("emulator: a cp.async tile read by ldmatrix before the __syncthreads after the wait is a race",
          "[cuda][emulator][schedule]") {
  StartForward forward;
  const auto in_values = inputs(kBlocks * kThreads * 4, 7);  // 16 bytes a thread
  auto run = [&](bool sync) {
    Buffer in(in_values), out(std::vector<float>(kBlocks * kThreads * 4, 0.0f));
    LMT_LAUNCH(async_tile_kernel, kBlocks, kThreads, kThreads * 16, nullptr)(out.get(), in.get(), sync);
    return out.host();
  };
  {
    CollectFindings findings;
    run(false);
    const std::string found = findings.take();
    INFO(found);
    // Warp 0 loads warp 1's rows before they are copied, and warp 1 warp 0's without a barrier.
    CHECK_THAT(found, Contains("thread 0,0,0 (warp 0 lane 0) reads dynamic shared memory (") &&
                          Contains("at byte 512 (element 32 of 16 bytes), which no thread of this block has written"));
    CHECK_THAT(found, Contains("thread 32,0,0 (warp 1 lane 0) reads dynamic shared memory (") &&
                          Contains("at byte 0 (element 0 of 16 bytes), which thread 0,0,0 (warp 0 lane 0) wrote"));
    // The copies land at the wait and ldmatrix waits for its warp, so the lockstep schedules
    // happen to see every row; warps:SEED runs one warp's load before the other's copies.
    CHECK(schedules_that_differ([&] { return run(false); }) == std::vector<std::string>{"warps:1"});
  }
  check_clean([&] { return run(true); });
}

TEST_CASE("emulator: float atomics follow the order of blocks, so the schedules tell them apart",
          "[cuda][emulator][schedule]") {
  // A kernel with float atomics is deterministic only if it documents why its order does not
  // matter; the op contract wants deterministic backward passes, and no kernel here uses them.
  StartForward forward;
  const auto in_values = inputs(64, 6);
  auto run = [&] {
    Buffer in(in_values), total(std::vector<float>(1, 0.0f));
    LMT_LAUNCH(atomic_sum_kernel, 64, 32, 0, nullptr)(total.get(), in.get());
    return total.host();
  };
  CHECK(schedules_that_differ(run).size() == 3);
}

#endif  // LMTRAIN_CUDA_EMU
