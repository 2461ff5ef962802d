// Device discovery in the emulator build: one "device", the CPU, so that the trainer's --device
// cuda path (and lmtrain_emu, the CLI built on the emulator) runs end to end without a GPU.
#include "cuda/device.h"
#include "cuda/emu/launch_limits.h"

namespace lmt::cuda {

RuntimeStatus query_runtime() {
  RuntimeStatus status;
  status.driver_ok = true;
  status.driver_version = 0;
  status.runtime_version = 0;
  DeviceInfo device;
  device.index = 0;
  // The architecture whose launch limits it applies (LMTRAIN_EMU_ARCH, sm_90 by default).
  device.name = "CUDA emulator (CPU)";
  device.compute_major = emu::emulated_arch().sm / 10;
  device.compute_minor = emu::emulated_arch().sm % 10;
  device.total_memory = size_t{16} << 30;
  device.multiprocessors = 1;
  status.devices.push_back(device);
  return status;
}

int cublas_version() { return 0; }

}  // namespace lmt::cuda
