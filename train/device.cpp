#include "train/device.h"

#include <fmt/format.h>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#ifdef LMTRAIN_WITH_CUDA
#include "cuda/device.h"
#endif

namespace lmt {

std::string describe_cuda_devices() {
#ifdef LMTRAIN_WITH_CUDA
  auto status = cuda::query_runtime();
  if (!status.driver_ok) return status.message;
  if (status.devices.empty()) return status.message;
  std::string out;
  for (const auto& d : status.devices) {
    if (!out.empty()) out += "; ";
    out += fmt::format("{}: {} (sm_{}{}, {:.1f} GiB)", d.index, d.name, d.compute_major,
                       d.compute_minor, static_cast<double>(d.total_memory) / (1 << 30));
  }
  return out;
#else
  return "CUDA support not compiled in";
#endif
}

BackendChoice make_backend(const std::string& device, int cpu_threads) {
  BackendChoice choice;
  if (device == "cuda" || device == "auto") {
#ifdef LMTRAIN_WITH_CUDA
    auto status = cuda::query_runtime();
    bool have_gpu = status.driver_ok && !status.devices.empty();
    if (device == "cuda" && !have_gpu)
      throw Error(fmt::format("--device cuda: {}; use --device cpu (or auto)", status.message));
    if (device == "cuda")
      throw Error("--device cuda: this build has no CUDA training kernels yet (the CUDA "
                  "backend is tracked separately); use --device cpu");
    choice.notice = have_gpu ? "device auto: CUDA training kernels are not in this build yet; "
                               "training on CPU"
                             : fmt::format("device auto: {}; training on CPU", status.message);
#else
    if (device == "cuda")
      throw Error("--device cuda: this lmtrain was built without CUDA (rebuild with nvcc on PATH "
                  "or -DLMTRAIN_CUDA=ON); use --device cpu");
    choice.notice = "device auto: built without CUDA; training on CPU";
#endif
  } else if (device != "cpu") {
    throw Error(fmt::format("unknown device '{}'; expected cpu, cuda or auto", device));
  }
  choice.backend = cpu::make_cpu_backend(cpu_threads);
  return choice;
}

}  // namespace lmt
