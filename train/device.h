// Chooses and builds the backend for `--device cpu|cuda|auto`.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "core/ops.h"
#include "core/recipe.h"
#include "model/gpt_config.h"

namespace lmt {

struct BackendRequest {
  DeviceKind device = DeviceKind::kAuto;
  int cpu_threads = 0;          // 0: all cores (OMP_NUM_THREADS)
  int local_rank = 0;           // the GPU of this worker: device index LOCAL_RANK
  int head_size = 0;            // the model's n_embd / n_head; 0 when not known (no check)
  bool allow_tf32 = true;       // fp32 GEMMs on tensor cores with TF32 inputs
  bool tensor_core_attention = true;  // precision.tensor_core_attention
  DType dtype = DType::kF32;    // precision.dtype; bf16 and fp16 need a GPU
  std::string where;            // the recipe, named in errors about precision.dtype
};

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  std::string notice;    // printed once, e.g. why auto fell back to CPU
  bool cuda = false;     // the backend runs on a GPU
  int cuda_device = -1;  // its index
  size_t device_memory = 0;  // the GPU's memory in bytes (0 on CPU)
};

// cpu: the CPU backend. cuda: GPU LOCAL_RANK, or lmt::Error saying why it cannot be used (no
// driver, no such device, a head size our attention kernels do not support). auto: cuda when it
// can be used, else cpu with a notice saying why.
BackendChoice make_backend(const BackendRequest& request);

// The request for a recipe's model: device_override (a --device flag) or run.device,
// run.threads, precision.dtype, .tf32 and .tensor_core_attention, and the model's head size.
BackendRequest backend_request(const Recipe& recipe, const GPTConfig& cfg, std::optional<DeviceKind> device_override,
                               int local_rank, const std::string& where);

// The backend to run a checkpoint's model on (eval, generate). The checkpoint holds fp32 master
// weights: a bf16/fp16 run runs in fp32 unless --device cuda asks for its own precision.
BackendChoice make_inference_backend(const Recipe& recipe, const GPTConfig& cfg, DeviceKind device,
                                     const std::string& where);

// "no CUDA driver", "2 x NVIDIA H100 ...", or "CUDA support not compiled in".
std::string describe_cuda_devices();

}  // namespace lmt
