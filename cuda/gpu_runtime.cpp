// lmt::gpu_runtime() for builds with the CUDA backend: real GPUs in lmt_cuda, the CPU emulator
// in lmt_cuda_emu (same file, LMTRAIN_CUDA_EMU defined).
#include "core/gpu_runtime.h"

#include <fmt/format.h>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/process_group_nccl.h"
#include "lmt_build_info.h"
#include "parallel/process_group.h"

namespace lmt {
namespace {

class CudaRuntime final : public GpuRuntime {
 public:
  bool built() const override { return true; }
  std::string build_description() const override {
    if (cuda::is_emulator()) return "cuda (the CPU emulator of cuda/emu/, for tests; fp32, bf16, fp16)";
    return fmt::format("cuda (nvcc {}; fp32/tf32, bf16, fp16; NCCL {})", LMTRAIN_CUDA_COMPILER_VERSION,
                       cuda::have_nccl() ? "yes" : "no");
  }
  std::vector<std::pair<std::string, std::string>> doctor_rows() const override {
    const cuda::RuntimeStatus status = cuda::query_runtime();
    std::vector<std::pair<std::string, std::string>> rows = {
        {"", fmt::format("CUDA runtime {}.{}, cuBLAS {}", status.runtime_version / 1000,
                         status.runtime_version % 1000 / 10, cuda::cublas_version())}};
    if (status.driver_ok)
      rows.emplace_back("cuda driver",
                        fmt::format("{}.{}", status.driver_version / 1000, status.driver_version % 1000 / 10));
    return rows;
  }
  std::string unavailable_reason() const override { return cuda::unavailable_reason(); }
  std::vector<GpuDevice> devices() const override {
    std::vector<GpuDevice> out;
    for (const auto& d : cuda::query_runtime().devices)
      out.push_back({d.index, d.name, d.compute_major, d.compute_minor, d.total_memory});
    return out;
  }
  bool supports_head_size(int head_size) const override { return cuda::attention_supports_head_size(head_size); }
  std::unique_ptr<Backend> make_backend(const GpuBackendOptions& options) const override {
    cuda::CudaOptions cuda_options;
    cuda_options.device = options.device;
    cuda_options.allow_tf32 = options.allow_tf32;
    cuda_options.dtype = options.dtype;
    cuda_options.tensor_core_attention = options.tensor_core_attention;
    return cuda::make_cuda_backend(cuda_options);
  }
  std::unique_ptr<ProcessGroup> make_group(StoreClient& store, int rank, int size, int device,
                                           const std::string& prefix, std::chrono::milliseconds timeout,
                                           Backend* producer) const override {
    return cuda::make_nccl_group(store, rank, size, device, prefix, timeout,
                                 producer ? cuda::backend_stream(*producer) : nullptr);
  }
};

}  // namespace

const GpuRuntime& gpu_runtime() {
  static const CudaRuntime runtime;
  return runtime;
}

}  // namespace lmt
