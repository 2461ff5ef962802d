// `lmtrain bench`: times the phases of real training steps (data, forward, backward, optimizer)
// for a recipe, with medians and spread. Speed lives here and in docs/BENCHMARKS.md, never in
// tests.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"

namespace lmt {

class ProcessGroup;
class StoreClient;

struct BenchOptions {
  int64_t steps = 20;
  int64_t warmup = 3;
  std::optional<DeviceKind> device;  // overrides run.device when set
  bool ops = false;    // also time every backend op (train/op_profiler.h)
  // Several ranks (`lmtrain launch -- bench`): this worker's place in the job.
  int64_t rank = 0, local_rank = 0, world_size = 1;
  ProcessGroup* group = nullptr;
  StoreClient* store = nullptr;
  std::chrono::milliseconds collective_timeout{300'000};  // the job's (LMTRAIN_TIMEOUT_S), for NCCL
};

struct OpReport {
  std::string name;
  double calls_per_step = 0;
  double ms_per_step = 0;  // mean over the timed steps, with a synchronization around each call
  double gflops = 0;       // achieved by the op's matrix products; 0 where not counted
};

struct PhaseTiming {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
};

struct BenchReport {
  std::string backend;
  int64_t threads = 0;
  int64_t steps = 0, warmup = 0;
  int64_t tokens_per_step = 0;
  double flops_per_step = 0;
  // data, forward, backward, optimizer; with several ranks also comm (the gradients'
  // collectives, overlapped or not) and comm_wait (what the step waited for after the backward).
  std::vector<std::pair<std::string, PhaseTiming>> phases;
  int64_t world_size = 1;
  PhaseTiming total;
  double tokens_per_s = 0;  // at the median step time
  double gflops = 0;        // achieved, at the median step time
  double mfu = 0;           // gflops / log.peak_tflops; 0 when the peak is not set
  std::vector<OpReport> ops;  // with BenchOptions::ops, most expensive first
};

BenchReport run_bench(const LoadedRecipe& recipe, const BenchOptions& options);

}  // namespace lmt
