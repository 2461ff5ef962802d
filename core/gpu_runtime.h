// The GPU runtime linked into this binary, behind plain C++. train/ and apps/ are compiled once
// and reach the GPU only through this interface; which implementation they get is chosen at
// link time, one per binary:
//   lmt_cuda      cuda/gpu_runtime.cpp: real GPUs (CUDA runtime, cuBLASLt, NCCL when found);
//   lmt_cuda_emu  the same file on the CPU emulator of cuda/emu/ (lmtrain_emu, for the tests);
//   lmt_no_gpu    cuda/none/gpu_runtime_none.cpp: a build without CUDA.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/ops.h"

namespace lmt {

class ProcessGroup;  // parallel/process_group.h
class StoreClient;   // parallel/store.h

struct GpuDevice {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  size_t total_memory = 0;
};

struct GpuBackendOptions {
  int device = 0;             // CUDA device index (after CUDA_VISIBLE_DEVICES)
  bool allow_tf32 = false;    // fp32 GEMMs on tensor cores with TF32 inputs
  DType dtype = DType::kF32;  // activations and the compute copy of the parameters
  // bf16/fp16 attention at head sizes 64 and 128 on tensor cores (else the fp32-arithmetic kernels)
  bool tensor_core_attention = true;
};

class GpuRuntime {
 public:
  virtual ~GpuRuntime() = default;
  // False in a build without CUDA: every other answer then says so.
  virtual bool built() const = 0;
  // For `lmtrain doctor`: "cuda (nvcc 13.0.88; fp32/tf32, bf16, fp16; NCCL yes)", and its rows
  // (label, text) on the runtime, cuBLASLt and driver versions; an empty label continues the
  // row above.
  virtual std::string build_description() const = 0;
  virtual std::vector<std::pair<std::string, std::string>> doctor_rows() const = 0;
  // Why no GPU can be used here ("no CUDA driver", "no CUDA device is visible"), or "".
  virtual std::string unavailable_reason() const = 0;
  virtual std::vector<GpuDevice> devices() const = 0;
  // Whether the attention kernels support head size n_embd / n_head.
  virtual bool supports_head_size(int head_size) const = 0;
  // Throws lmt::Error when the device cannot be used.
  virtual std::unique_ptr<Backend> make_backend(const GpuBackendOptions& options) const = 0;
  // Collectives on this runtime's device memory (NCCL) for `rank` of `size`, set up through the
  // job's store under `prefix`, every wait bounded by `timeout`. Its asynchronous collectives
  // are ordered after the work of `producer` (a backend from make_backend; nullptr: the group
  // has none). Throws lmt::Error when the build has none.
  virtual std::unique_ptr<ProcessGroup> make_group(StoreClient& store, int rank, int size, int device,
                                                   const std::string& prefix, std::chrono::milliseconds timeout,
                                                   Backend* producer) const = 0;
};

// This binary's runtime (see the top of this file).
const GpuRuntime& gpu_runtime();

}  // namespace lmt
