// lmt::gpu_runtime() for a build without CUDA (lmt_no_gpu): it says so wherever it is asked.
#include <fmt/format.h>

#include "core/error.h"
#include "core/gpu_runtime.h"
#include "parallel/process_group.h"

namespace lmt {
namespace {

class NoGpuRuntime final : public GpuRuntime {
 public:
  bool built() const override { return false; }
  std::string build_description() const override { return ""; }
  std::vector<std::pair<std::string, std::string>> doctor_rows() const override { return {}; }
  std::string unavailable_reason() const override { return "this lmtrain was built without CUDA"; }
  std::vector<GpuDevice> devices() const override { return {}; }
  bool supports_head_size(int) const override { return false; }
  std::unique_ptr<Backend> make_backend(const GpuBackendOptions&) const override {
    throw Error("this lmtrain was built without CUDA (rebuild with nvcc on PATH or -DLMTRAIN_CUDA=ON); use --device cpu");
  }
  std::unique_ptr<ProcessGroup> make_group(StoreClient&, int rank, int, int, const std::string&,
                                           std::chrono::milliseconds,
                                           Backend*) const override {
    throw Error(fmt::format("rank {}: this lmtrain was built without CUDA, so it has no GPU process group", rank));
  }
};

}  // namespace

const GpuRuntime& gpu_runtime() {
  static const NoGpuRuntime runtime;
  return runtime;
}

}  // namespace lmt
