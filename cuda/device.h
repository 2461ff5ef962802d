// What the CUDA runtime sees right now. Plain C++ header: callers need no CUDA headers.
#pragma once
#include <string>
#include <vector>

namespace lmt::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  size_t total_memory = 0;
  int multiprocessors = 0;
};

struct RuntimeStatus {
  bool driver_ok = false;     // false: no driver or it cannot be initialized
  std::string message;        // why not, in the runtime's words
  int driver_version = 0;     // e.g. 12040
  int runtime_version = 0;
  std::vector<DeviceInfo> devices;
};

RuntimeStatus query_runtime();
// cuBLASLt version of the library loaded at run time (e.g. 130100); needs no device.
int cublas_version();

}  // namespace lmt::cuda
