// Launch limits checked as a GPU of sm_80 (A100) or sm_90 (H100) checks them (issue 19): in the
// emulator, planted launches a GPU refuses must abort, naming the limit (cuda/emu/launch_limits.h),
// and the ops' own launches must fit both architectures; on a real GPU, the emulator's table of
// limits must be the device's.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/emu/launch_limits.h"
#include "tests/cuda_ops/cuda_test_util.h"
#include "tests/test_util.h"

#ifdef LMTRAIN_CUDA_EMU
#include "cuda/common.cuh"
#include "cuda/emu/emu_hooks.h"
#else
#include <cuda_runtime.h>
#endif

using Catch::Matchers::Contains;
using lmt::testing::abort_message;

#ifdef LMTRAIN_CUDA_EMU
namespace {

// Planted kernels: one with a launch bound, one with dynamic shared memory.
constexpr int kBound = 128;
__global__ void __launch_bounds__(kBound) bounded_kernel(float* out) {
  LMT_CHECK_LAUNCH_BOUNDS(kBound);
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

__global__ void shared_kernel(float* out, int n) {
  LMT_DYNAMIC_SHARED(float, shared);
  for (int i = threadIdx.x; i < n; i += blockDim.x) shared[i] = static_cast<float>(i);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = shared[n - 1];  // the last float of the allocation
}

__global__ void plain_kernel(float* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) out[0] = 1.0f;
}

// Switches the emulated architecture for one scope.
class EmulatedArch {
 public:
  explicit EmulatedArch(int sm) : previous_(lmt::emu::set_emulated_arch(sm)) {}
  ~EmulatedArch() { lmt::emu::set_emulated_arch(previous_); }
  EmulatedArch(const EmulatedArch&) = delete;
  EmulatedArch& operator=(const EmulatedArch&) = delete;

 private:
  int previous_;
};

// Runs shared_kernel with `bytes` of dynamic shared memory (a multiple of 4) and one block.
void launch_shared(size_t bytes) {
  float result = 0.0f;
  const int n = static_cast<int>(bytes / sizeof(float));
  LMT_LAUNCH(shared_kernel, 1, 64, bytes, nullptr)(&result, n);
  CHECK(result == static_cast<float>(n - 1));
}

}  // namespace

TEST_CASE("emulator launch limits: sm_80 and sm_90 are the A100's and the H100's, chosen per test",
          "[cuda][limits]") {
  CHECK(lmt::emu::arch_limits(80)->shared_per_block_optin == 166912);
  CHECK(lmt::emu::arch_limits(90)->shared_per_block_optin == 232448);
  CHECK(lmt::emu::arch_limits(80)->shared_per_sm == 167936);
  CHECK(lmt::emu::arch_limits(90)->shared_per_sm == 233472);
  CHECK(lmt::emu::arch_limits(86) == nullptr);
  {
    EmulatedArch a100(80);
    CHECK(lmt::emu::emulated_arch().sm == 80);
    // The emulated device reports the architecture whose limits it applies (`lmtrain doctor`).
    const lmt::cuda::RuntimeStatus status = lmt::cuda::query_runtime();
    REQUIRE(status.devices.size() == 1);
    CHECK(status.devices[0].compute_major == 8);
    CHECK(status.devices[0].compute_minor == 0);
  }
  CHECK(lmt::emu::emulated_arch().sm == 90);
  CHECK_THAT(abort_message([] { lmt::emu::set_emulated_arch(75); }), Contains("knows 80 (A100) and 90 (H100)"));
}

TEST_CASE("emulator launch limits: a launch above the kernel's __launch_bounds__ fails", "[cuda][limits]") {
  std::vector<float> out(2 * 256, 0.0f);
  LMT_LAUNCH(bounded_kernel, 2, kBound, 0, nullptr)(out.data());
  CHECK(out[2 * kBound - 1] == 1.0f);
  for (const int sm : {80, 90}) {
    INFO("sm_" << sm);
    EmulatedArch arch(sm);
    const std::string message = abort_message([&] { LMT_LAUNCH(bounded_kernel, 2, 256, 0, nullptr)(out.data()); });
    CHECK_THAT(message, Contains("a launch of 256 threads per block runs a kernel declared __launch_bounds__(128)") &&
                            Contains("sm_" + std::to_string(sm)));
  }
}

