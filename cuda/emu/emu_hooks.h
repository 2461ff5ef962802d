// Test hooks of the CUDA emulator, for paths a GPU takes only on some shapes, drivers or library
// versions. Plain C++: a test includes this without the emulator's CUDA stand-ins.
#pragma once

namespace lmt::emu {

// The next `heuristic_queries` cuBLASLt heuristic queries return one algorithm whose state is
// CUBLAS_STATUS_NOT_SUPPORTED (cublasLtMatmul refuses to run it), and the next `gelu_matmuls`
// matmuls with a GELU epilogue return CUBLAS_STATUS_NOT_SUPPORTED having written nothing.
void cublaslt_inject_unsupported(int heuristic_queries, int gelu_matmuls);
// How many injected refusals have not happened yet (0 once the code under test met them all).
int cublaslt_injections_left();

// The emulator shows `count` devices (1 at start) and makes device 0 current.
void set_device_count(int count);
// cudaSetDevice(device) fails from now on as it does for a busy or exclusive-process GPU
// (cudaErrorDevicesUnavailable); -1 clears it.
void make_device_unavailable(int device);

}  // namespace lmt::emu
