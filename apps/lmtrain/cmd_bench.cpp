// lmtrain bench RECIPE [--steps N] [--warmup N] [--device D] [--set k=v]... [--json FILE] [--ops]
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/lmtrain/commands.h"
#include "core/file_io.h"
#include "core/recipe.h"
#include "core/strings.h"
#include "parallel/dist_env.h"
#include "parallel/worker.h"
#include "train/bench.h"

namespace lmt::app {

Action add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "time the phases of training steps for a recipe");
  struct Args {
    std::string recipe;
    std::vector<std::string> sets;
    BenchOptions options;
    std::string json_path;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("recipe", args->recipe, "YAML recipe")->required();
  cmd->add_option("--steps", args->options.steps, "timed steps (default 20)")->check(at_least(1));
  cmd->add_option("--warmup", args->options.warmup, "untimed steps first (default 3)")->check(at_least(0));
  add_device_option(cmd, args->options.device, "where to run (default: the recipe's run.device)");
  cmd->add_option("--set", args->sets, "override a recipe key (repeatable)")->take_all()->allow_extra_args(false);
  cmd->add_option("--json", args->json_path, "also write the results as JSON to this file");
  cmd->add_flag("--ops", args->options.ops,
                "also time every backend op (synchronizing around each, so steps get a little slower)");
  return [args] {
    LoadedRecipe loaded = load_recipe(args->recipe);
    apply_overrides(loaded, args->sets);
    // Under `lmtrain launch`, torchrun or srun: every rank runs the steps, rank 0 reports.
    const DistEnv env = read_dist_env();
    validate_recipe(loaded, env.world_size);
    BenchOptions options = args->options;
    const std::unique_ptr<WorkerConnection> connection = join_job(env, loaded.recipe);
    if (connection) {
      options.rank = env.rank;
      options.local_rank = env.local_rank;
      options.world_size = env.world_size;
      options.group = connection->group.get();
      options.store = connection->store.get();
      options.collective_timeout = connection->collective_timeout;
    }
    const BenchReport report = run_bench(loaded, options);
    if (env.rank != 0) return 0;
    fmt::print("bench {}: backend {}, {} timed steps after {} warmup, {} tokens/step\n", args->recipe,
               report.backend, report.steps, report.warmup, with_commas(report.tokens_per_step));
    fmt::print("  {:<10} {:>10} {:>10} {:>10} {:>7}\n", "phase", "median ms", "p10 ms", "p90 ms", "share");
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& [name, t] : report.phases) {
      fmt::print("  {:<10} {:>10.2f} {:>10.2f} {:>10.2f} {:>6.1f}%\n", name, t.median_ms, t.p10_ms, t.p90_ms,
                 100.0 * t.median_ms / report.total.median_ms);
      phases[name] = {{"median_ms", t.median_ms}, {"p10_ms", t.p10_ms}, {"p90_ms", t.p90_ms}};
    }
    fmt::print("  {:<10} {:>10.2f} {:>10.2f} {:>10.2f}\n", "step", report.total.median_ms, report.total.p10_ms,
               report.total.p90_ms);
    if (report.world_size > 1) {
      const double comm = report.phases[report.phases.size() - 2].second.median_ms;
      const double wait = report.phases.back().second.median_ms;
      fmt::print("  {} ranks: gradient collectives {:.2f} ms per step, {:.2f} ms of it after the backward pass: "
                 "{:.2f} ms ({:.0f}%) hidden behind it (distributed.overlap_comm)\n",
                 report.world_size, comm, wait, std::max(0.0, comm - wait),
                 comm > 0 ? 100.0 * std::max(0.0, comm - wait) / comm : 0.0);
    }
    fmt::print("  {} tokens/s, {:.1f} GFLOP/s achieved (6N + 6LCT per token){}\n", human_count(report.tokens_per_s),
               report.gflops,
               report.mfu > 0 ? fmt::format(", MFU {:.1f}% of log.peak_tflops", 100.0 * report.mfu) : "");
    nlohmann::json ops = nlohmann::json::array();
    if (!report.ops.empty()) {
      double ops_total = 0;
      for (const auto& op : report.ops) ops_total += op.ms_per_step;
      fmt::print("  {:<28} {:>9} {:>10} {:>7} {:>9}\n", "op", "calls", "ms/step", "share", "GFLOP/s");
      for (const auto& op : report.ops) {
        fmt::print("  {:<28} {:>9.0f} {:>10.2f} {:>6.1f}% {:>9}\n", op.name, op.calls_per_step, op.ms_per_step,
                   100.0 * op.ms_per_step / ops_total, op.gflops > 0 ? fmt::format("{:.1f}", op.gflops) : "");
        ops.push_back({{"op", op.name},
                       {"calls_per_step", op.calls_per_step},
                       {"ms_per_step", op.ms_per_step},
                       {"gflops", op.gflops}});
      }
      fmt::print("  {:<28} {:>9} {:>10.2f}   (the rest of the step is outside the ops)\n", "all ops", "",
                 ops_total);
    }
    if (!args->json_path.empty()) {
      nlohmann::json out = {{"recipe", args->recipe},
                            {"backend", report.backend},
                            {"steps", report.steps},
                            {"warmup", report.warmup},
                            {"tokens_per_step", report.tokens_per_step},
                            {"world_size", report.world_size},
                            {"flops_per_step", report.flops_per_step},
                            {"phases", phases},
                            {"step", {{"median_ms", report.total.median_ms},
                                      {"p10_ms", report.total.p10_ms},
                                      {"p90_ms", report.total.p90_ms}}},
                            {"tokens_per_s", report.tokens_per_s},
                            {"gflops", report.gflops},
                            {"mfu", report.mfu}};
      if (!report.ops.empty()) out["ops"] = ops;
      write_file_atomic(args->json_path, out.dump(2) + "\n");
    }
    return 0;
  };
}

}  // namespace lmt::app
