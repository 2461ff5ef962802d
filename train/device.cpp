#include "train/device.h"

#include <fmt/format.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/gpu_runtime.h"
#include "cpu/cpu_backend.h"

namespace lmt {

std::string describe_cuda_devices() {
  const GpuRuntime& gpu = gpu_runtime();
  if (!gpu.built()) return "CUDA support not compiled in";
  if (const std::string why = gpu.unavailable_reason(); !why.empty()) return why;
  std::string out;
  for (const auto& d : gpu.devices()) {
    if (!out.empty()) out += "; ";
    out += fmt::format("{}: {} (sm_{}{}, {:.1f} GiB)", d.index, d.name, d.compute_major, d.compute_minor,
                       static_cast<double>(d.total_memory) / (1 << 30));
  }
  return out;
}

namespace {

// Why the GPU of this worker cannot train this model, or "".
std::string cuda_unusable(const BackendRequest& request, const GpuRuntime& gpu, const std::vector<GpuDevice>& devices) {
  if (const std::string why = gpu.unavailable_reason(); !why.empty()) return why;
  if (request.local_rank >= static_cast<int>(devices.size())) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return fmt::format("LOCAL_RANK={} but {} CUDA device(s) are visible (CUDA_VISIBLE_DEVICES={}); start at most "
                       "one worker per GPU (--nproc-per-node, or slots= in the hostfile)",
                       request.local_rank, devices.size(), visible ? visible : "unset");
  }
  if (request.head_size > 0 && !gpu.supports_head_size(request.head_size))
    return fmt::format("the CUDA attention kernels support head sizes 32, 64 and 128, and this model's is {} "
                       "(model.n_embd / model.n_head)",
                       request.head_size);
  return "";
}

}  // namespace

BackendRequest backend_request(const Recipe& recipe, const GPTConfig& cfg, std::optional<DeviceKind> device_override,
                               int local_rank, const std::string& where) {
  BackendRequest request;
  request.device = device_override.value_or(recipe.run.device);
  request.cpu_threads = static_cast<int>(recipe.run.threads);
  request.local_rank = local_rank;
  request.head_size = cfg.num_heads > 0 ? cfg.channels / cfg.num_heads : 0;
  request.allow_tf32 = recipe.precision.tf32;
  request.tensor_core_attention = recipe.precision.tensor_core_attention;
  request.dtype = recipe.precision.dtype;
  request.where = where;
  return request;
}

BackendChoice make_backend(const BackendRequest& request) {
  const DeviceKind device = request.device;
  BackendChoice choice;
  const GpuRuntime& gpu = gpu_runtime();
  if (device != DeviceKind::kCpu && gpu.built()) {
    const std::vector<GpuDevice> devices = gpu.devices();
    const std::string why = cuda_unusable(request, gpu, devices);
    if (why.empty()) {
      choice.device_memory = devices[static_cast<size_t>(request.local_rank)].total_memory;
      choice.backend =
          gpu.make_backend({request.local_rank, request.allow_tf32, request.dtype, request.tensor_core_attention});
      choice.cuda = true;
      choice.cuda_device = request.local_rank;
      return choice;
    }
    if (device == DeviceKind::kCuda) throw Error(fmt::format("--device cuda: {}; use --device cpu (or auto)", why));
    if (request.dtype != DType::kF32)
      throw Error(fmt::format("{}: precision.dtype {} needs a GPU, and device auto found none ({}); use --set "
                              "precision.dtype=fp32 to train on the CPU",
                              request.where, dtype_name(request.dtype), why));
    choice.notice = fmt::format("device auto: {}; training on CPU", why);
  } else if (device != DeviceKind::kCpu) {
    if (device == DeviceKind::kCuda)
      throw Error("--device cuda: this lmtrain was built without CUDA (rebuild with nvcc on PATH "
                  "or -DLMTRAIN_CUDA=ON); use --device cpu");
    if (request.dtype != DType::kF32)
      throw Error(fmt::format("{}: precision.dtype {} needs a GPU, and this lmtrain was built without CUDA; use "
                              "--set precision.dtype=fp32 to train on the CPU",
                              request.where, dtype_name(request.dtype)));
    choice.notice = "device auto: built without CUDA; training on CPU";
  } else if (request.dtype != DType::kF32) {
    throw Error(fmt::format("{}: precision.dtype {} needs --device cuda: the CPU trains in fp32; use --set "
                            "precision.dtype=fp32",
                            request.where, dtype_name(request.dtype)));
  }
  choice.backend = cpu::make_cpu_backend(request.cpu_threads);
  return choice;
}

BackendChoice make_inference_backend(const Recipe& recipe, const GPTConfig& cfg, DeviceKind device,
                                     const std::string& where) {
  BackendRequest request = backend_request(recipe, cfg, device, 0, where);
  if (device != DeviceKind::kCuda) request.dtype = DType::kF32;
  return make_backend(request);
}

}  // namespace lmt
