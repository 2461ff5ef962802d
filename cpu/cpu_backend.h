// The CPU backend: lmt::Backend over host memory, each op forwarded to the float instantiation
// of the reference ops in cpu/cpu_ops.h (cpu_backend.cpp). OpenMP parallelizes the loops; the
// GEMMs are lmtrain's own (cpu/gemm.h), OpenBLAS serves the double-precision test oracle.
#pragma once
#include <memory>
#include <string>

#include "core/ops.h"

namespace lmt::cpu {

// Builds the CPU backend and sets both OpenMP's and OpenBLAS's thread count to num_threads;
// num_threads <= 0 means omp_get_max_threads() (honours OMP_NUM_THREADS).
std::unique_ptr<lmt::Backend> make_cpu_backend(int num_threads);

// The OpenMP threads of a backend made by make_cpu_backend.
int cpu_backend_threads(const lmt::Backend& backend);

// OpenBLAS's build configuration (openblas_get_config()), for `lmtrain doctor`.
std::string blas_info();

}  // namespace lmt::cpu
