// The CUDA backend: lmt::Backend over device memory, every op a kernel of ours (cuda/*.cu) or a
// cuBLASLt GEMM. Plain C++ header: callers need no CUDA headers.
//
// Built twice: for real GPUs (lmt_cuda, nvcc) and, with LMTRAIN_CUDA_EMU, for the CPU emulator
// of cuda/emu/ (lmt_cuda_emu, the host compiler), where the same kernels run one block at a time
// so that tests can check them on machines without a GPU.
#pragma once
#include <memory>
#include <string>

#include "core/ops.h"

namespace lmt::cuda {

struct CudaOptions {
  int device = 0;           // CUDA device index (after CUDA_VISIBLE_DEVICES)
  bool allow_tf32 = false;  // fp32 GEMMs on tensor cores with TF32 inputs
  DType dtype = DType::kF32;  // activations and the compute copy of the parameters
  bool fuse_gelu = true;      // the MLP's GELU in cuBLASLt's GEMM epilogues where it has them
  // bf16/fp16 attention at head sizes 64 and 128 on tensor cores (cuda/attention_mma.cu); false
  // keeps cuda/attention.cu's kernels (fp32 arithmetic), which fp32 and head size 32 always use.
  bool tensor_core_attention = true;
};

// Throws lmt::Error when the device cannot be used.
std::unique_ptr<lmt::Backend> make_cuda_backend(const CudaOptions& options);

// Whether the attention kernels support head size HS (C / NH).
bool attention_supports_head_size(int HS);

// The stream every op of a backend made by make_cuda_backend runs on (a cudaStream_t, opaque
// here), for collectives ordered after them; nullptr for any other backend.
void* backend_stream(lmt::Backend& backend);

// True in the emulator build.
bool is_emulator();

// Why make_cuda_backend cannot work on this machine ("no CUDA driver", ...), or "" when it can
// (always "" in the emulator build).
std::string unavailable_reason();
// CUDA devices visible to this process (1 in the emulator build, 0 without a driver).
int visible_device_count();

}  // namespace lmt::cuda
