// Chooses and builds the backend for `--device cpu|cuda|auto`.
#pragma once
#include <memory>
#include <string>

#include "core/ops.h"

namespace lmt {

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  std::string notice;  // printed once, e.g. why auto fell back to CPU
};

// Throws lmt::Error when the request cannot be honoured (no GPU for --device cuda, ...).
BackendChoice make_backend(const std::string& device, int cpu_threads);

// "no CUDA driver", "2 x NVIDIA H100 ...", or "CUDA support not compiled in".
std::string describe_cuda_devices();

}  // namespace lmt
