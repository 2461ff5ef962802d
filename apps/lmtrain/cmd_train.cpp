// lmtrain train RECIPE [--set key=value]... [--device cpu|cuda|auto] [--overwrite] [--resume WHICH] [--tensorboard DIR]
#include <fmt/format.h>

#include <chrono>
#include <csignal>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "core/recipe.h"
#include "parallel/agent_death.h"
#include "parallel/dist_env.h"
#include "parallel/worker.h"
#include "train/trainer.h"

namespace lmt::app {

namespace {

struct TrainArgs {
  std::string recipe;
  std::vector<std::string> sets;
  std::optional<DeviceKind> device;
  bool overwrite = false;
  std::string resume;
  std::string tensorboard;
};

void add_train_options(CLI::App* cmd, TrainArgs& args) {
  cmd->add_option("recipe", args.recipe, "YAML recipe")->required();
  cmd->add_option("--set", args.sets, "override a recipe key: --set model.n_layer=6 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  add_device_option(cmd, args.device, "where to train (default: the recipe's run.device)");
  cmd->add_flag("--overwrite", args.overwrite, "replace a run directory that already holds a run");
  cmd->add_option("--resume", args.resume,
                  "auto (the latest checkpoint if any, else start fresh), latest, or a checkpoint path");
  cmd->add_option("--tensorboard", args.tensorboard,
                  "also write TensorBoard event files to DIR (log.tensorboard writes them to <run directory>/tensorboard)")
      ->type_name("DIR");
}

}  // namespace

std::unique_ptr<WorkerConnection> join_job(const DistEnv& env, const Recipe& recipe) {
  if (env.world_size <= 1) return nullptr;
  return connect_worker(env,
                        std::chrono::milliseconds(static_cast<int64_t>(recipe.run.heartbeat_timeout * 1000)));
}

void check_restartable_train_command(const std::vector<std::string>& command) {
  if (command.empty() || command[0] != "train")
    throw Error(fmt::format("--max-restarts restarts a training run from its latest checkpoint; the command after -- "
                            "is '{}', not train",
                            command.empty() ? "" : command[0]));
  CLI::App app("the command after --");
  TrainArgs args;
  add_train_options(app.add_subcommand("train"), args);
  std::vector<std::string> reversed(command.rbegin(), command.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    throw Error(fmt::format("launch: the command after -- is not a valid train command: {}", e.what()));
  }
  LoadedRecipe loaded = load_recipe(args.recipe);
  apply_overrides(loaded, args.sets);
  if (loaded.recipe.checkpoint.every <= 0)
    throw Error(fmt::format("--max-restarts needs a run that saves checkpoints while it trains, or a restart would "
                            "start over: {} has checkpoint.every: {} (only at the end). Set it, e.g. "
                            "--set checkpoint.every=100",
                            loaded.path, loaded.recipe.checkpoint.every));
}

Action add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a GPT from a recipe");
  auto args = std::make_shared<TrainArgs>();
  add_train_options(cmd, *args);
  return [args] {
    DistEnv env = read_dist_env();
    if (!stop_with_torchrun_agent(env))
      throw Error("the torchrun agent that started this worker has already exited; nothing was started");
    LoadedRecipe loaded = load_recipe(args->recipe);
    apply_overrides(loaded, args->sets);
    try {
      validate_recipe(loaded, env.world_size);
    } catch (const Error& e) {
      if (env.source == "none") throw;
      // The batch relation names "world size N": say which launcher's variable gave it.
      throw Error(fmt::format("{}\n(the world size {} is {})", e.what(), env.world_size,
                              env.source == "slurm" ? "SLURM_NTASKS, the number of srun tasks"
                                                    : "WORLD_SIZE, set by the launcher"));
    }
    TrainOptions options;
    options.device = args->device;
    options.overwrite = args->overwrite;
    options.resume = args->resume;
    options.tensorboard_dir = args->tensorboard;
    options.restart = static_cast<int>(env.launch_restart);
    options.world_size = env.world_size;
    options.rank = env.rank;
    options.local_rank = env.local_rank;
    options.torchrun_restart = env.restart_count;
    options.torchrun_max_restarts = env.max_restarts;
    // Several ranks: join the job's rendezvous store and process group before any work.
    const std::unique_ptr<WorkerConnection> connection = join_job(env, loaded.recipe);
    if (connection) {
      options.group = connection->group.get();
      options.store = connection->store.get();
      options.collective_timeout = connection->collective_timeout;
    }
    TrainResult result = train(loaded, options);
    // The ranks agree on a stop at a step boundary, so a rank whose agent hears of the stop later
    // (another host, over ssh) can be done before that agent's SIGTERM arrives. Training is over:
    // it has nothing left to stop, and must not die of it while leaving the process group.
    if (env.world_size > 1) {
      std::signal(SIGTERM, SIG_IGN);
      std::signal(SIGUSR1, SIG_IGN);
    }
    if (result.already_complete) {
      if (options.rank == 0)
        fmt::print("run {} is already complete: checkpoint {} is at step {} and run.steps is {}; nothing to do "
                   "(summary.json is unchanged). Raise run.steps to train further\n",
                   result.run_dir, result.checkpoint, result.steps_done, loaded.recipe.run.steps);
      return 0;
    }
    // A scheduler's SIGTERM or SIGUSR1 (preemption) ends with a checkpoint and exit 0 so the job
    // can be requeued; Ctrl-C keeps the shell convention 128 + SIGINT = 130.
    if (result.interrupted && result.stop_signal == SIGINT) return kInterruptedExitCode;
    return 0;
  };
}

}  // namespace lmt::app