TEST_CASE("emulator launch limits: over 48 KiB of dynamic shared memory needs the kernel's opt-in, on sm_80 and sm_90",
          "[cuda][limits]") {
  for (const int sm : {80, 90}) {
    INFO("sm_" << sm);
    EmulatedArch arch(sm);
    launch_shared(48 * 1024);  // the default allowance needs no opt-in
    const std::string message = abort_message([] { launch_shared(48 * 1024 + 16); });
    CHECK_THAT(message, Contains("asks for 49168 bytes of dynamic shared memory on device 0") &&
                            Contains("opted in to nothing") && Contains("sm_" + std::to_string(sm)));
  }
  // The opt-in is made in a child so that the parent's kernel stays without one for the others.
  CHECK_THAT(abort_message([] {
               CUDA_CHECK(cudaFuncSetAttribute(shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
               launch_shared(64 * 1024);  // opted in: runs
               launch_shared(64 * 1024 + 4);
             }),
             Contains("asks for 65540 bytes") && Contains("opted in to 65536"));
}

TEST_CASE("emulator launch limits: shared memory above sm_80's opt-in maximum fails there and runs on sm_90",
          "[cuda][limits]") {
  const size_t a100_max = lmt::emu::kSm80Limits.shared_per_block_optin, h100_max = lmt::emu::kSm90Limits.shared_per_block_optin;
  const int above_a100 = static_cast<int>(a100_max + 1024);
  {
    EmulatedArch a100(80);
    // cudaFuncSetAttribute refuses a value above the device's opt-in maximum, as on a GPU.
    CHECK(cudaFuncSetAttribute(shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, above_a100) ==
          cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(a100_max)) == cudaSuccess);
    launch_shared(a100_max);
  }
  {
    EmulatedArch h100(90);
    CHECK(cudaFuncSetAttribute(shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(h100_max) + 4) == cudaErrorInvalidValue);
    REQUIRE(cudaFuncSetAttribute(shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, above_a100) ==
            cudaSuccess);
    launch_shared(static_cast<size_t>(above_a100));  // within the H100's 227 KiB
  }
  EmulatedArch a100(80);  // the same kernel and opt-in on an A100: refused
  CHECK_THAT(abort_message([&] { launch_shared(static_cast<size_t>(above_a100)); }),
             Contains("asks for 167936 bytes of dynamic shared memory, above the opt-in maximum of 166912") &&
                 Contains("sm_80 (A100)"));
  CHECK_THAT(abort_message([&] { launch_shared(h100_max + 4); }), Contains("above the opt-in maximum of 166912"));
}

TEST_CASE("emulator launch limits: grid and block sizes a GPU refuses fail", "[cuda][limits]") {
  float out = 0.0f;
  LMT_LAUNCH(plain_kernel, dim3(1, 65535, 1), 1, 0, nullptr)(&out);  // the largest y runs
  CHECK(out == 1.0f);
  for (const int sm : {80, 90}) {
    INFO("sm_" << sm);
    EmulatedArch arch(sm);
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, dim3(1, 65536, 1), 32, 0, nullptr)(&out); }),
               Contains("grid y is 65536 in grid 1 x 65536 x 1 (1..65535 allowed)"));
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, dim3(1, 1, 65536), 32, 0, nullptr)(&out); }),
               Contains("grid z is 65536"));
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, dim3(2147483648u, 1, 1), 32, 0, nullptr)(&out); }),
               Contains("grid x is 2147483648") && Contains("1..2147483647 allowed"));
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, dim3(0, 1, 1), 32, 0, nullptr)(&out); }),
               Contains("grid x is 0"));
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, 1, 1025, 0, nullptr)(&out); }),
               Contains("asks for 1025 threads per block"));
    CHECK_THAT(abort_message([&] { LMT_LAUNCH(plain_kernel, 1, dim3(1, 1, 65), 0, nullptr)(&out); }),
               Contains("block z is 65 (at most 64)"));
  }
}

// The ops' launches at their largest shared memory (attention at head size 128 opts in to 52.5
// KiB) fit an A100 as well as an H100; the other op tests run at the default sm_90, and ctest
// runs the attention and classifier tests again under LMTRAIN_EMU_ARCH=80.
TEST_CASE("emulator launch limits: attention at head size 128 launches within sm_80's limits", "[cuda][limits]") {
  EmulatedArch a100(80);
  auto gpu = lmt::cuda::make_cuda_backend({});
  const int B = 1, T = 20, C = 128, NH = 1;
  std::vector<float> qkv(B * T * 3 * C, 0.25f), out(B * T * C), dqkv(B * T * 3 * C), lse(B * NH * T);
  gpu->attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  gpu->attention_backward(dqkv.data(), out.data(), qkv.data(), out.data(), lse.data(), B, T, C, NH);
  gpu->synchronize();
  CHECK(out[0] == Approx(0.25f));
}

