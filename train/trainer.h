// The trainer: step loop with gradient accumulation, LR schedule, clipping, AdamW, periodic
// evaluation, console and JSON-lines metrics, clean stop on Ctrl-C.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "core/recipe.h"
#include "model/adamw.h"
#include "model/loss_scaler.h"
#include "model/gpt_config.h"

namespace lmt {

class ProcessGroup;
class StoreClient;

struct TrainOptions {
  std::string device;        // overrides run.device when not empty
  bool overwrite = false;    // reuse a run directory that already holds a run
  int64_t world_size = 1;
  int64_t rank = 0;
  // Collectives between the ranks (world_size > 1); nullptr for a single process. Rank 0 alone
  // prints, writes metrics and saves checkpoints.
  ProcessGroup* group = nullptr;
  // The job's rendezvous store: a CUDA run of several ranks builds its NCCL group through it.
  StoreClient* store = nullptr;
  // The bound on a collective's wait for the other ranks (LMTRAIN_TIMEOUT_S), for the NCCL group.
  std::chrono::milliseconds collective_timeout{300'000};
  int64_t local_rank = 0;  // picks the GPU (device index LOCAL_RANK)
  bool print_progress = true;
  std::string resume;  // "", "auto", "latest" or a checkpoint path
};

struct TrainResult {
  int64_t steps_done = 0;
  double final_loss = 0.0;
  std::optional<double> final_val_loss;
  std::map<std::string, double> final_set_losses;  // eval.sets by name
  std::optional<double> loss_floor;
  double seconds = 0.0;
  bool interrupted = false;
  int stop_signal = 0;  // SIGINT, SIGTERM or SIGUSR1 when interrupted
  std::string run_dir;
};

// Runs training for a validated recipe. Throws lmt::Error for user errors.
TrainResult train(const LoadedRecipe& recipe, const TrainOptions& options);

// The model shape for a recipe; vocab from the data when model.vocab_size is 0. `where`
// names the recipe in errors.
GPTConfig resolve_model_config(const Recipe& recipe, int64_t data_vocab_size,
                               const std::string& where);

// The run directory a recipe writes to (run.out_dir / run.name).
std::string run_directory(const Recipe& recipe);
// The optimizer section as AdamW's hyperparameters.
AdamWHyper adamw_hyper(const OptimizerConfig& optimizer);
// The precision section's fp16 loss-scaling settings.
LossScalerConfig loss_scaler_config(const PrecisionConfig& precision);

// Where its checkpoints go (checkpoint.dir, or <run directory>/checkpoints).
std::string checkpoint_directory(const Recipe& recipe);

}  // namespace lmt
