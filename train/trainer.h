// The trainer: set-up (data, model, backend, resume), one optimizer step at a time with gradient
// accumulation, LR and sequence-length schedules, clipping, fp16 loss scaling and AdamW, the
// evaluation and checkpoint schedule, and a clean stop on a signal. train() runs the loop;
// Trainer is the same in pieces, for tests and for callers that drive the steps themselves.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "model/adamw.h"
#include "model/loss_scaler.h"
#include "model/gpt_config.h"

namespace lmt {

class ProcessGroup;
class StoreClient;

struct TrainOptions {
  std::optional<DeviceKind> device;  // overrides run.device when set
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
  // TORCHELASTIC_RESTART_COUNT and TORCHELASTIC_MAX_RESTARTS of a worker started by torchrun,
  // for the start record; -1 otherwise.
  int64_t torchrun_restart = -1;
  int64_t torchrun_max_restarts = -1;
  bool print_progress = true;
  std::string resume;  // "", "auto", "latest" or a checkpoint path
  // Which attempt of a restarted job this is (`lmtrain launch --max-restarts`; 0 = the first),
  // recorded in the start or resume record.
  int restart = 0;
  // TensorBoard event files go here (`lmtrain train --tensorboard DIR`); set, it turns them on
  // whatever log.tensorboard says. Empty: <run directory>/tensorboard when log.tensorboard is on.
  std::string tensorboard_dir;
  // A benchmark (`lmtrain bench`): nothing is written (no run directory, metrics or
  // checkpoints) and nothing is resumed; only step() is meant to be called.
  bool benchmark = false;
  // Time every backend op (`lmtrain bench --ops`): the backend is wrapped by ProfilingBackend.
  bool profile_ops = false;
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
  // Resumed from a checkpoint at or past run.steps (a finished run): nothing was trained or
  // written (no metrics record, summary.json untouched); `checkpoint` is the one found.
  bool already_complete = false;
  std::string checkpoint;
};

// One optimizer step as it happened.
struct StepResult {
  int64_t step = 0;      // the steps done after it (1-based)
  bool applied = true;   // false: fp16 gradients overflowed and the update was skipped
  double loss = 0.0;     // mean over the global batch (unscaled)
  double grad_norm = 0.0;
  double lr = 0.0;       // 0 for a skipped step
  int seq_len = 0;
  int64_t tokens = 0;    // tokens of the global batch
  double seconds = 0.0;
};

class Reporter;
class Backend;
struct OpTiming;
struct StepPhases;

class Trainer {
 public:
  // Everything that can fail on bad input (recipe, data, checkpoint, device) fails here, before
  // the run directory is touched; then the run directory, recipe.yaml and the first metrics
  // record are written (rank 0). Throws lmt::Error.
  Trainer(const LoadedRecipe& recipe, const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  int64_t steps_done() const;
  int64_t total_steps() const;  // run.steps
  // The resumed checkpoint is at or past run.steps: nothing was set up or written, and finish()
  // returns at once (TrainResult::already_complete).
  bool already_complete() const;
  // One optimizer step on the next global batch: accumulate over the micro-batches, reduce
  // over the ranks, clip, AdamW (or skip on an fp16 overflow). Throws lmt::Error when the loss
  // or the gradient norm is not finite (without fp16 scaling). Call only while
  // steps_done() < total_steps().
  // With `phases`, its phases are timed (synchronizing in between).
  StepResult step(StepPhases* phases = nullptr);
  // After each step: its metrics line (every log.every), then the periodic evaluation and
  // checkpoint (eval.every, checkpoint.every).
  void after_step(const StepResult& result);
  // Whether any rank has been asked to stop (a signal, or request_stop): a collective, so
  // every rank must ask at the same point.
  bool stop_requested();
  void request_stop() { stop_requested_here_ = true; }
  // The end: a checkpoint unless the last step is saved, the final evaluation (not after a
  // stop), summary.json and the last metrics record (rank 0).
  TrainResult finish(bool interrupted, int stop_signal);
  // Where events go; the console and metrics.jsonl are there already (rank 0).
  Reporter& reporter();
  // The backend the model runs on (the profiler with profile_ops) and the per-op timings.
  Backend& backend();
  std::vector<OpTiming> op_timings() const;
  void reset_op_timings();
  const GPTConfig& model_config() const;
  // The fp32 master weights, arena order (parameter_layout), copied to the host.
  std::vector<float> parameters() const;

 private:
  struct Run;
  std::unique_ptr<Run> run_;
  bool stop_requested_here_ = false;
};

// Runs training for a validated recipe: a Trainer's steps until run.steps or a stop signal
// (SIGINT, SIGTERM, SIGUSR1). Throws lmt::Error for user errors.
TrainResult train(const LoadedRecipe& recipe, const TrainOptions& options);

// The model shape for a recipe; vocab from the data when model.vocab_size is 0. `where`
// names the recipe in errors.
GPTConfig resolve_model_config(const Recipe& recipe, int64_t data_vocab_size,
                               const std::string& where);

// The run directory a recipe writes to (run.out_dir / run.name).
std::string run_directory(const Recipe& recipe);

// Where its checkpoints go (checkpoint.dir, or <run directory>/checkpoints).
std::string checkpoint_directory(const Recipe& recipe);

}  // namespace lmt
