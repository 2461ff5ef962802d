// lmtrain train RECIPE [--set key=value]... [--device cpu|cuda|auto] [--overwrite] [--resume WHICH] [--tensorboard DIR]
#include <fmt/format.h>

#include <csignal>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "core/recipe.h"
#include "parallel/dist_env.h"
#include "parallel/worker.h"
#include "train/trainer.h"

namespace lmt::app {

Action add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a GPT from a recipe");
  struct Args {
    std::string recipe;
    std::vector<std::string> sets;
    std::optional<DeviceKind> device;
    bool overwrite = false;
    std::string resume;
    std::string tensorboard;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("recipe", args->recipe, "YAML recipe")->required();
  cmd->add_option("--set", args->sets, "override a recipe key: --set model.n_layer=6 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  add_device_option(cmd, args->device, "where to train (default: the recipe's run.device)");
  cmd->add_flag("--overwrite", args->overwrite, "replace a run directory that already holds a run");
  cmd->add_option("--resume", args->resume,
                  "auto (the latest checkpoint if any, else start fresh), latest, or a checkpoint path");
  cmd->add_option("--tensorboard", args->tensorboard,
                  "also write TensorBoard event files to DIR (log.tensorboard writes them to <run directory>/tensorboard)")
      ->type_name("DIR");
  return [args] {
    DistEnv env = read_dist_env();
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
    options.world_size = env.world_size;
    options.rank = env.rank;
    options.local_rank = env.local_rank;
    // Several ranks: join the job's rendezvous store and process group before any work.
    std::unique_ptr<WorkerConnection> connection;
    if (env.world_size > 1) {
      connection = connect_worker(env);
      options.group = connection->group.get();
      options.store = connection->store.get();
      options.collective_timeout = connection->collective_timeout;
    }
    TrainResult result = train(loaded, options);
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
