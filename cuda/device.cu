// Device discovery for `lmtrain doctor` and --device selection.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "cuda/device.h"

namespace lmt::cuda {

RuntimeStatus query_runtime() {
  RuntimeStatus status;
  cudaRuntimeGetVersion(&status.runtime_version);
  cudaError_t err = cudaDriverGetVersion(&status.driver_version);
  if (err != cudaSuccess || status.driver_version == 0) {
    status.message = "no CUDA driver";
    return status;
  }
  int count = 0;
  err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    status.message = cudaGetErrorString(err);
    return status;
  }
  status.driver_ok = true;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.total_memory = prop.totalGlobalMem;
    info.multiprocessors = prop.multiProcessorCount;
    status.devices.push_back(info);
  }
  if (count == 0) status.message = "the CUDA driver reports no device";
  return status;
}

int cublas_version() { return static_cast<int>(cublasLtGetVersion()); }

}  // namespace lmt::cuda