// The emulator cannot read __launch_bounds__: each kernel states its bound again as its first
// statement (LMT_CHECK_LAUNCH_BOUNDS, cuda/common.cuh). Every one of cuda/ must.
namespace {
std::string trimmed(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\n"), last = text.find_last_not_of(" \t\n");
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}
}  // namespace

TEST_CASE("emulator launch limits: every __launch_bounds__ kernel of cuda/ checks its bound", "[cuda][limits]") {
  const std::string declared = "__launch_bounds__(", check = "LMT_CHECK_LAUNCH_BOUNDS(";
  int kernels = 0;
  for (const auto& entry : std::filesystem::directory_iterator(lmt::testing::source_dir() / "cuda")) {
    if (entry.path().extension() != ".cu") continue;
    const std::string source = lmt::testing::read_file(entry.path());
    for (size_t at = source.find(declared); at != std::string::npos; at = source.find(declared, at + 1)) {
      const size_t line = source.rfind('\n', at) + 1;  // npos + 1 = 0 on the first line
      if (source.substr(line, at - line).find("//") != std::string::npos) continue;  // a comment
      // The bound: the attribute's first argument; the body's first statement must repeat it.
      const size_t open = at + declared.size(), close = source.find(')', open);
      const std::string attribute = source.substr(open, close - open);
      const std::string bound = trimmed(attribute.substr(0, attribute.find(',')));
      const size_t body = source.find('{', close);
      const size_t statement = source.find_first_not_of(" \t\n", body + 1);
      const size_t end = source.find(");", statement);
      const std::string first = source.substr(statement, end == std::string::npos ? 0 : end + 2 - statement);
      INFO(entry.path().filename().string() << ": a kernel of __launch_bounds__(" << attribute
                                            << ") starts with: " << first.substr(0, 80));
      CHECK(first == check + bound + ");");
      ++kernels;
    }
  }
  CHECK(kernels >= 4);  // attention's three and the classifier
}
#else
// On a real GPU of sm_80 or sm_90, the emulator's table is what the device reports.
TEST_CASE("cuda launch limits: the emulator's table is this GPU's", "[cuda][limits]") {
  SKIP_WITHOUT_GPU();
  int device = 0, major = 0, minor = 0;
  REQUIRE(cudaGetDevice(&device) == cudaSuccess);
  auto attribute = [&](cudaDeviceAttr attr) {
    int value = 0;
    REQUIRE(cudaDeviceGetAttribute(&value, attr, device) == cudaSuccess);
    return static_cast<long long>(value);
  };
  major = static_cast<int>(attribute(cudaDevAttrComputeCapabilityMajor));
  minor = static_cast<int>(attribute(cudaDevAttrComputeCapabilityMinor));
  const lmt::emu::ArchLimits* limits = lmt::emu::arch_limits(major * 10 + minor);
  if (limits == nullptr) {
    WARN("SKIPPED: this GPU is sm_" << major << minor << "; the emulator's table has sm_80 and sm_90");
    return;
  }
  CHECK(attribute(cudaDevAttrMaxThreadsPerBlock) == limits->max_threads_per_block);
  CHECK(attribute(cudaDevAttrMaxBlockDimX) == limits->max_block[0]);
  CHECK(attribute(cudaDevAttrMaxBlockDimY) == limits->max_block[1]);
  CHECK(attribute(cudaDevAttrMaxBlockDimZ) == limits->max_block[2]);
  CHECK(attribute(cudaDevAttrMaxGridDimX) == limits->max_grid[0]);
  CHECK(attribute(cudaDevAttrMaxGridDimY) == limits->max_grid[1]);
  CHECK(attribute(cudaDevAttrMaxGridDimZ) == limits->max_grid[2]);
  CHECK(attribute(cudaDevAttrMaxSharedMemoryPerBlock) == static_cast<long long>(limits->shared_per_block));
  CHECK(attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin) == static_cast<long long>(limits->shared_per_block_optin));
  CHECK(attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor) == static_cast<long long>(limits->shared_per_sm));
  CHECK(attribute(cudaDevAttrReservedSharedMemoryPerBlock) ==
        static_cast<long long>(limits->reserved_shared_per_block));
  CHECK(attribute(cudaDevAttrMaxRegistersPerMultiprocessor) == limits->registers_per_sm);
  CHECK(attribute(cudaDevAttrMaxThreadsPerMultiProcessor) == limits->max_threads_per_sm);
  CHECK(attribute(cudaDevAttrMaxBlocksPerMultiprocessor) == limits->max_blocks_per_sm);
}
#endif
