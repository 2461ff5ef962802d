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
#include "core/gpu_runtime.h"
#include "train/device.h"

namespace lmt::app {

Action add_doctor_command(CLI::App& app) {
  app.add_subcommand("doctor", "print version, build, backends, libraries and visible devices");
  return [] {
    fmt::print("lmtrain      {} (git {}, {} build)\n", LMTRAIN_VERSION, LMTRAIN_GIT_SHA, LMTRAIN_BUILD_TYPE);
    fmt::print("compiler     {}\n", LMTRAIN_CXX_COMPILER);
    const GpuRuntime& gpu = gpu_runtime();
    fmt::print("backends     cpu{}\n", gpu.built() ? ", " + gpu.build_description() : " (built without CUDA)");
    fmt::print("cpu gemm     {} micro-kernel (lmtrain's own; LMTRAIN_CPU_ISA to force a lower one)\n",
               cpu::gemm_isa_name(cpu::gemm_isa()));
    fmt::print("libraries    OpenBLAS (double precision only): {}\n", cpu::blas_info());
    fmt::print("             OpenMP {}, fmt {}.{}.{}, nlohmann_json {}.{}.{}, CLI11 {}, yaml-cpp\n",
               _OPENMP, FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100,
               NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH,
               CLI11_VERSION);
    for (const auto& [label, text] : gpu.doctor_rows()) fmt::print("{:<13}{}\n", label, text);
    fmt::print("gpus         {}\n", describe_cuda_devices());
    fmt::print("cpu cores    {} hardware threads, OpenMP max threads {}\n",
               std::thread::hardware_concurrency(), omp_get_max_threads());
    return 0;
  };
}

}  // namespace lmt::app
