#include "train/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "train/op_profiler.h"
#include "train/step.h"
#include "train/trainer.h"

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

PhaseTiming summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    const double pos = q * static_cast<double>(samples.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, samples.size() - 1);
    return samples[lo] + (pos - static_cast<double>(lo)) * (samples[hi] - samples[lo]);
  };
  return {at(0.5), at(0.1), at(0.9)};
}

}  // namespace

// The same set-up and steps as training (Trainer), in benchmark mode: nothing is written, the
// recipe runs warmup + steps steps at its full sequence length.
BenchReport run_bench(const LoadedRecipe& loaded, const BenchOptions& options) {
  if (options.steps < 1 || options.warmup < 0)
    throw Error(fmt::format("--steps must be at least 1 and --warmup at least 0 (got {} and {})",
                            options.steps, options.warmup));
  LoadedRecipe bench_recipe = loaded;
  Recipe& r = bench_recipe.recipe;
  r.run.steps = options.warmup + options.steps;
  r.seq_len_schedule.type = SeqLenScheduleKind::kNone;
  TrainOptions train_options;
  train_options.device = options.device;
  train_options.print_progress = false;
  train_options.benchmark = true;
  train_options.profile_ops = options.ops;
  train_options.rank = options.rank;
  train_options.local_rank = options.local_rank;
  train_options.world_size = options.world_size;
  train_options.group = options.group;
  train_options.store = options.store;
  train_options.collective_timeout = options.collective_timeout;
  Trainer trainer(bench_recipe, train_options);
  const int T = static_cast<int>(r.run.seq_len);

  std::vector<double> data_ms, forward_ms, backward_ms, optimizer_ms, comm_ms, comm_wait_ms, total_ms;
  for (int64_t step = 0; step < options.warmup + options.steps; ++step) {
    StepPhases phases;
    const auto step_start = Clock::now();
    trainer.step(&phases);
    const double total = ms_since(step_start);
    if (step < options.warmup) {
      trainer.reset_op_timings();
      continue;
    }
    data_ms.push_back(phases.data_ms);
    forward_ms.push_back(phases.forward_ms);
    backward_ms.push_back(phases.backward_ms);
    optimizer_ms.push_back(phases.optimizer_ms);
    comm_ms.push_back(phases.comm_ms);
    comm_wait_ms.push_back(phases.comm_wait_ms);
    total_ms.push_back(total);
  }
  BenchReport report;
  report.backend = trainer.backend().name();
  report.threads = r.run.threads;
  report.steps = options.steps;
  report.warmup = options.warmup;
  report.tokens_per_step = r.run.global_batch_size * T;
  report.flops_per_step = flops_per_token(trainer.model_config(), T) * static_cast<double>(report.tokens_per_step);
  report.phases = {{"data", summarize(data_ms)},
                   {"forward", summarize(forward_ms)},
                   {"backward", summarize(backward_ms)},
                   {"optimizer", summarize(optimizer_ms)}};
  report.world_size = options.world_size;
  if (options.world_size > 1) {
    report.phases.push_back({"comm", summarize(comm_ms)});
    report.phases.push_back({"comm_wait", summarize(comm_wait_ms)});
  }
  report.total = summarize(total_ms);
  report.tokens_per_s = static_cast<double>(report.tokens_per_step) / (report.total.median_ms / 1e3);
  report.gflops = report.flops_per_step / (report.total.median_ms / 1e3) / 1e9;
  if (r.log.peak_tflops > 0) report.mfu = report.gflops / (r.log.peak_tflops * 1e3);
  for (const OpTiming& t : trainer.op_timings()) {
    const double steps = static_cast<double>(options.steps);
    report.ops.push_back({t.name, static_cast<double>(t.calls) / steps, t.total_ms / steps,
                          t.flops > 0 ? t.flops / (t.total_ms / 1e3) / 1e9 : 0.0});
  }
  return report;
}

}  // namespace lmt
