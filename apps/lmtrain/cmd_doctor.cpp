// lmtrain doctor: what this binary is, what it was built with, what it can see right now.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <yaml-cpp/yaml.h>

#include <thread>

#include "apps/lmtrain/commands.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "lmt_build_info.h"
#include "train/device.h"
#ifdef LMTRAIN_WITH_CUDA
#include "cuda/device.h"
#include "cuda/process_group_nccl.h"
#endif

namespace lmt::app {

Action add_doctor_command(CLI::App& app) {
  app.add_subcommand("doctor", "print version, build, backends, libraries and visible devices");
  return [] {
    fmt::print("lmtrain      {} (git {}, {} build)\n", LMTRAIN_VERSION, LMTRAIN_GIT_SHA, LMTRAIN_BUILD_TYPE);
    fmt::print("compiler     {}\n", LMTRAIN_CXX_COMPILER);
    fmt::print("backends     cpu{}\n",
#ifdef LMTRAIN_WITH_CUDA
               fmt::format(", cuda (nvcc {}; fp32/tf32, bf16, fp16; NCCL {})", LMTRAIN_CUDA_COMPILER_VERSION,
                           cuda::have_nccl() ? "yes" : "no")
#else
               std::string(" (built without CUDA)")
#endif
    );
    fmt::print("cpu gemm     {} micro-kernel (lmtrain's own; LMTRAIN_CPU_ISA to force a lower one)\n",
               cpu::gemm_isa_name(cpu::gemm_isa()));
    fmt::print("libraries    OpenBLAS (double precision only): {}\n", cpu::blas_info());
    fmt::print("             OpenMP {}, fmt {}.{}.{}, nlohmann_json {}.{}.{}, CLI11 {}, yaml-cpp\n",
               _OPENMP, FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100,
               NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH,
               CLI11_VERSION);
#ifdef LMTRAIN_WITH_CUDA
    auto status = cuda::query_runtime();
    fmt::print("             CUDA runtime {}.{}, cuBLAS {}\n", status.runtime_version / 1000,
               status.runtime_version % 1000 / 10, cuda::cublas_version());
    if (status.driver_ok)
      fmt::print("cuda driver  {}.{}\n", status.driver_version / 1000, status.driver_version % 1000 / 10);
#endif
    fmt::print("gpus         {}\n", describe_cuda_devices());
    fmt::print("cpu cores    {} hardware threads, OpenMP max threads {}\n",
               std::thread::hardware_concurrency(), omp_get_max_threads());
    return 0;
  };
}

}  // namespace lmt::app
