#include "train/trainer.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

#include "lmt_build_info.h"
#include "core/error.h"
#include "core/strings.h"
#include "core/file_io.h"
#include "core/gpu_runtime.h"
#include "data/sampler.h"
#include "parallel/process_group.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "model/loss_scaler.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/grad_buckets.h"
#include "train/device.h"
#include "train/divergence_guard.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/model_source.h"
#include "train/seq_len_schedule.h"
#include "train/tensorboard.h"
#include "train/step.h"
#include "train/metrics.h"
#include "train/op_profiler.h"
#include "train/reporter.h"
#include "train/train_data.h"

namespace lmt {
namespace {

// CUDA context, cuBLASLt workspace and kernel scratch, on top of the planned tensors.
constexpr double kCudaReserveBytes = 1.0 * (1 << 30);

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int signum) {
  g_stop_signal.store(signum);
  // A second Ctrl-C kills at once. SIGTERM and SIGUSR1 stay caught: schedulers and tools such
  // as timeout(1) may deliver them twice (to the process and to its group), and the checkpoint
  // must still be written.
  if (signum == SIGINT) std::signal(signum, SIG_DFL);
}

class StopSignalScope {
 public:
  StopSignalScope() {
    g_stop_signal.store(0);
    previous_int_ = std::signal(SIGINT, on_stop_signal);
    previous_term_ = std::signal(SIGTERM, on_stop_signal);
    previous_usr1_ = std::signal(SIGUSR1, on_stop_signal);
  }
  ~StopSignalScope() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
    std::signal(SIGUSR1, previous_usr1_);
  }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
  void (*previous_usr1_)(int);
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

CheckpointState::DataState data_state(const data::WindowSampler& sampler, const data::TokenDataset& train) {
  CheckpointState::DataState state;
  state.epoch = sampler.position().epoch;
  state.shard = sampler.position().shard;
  state.window = sampler.position().window;
  state.window_tokens = sampler.window_tokens();
  state.num_files = static_cast<int64_t>(train.files.size());
  state.num_tokens = static_cast<int64_t>(train.num_tokens());
  return state;
}

// Continues the data stream where the checkpoint left it, provided the checkpoint was taken on
// the same dataset and window grid; anything else would silently repeat or skip data.
void restore_data_position(data::WindowSampler& sampler, const data::TokenDataset& train,
                           const CheckpointState::DataState& saved, const std::string& dir) {
  const CheckpointState::DataState now = data_state(sampler, train);
  std::vector<std::string> differing;
  if (saved.num_files != now.num_files)
    differing.push_back(fmt::format("files: {} then, {} now", saved.num_files, now.num_files));
  if (saved.num_tokens != now.num_tokens)
    differing.push_back(fmt::format("tokens: {} then, {} now", saved.num_tokens, now.num_tokens));
  if (saved.window_tokens != now.window_tokens)
    differing.push_back(fmt::format("run.seq_len: {} then, {} now", saved.window_tokens, now.window_tokens));
  if (!differing.empty())
    throw Error(fmt::format("checkpoint '{}' was taken on different training data ({}); its data "
                            "position does not apply to {}. Resume with the same data and "
                            "run.seq_len, or start a new run",
                            dir, fmt::join(differing, "; "), train.key));
  try {
    sampler.seek({saved.epoch, saved.shard, saved.window});
  } catch (const Error& e) {
    throw Error(fmt::format("checkpoint '{}': {}", dir, e.what()));
  }
}

}  // namespace

std::string run_directory(const Recipe& recipe) {
  return (std::filesystem::path(recipe.run.out_dir) / recipe.run.name).string();
}

std::string checkpoint_directory(const Recipe& recipe) {
  if (!recipe.checkpoint.dir.empty()) return recipe.checkpoint.dir;
  return (std::filesystem::path(run_directory(recipe)) / "checkpoints").string();
}

// Everything a run holds, in the order it is built.
struct Trainer::Run {
  Run(const LoadedRecipe& loaded, const TrainOptions& options);

  void open_backend();
  void open_run_directory();
  void build_model();
  void build_schedules();
  void announce();
  int64_t tokens_before(int64_t step) const;
  void evaluate(int64_t step);
  void save(int64_t done);
  std::string last_good_checkpoint() const;
  [[noreturn]] void diverged(int64_t step, double loss, double norm, const std::string& why,
                             const DivergenceGuard::Verdict& verdict);

  const LoadedRecipe& loaded;
  const Recipe& r;
  const TrainOptions options;
  std::unique_ptr<ProcessGroup> single;
  ProcessGroup& group;
  const bool leader;

  TrainData data;
  GPTConfig cfg;
  const int B, T;
  const int64_t accum;
  data::WindowSampler sampler;
  const std::string run_dir, metrics_path, checkpoint_root;
  std::optional<LoadedCheckpoint> resumed;
  std::vector<float> pretrained;  // model.init_from, fitted to cfg; empty: random initialization
  std::string pretrained_notice;

  BackendChoice choice;
  std::unique_ptr<ProfilingBackend> profiler;  // profile_ops: wraps choice.backend
  Backend& backend() { return profiler ? *profiler : *choice.backend; }
  // Gradients and parameters live in device memory on CUDA: their collectives go through
  // NCCL; the host-side ones (loss, stop flag, barrier) stay on the job's group.
  std::unique_ptr<ProcessGroup> device_group;
  ProcessGroup* arena_group = nullptr;
  std::string recipe_yaml;
  Reporter reporter;

  std::unique_ptr<GPT> model;
  std::unique_ptr<DataParallel> parallel;
  std::unique_ptr<AdamW> optimizer;
  std::optional<LossScaler> scaler;
  std::optional<SeqLenSchedule> seq_len;
  std::optional<LrSchedule> schedule;
  DivergenceGuard guard;
  int64_t tokens_per_step = 0;  // at the full length
  bool lr_in_tokens = false;
  double full_step_tokens = 0.0;

  int64_t start_step = 0, steps_done = 0, last_saved_step = 0, tokens_seen = 0;
  bool already_complete = false;  // resumed at or past run.steps: nothing was built or written
  std::vector<int32_t> inputs, targets;
  TrainResult result;
  Clock::time_point start;
  double timed_seconds = 0.0;  // excludes the first step (warm-up effects)
  int64_t timed_steps = 0;
  double window_seconds = 0.0, window_flops = 0.0;
  int64_t window_steps = 0, window_tokens = 0;
};

Trainer::Run::Run(const LoadedRecipe& loaded_recipe, const TrainOptions& train_options)
    : loaded(loaded_recipe),
      r(loaded_recipe.recipe),
      options(train_options),
      single(make_single_process_group()),
      group(options.group ? *options.group : *single),
      leader(options.rank == 0),
      // Everything that can fail on bad input happens before the run directory is touched.
      data(load_train_data(r.data, r.eval, r.model.vocab_size, r.run.seq_len)),
      cfg(resolve_model_config(r, data.vocab_size, loaded.path)),
      B(static_cast<int>(r.run.micro_batch_size)),
      T(static_cast<int>(r.run.seq_len)),
      accum(r.run.grad_accum_steps),
      sampler(data.train, T, static_cast<uint64_t>(r.run.seed)),
      run_dir(run_directory(r)),
      metrics_path((std::filesystem::path(run_dir) / "metrics.jsonl").string()),
      checkpoint_root(checkpoint_directory(r)),
      guard(r.run, r.optimizer.grad_clip) {
  // A checkpoint to resume from is found and fully verified before anything is written.
  if (!options.resume.empty() && !options.benchmark) {
    if (auto dir = resolve_checkpoint(checkpoint_root, options.resume)) {
      resumed = load_checkpoint_state(*dir, cfg);  // its tensors are read into the model below
      restore_data_position(sampler, data.train, resumed->state.data, *dir);
    }
  }
  // Fine-tuning starts from model.init_from, unless a resume continues the fine-tuning run.
  if (!resumed && !r.model.init_from.empty() && !options.benchmark)
    pretrained = fit_pretrained(load_pretrained(r.model.init_from), cfg, loaded.path, pretrained_notice);
  // A finished run resumed (a requeued job's --resume auto): nothing to train and nothing to
  // write; summary.json stays as the run left it.
  if (resumed && resumed->state.step >= r.run.steps) {
    already_complete = true;
    start_step = steps_done = last_saved_step = resumed->state.step;
    result.run_dir = run_dir;
    result.steps_done = start_step;
    result.already_complete = true;
    result.checkpoint = resumed->dir;
    return;
  }
  if (std::filesystem::exists(metrics_path) && !options.overwrite && !resumed && !options.benchmark) {
    if (!options.resume.empty()) {
      // --resume auto found no `latest`: advising --resume auto again would go round in circles.
      const auto newest = newest_checkpoint(checkpoint_root);
      throw Error(fmt::format(
          "run directory '{}' already holds a run (metrics.jsonl) but {} has no 'latest' checkpoint to resume; {}"
          "pass --overwrite to start the run over, or choose another name with --set run.name=...",
          run_dir, checkpoint_root,
          newest ? fmt::format("its newest complete checkpoint is {}: resume it with --resume {}, or ", *newest, *newest)
                 : std::string()));
    }
    throw Error(fmt::format("run directory '{}' already holds a run (metrics.jsonl); resume it with "
                            "--resume auto, pass --overwrite to replace it, or choose another name "
                            "with --set run.name=...",
                            run_dir));
  }
  // Output locations that cannot be created fail here, before a byte is written anywhere.
  if (leader && !options.benchmark) {
    check_directory_creatable(run_dir, "run directory");
    check_directory_creatable(checkpoint_root, "checkpoint directory");
  }
  open_backend();
  open_run_directory();
  build_model();
  build_schedules();
  announce();
  inputs.resize(static_cast<size_t>(B) * T);
  targets.resize(inputs.size());
  result.run_dir = run_dir;
  result.loss_floor = data.loss_floor;
  steps_done = last_saved_step = start_step;
  start = Clock::now();
}

void Trainer::Run::open_backend() {
  choice = make_backend(backend_request(r, cfg, options.device, static_cast<int>(options.local_rank), loaded.path));
  if (choice.cuda && group.size() > 1) {
    if (!options.store)
      throw Error("a CUDA run of several ranks needs the job's rendezvous store; start it with `lmtrain launch`");
    device_group = gpu_runtime().make_group(*options.store, static_cast<int>(options.rank), group.size(),
                                            choice.cuda_device, "nccl/", options.collective_timeout,
                                            choice.backend.get());
  }
  arena_group = device_group ? device_group.get() : &group;
  if (options.profile_ops) profiler = std::make_unique<ProfilingBackend>(*choice.backend);
  // Fail before allocating (and before touching the run directory) when the run cannot fit: in
  // the GPU's memory (less what CUDA keeps for itself), or in the host's on the CPU.
  const double needed =
      estimate_memory(cfg, B, T, r.precision.dtype).total() + (choice.cuda ? static_cast<double>(kCudaReserveBytes) : 0.0);
  const double available =
      choice.cuda ? static_cast<double>(choice.device_memory)
                  : static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (available > 0 && needed > available)
    throw Error(fmt::format("{}: this run needs about {:.1f} GiB {} {:.1f} GiB; lower run.micro_batch_size (raising "
                            "run.grad_accum_steps keeps the global batch), run.seq_len or the model's size; `lmtrain "
                            "plan {}` shows the breakdown",
                            loaded.path, needed / (1 << 30),
                            choice.cuda ? fmt::format("on GPU {}, which has", choice.cuda_device)
                                        : std::string("of memory and this machine has"),
                            available / (1 << 30), loaded.path));
}

void Trainer::Run::open_run_directory() {
  recipe_yaml = recipe_to_yaml(r);
  if (options.benchmark) return;
  // Every rank has checked the run directory before rank 0 writes into it.
  group.barrier();
  if (!leader) return;
  create_directories_checked(run_dir, "run directory");
  // A replaced run must not leave its old summary next to the new metrics.
  std::filesystem::remove(std::filesystem::path(run_dir) / "summary.json");
  write_file_atomic((std::filesystem::path(run_dir) / "recipe.yaml").string(), recipe_yaml);
  if (options.print_progress) reporter.add_sink(make_console_sink());
  reporter.add_sink(make_jsonl_sink(metrics_path, /*append=*/resumed.has_value()));
  if (r.log.tensorboard || !options.tensorboard_dir.empty()) {
    const std::string dir = options.tensorboard_dir.empty()
                                ? (std::filesystem::path(run_dir) / "tensorboard").string()
                                : options.tensorboard_dir;
    reporter.add_sink(make_tensorboard_sink(
        dir, resumed ? std::optional<int64_t>(resumed->state.step) : std::nullopt));
  }
}

void Trainer::Run::build_model() {
  Backend& backend = this->backend();
  model = std::make_unique<GPT>(backend, cfg);
  parallel = std::make_unique<DataParallel>(group, static_cast<int>(r.distributed.zero_stage),
                                            model->num_param_storage(), backend, arena_group);
  // Gradients are averaged in buckets, during the backward pass when overlap_comm says so: on a
  // communication thread for host gradients (Gloo), on NCCL's stream ordered by events for a
  // GPU's.
  if (!choice.cuda || arena_group->asynchronous()) {
    const auto bucket_numel = static_cast<size_t>(std::max(1.0, r.distributed.bucket_mb * 1e6 / sizeof(float)));
    parallel->use_buckets(plan_grad_buckets(cfg, bucket_numel), r.distributed.overlap_comm);
  }
  optimizer = std::make_unique<AdamW>(backend, r.optimizer, model->layout(), model->num_param_storage(), parallel->shard_begin(),
                                      parallel->shard_end());
  if (resumed) {
    // Straight from the files into the model and the optimizer, a piece at a time. Checkpoints
    // hold the whole optimizer state; a ZeRO-1 rank reads only its shard of it.
    read_checkpoint_arena(resumed->dir, cfg, CheckpointArena::kParams, 0, model->num_param_storage(),
                          [&](size_t first, const float* data, size_t count) {
                            model->copy_parameters_from_host(first, count, data);
                          });
    model->parameters_changed();
    const size_t begin = parallel->shard_begin(), end = parallel->shard_end();
    for (const bool second : {false, true})
      read_checkpoint_arena(resumed->dir, cfg, second ? CheckpointArena::kSecondMoment : CheckpointArena::kFirstMoment,
                            begin, end - begin, [&](size_t first, const float* data, size_t count) {
                              optimizer->copy_moment_from_host(second, first - begin, count, data);
                            });
    optimizer->set_step_count(resumed->state.optimizer_step);
    start_step = resumed->state.step;
  } else if (!pretrained.empty()) {
    model->set_parameters(pretrained);
    pretrained = {};
  } else {
    model->init_weights(static_cast<uint64_t>(r.run.seed), r.model.init_std);
  }
  // Every rank initializes (or loads) the same weights; the broadcast makes sure of it.
  if (group.size() > 1) {
    arena_group->broadcast(model->params(), model->num_param_storage(), 0);
    model->parameters_changed();
  }
  // fp16: dynamic loss scaling; its state continues from a checkpoint of an fp16 run.
  scaler.emplace(r.precision);
  if (resumed && resumed->state.loss_scaler && scaler->enabled()) scaler->set_state(*resumed->state.loss_scaler);
}

// Tokens seen before `step` (0-based), with the sequence length of each step.
int64_t Trainer::Run::tokens_before(int64_t step) const {
  if (!seq_len->enabled()) return step * tokens_per_step;
  int64_t tokens = 0;
  for (int64_t s = 0; s < step; ++s) tokens += r.run.global_batch_size * seq_len->at(s);
  return tokens;
}

void Trainer::Run::build_schedules() {
  seq_len.emplace(r.seq_len_schedule, T);
  tokens_per_step = r.run.global_batch_size * T;
  // schedule.unit tokens: positions are tokens seen in units of full-length steps, so warmup
  // and decay keep their meaning while the sequence length grows.
  lr_in_tokens = r.schedule.unit == ScheduleUnit::kTokens;
  full_step_tokens = static_cast<double>(tokens_per_step);
  schedule.emplace(r.schedule, r.optimizer.lr,
                   lr_in_tokens ? static_cast<double>(tokens_before(r.run.steps)) / full_step_tokens
                                : static_cast<double>(r.run.steps));
  tokens_seen = tokens_before(start_step);
}

void Trainer::Run::announce() {
  if (!choice.notice.empty()) reporter.notice(choice.notice);
  if (resumed) {
    reporter.notice(fmt::format("resumed from {} at step {}", resumed->dir, start_step));
    for (const auto& change : recipe_differences(resumed->state.recipe_yaml, recipe_yaml))
      reporter.notice(fmt::format("  changed since that checkpoint: {}", change));
    if (resumed->state.seed != r.run.seed)
      reporter.notice(fmt::format("  note: run.seed {} differs from the checkpoint's {}; the data order changes",
                                  r.run.seed, resumed->state.seed));
  }
  if (!resumed && !r.model.init_from.empty() && !options.benchmark) {
    reporter.notice(fmt::format("init_from: weights of {} (step 0, fresh optimizer and schedule)", r.model.init_from));
    if (!pretrained_notice.empty()) reporter.notice(pretrained_notice);
  }
  reporter.notice(fmt::format("lmtrain {} | run {} | backend {}", LMTRAIN_VERSION, run_dir, choice.backend->name()));
  reporter.notice(fmt::format("model: {} layers, {} heads, {} channels, vocab {} (padded {}), {} parameters{}",
                              cfg.num_layers, cfg.num_heads, cfg.channels, cfg.vocab_size, cfg.padded_vocab_size,
                              with_commas(parameter_count(cfg)),
                              cfg.recompute == Recompute::kNone
                                  ? std::string()
                                  : fmt::format(", model.recompute {}", name_of(cfg.recompute))));
  reporter.notice(fmt::format("batch: {} seq x {} tokens x {} accum x {} rank = {} tokens/step; {} steps", B, T,
                              accum, options.world_size, with_commas(tokens_per_step), r.run.steps));
  if (seq_len->enabled())
    reporter.notice(fmt::format("seq_len_schedule: {} from {} to {} tokens (evaluation at {})",
                                name_of(r.seq_len_schedule.type), seq_len->at(0), T, T));
  reporter.notice(fmt::format("data: {}", data.description));
  nlohmann::json start_record = {
      {"event", resumed ? "resume" : "start"},
      {"step", start_step},
      {"parameters", parameter_count(cfg)},
      {"tokens_per_step", tokens_per_step},
      {"steps", r.run.steps},
      {"init_from", r.model.init_from.empty() || resumed ? nlohmann::json() : nlohmann::json(r.model.init_from)},
      {"restart", options.restart},
      {"loss_floor", data.loss_floor ? nlohmann::json(*data.loss_floor) : nlohmann::json()}};
  // Under torchrun every restart of the worker group starts every worker again; the record says
  // which attempt wrote what follows it.
  if (options.torchrun_restart >= 0) {
    reporter.notice(fmt::format("torchrun: restart {} of at most {} (TORCHELASTIC_RESTART_COUNT)",
                                options.torchrun_restart, options.torchrun_max_restarts));
    start_record["torchrun_restart"] = options.torchrun_restart;
  }
  reporter.emit({resumed ? "resume" : "start", start_record, ""});
}

// The validation split and every eval.sets entry; a collective (every rank evaluates its part).
void Trainer::Run::evaluate(int64_t step) {
  if (data.val) {
    const auto t0 = Clock::now();
    const double val_loss = evaluate_distributed(*model, *data.val, r.eval.batches, B, T, group);
    result.final_val_loss = val_loss;
    reporter.eval(step, r.run.steps, "", val_loss, data.loss_floor, seconds_since(t0) * 1e3);
  }
  for (auto& [name, set] : data.extra_val) {
    const auto t0 = Clock::now();
    const double loss = evaluate_distributed(*model, set, r.eval.batches, B, T, group);
    result.final_set_losses[name] = loss;
    reporter.eval(step, r.run.steps, name, loss, std::nullopt, seconds_since(t0) * 1e3);
  }
}

void Trainer::Run::save(int64_t done) {
  CheckpointState state;
  state.step = done;
  state.tokens_seen = tokens_seen;
  state.world_size = options.world_size;
  state.seed = r.run.seed;
  state.data = data_state(sampler, data.train);
  state.optimizer_step = optimizer->step_count();
  if (scaler->enabled()) state.loss_scaler = scaler->state();
  state.model = cfg;
  state.recipe_yaml = recipe_yaml;
  last_saved_step = done;
  // The tensors go to the file a piece at a time, so the host never holds a whole copy of the
  // model or a moment. Rank 0 writes; under ZeRO-1 every rank takes part in streaming the
  // moments (each piece broadcast by the rank that owns it), in the order save_checkpoint asks.
  auto moment = [this](bool second) -> ArenaStream {
    return [this, second](const ArenaSink& sink) {
      parallel->stream_gathered(
          [&](size_t first, size_t count, float* dst) { optimizer->copy_moment_to_host(second, first, count, dst); },
          sink, kCheckpointPiece);
    };
  };
  if (!leader) {
    moment(false)(nullptr);
    moment(true)(nullptr);
    return;
  }
  const ArenaStream params = [this](const ArenaSink& sink) {
    const size_t n = model->num_param_storage();
    std::vector<float> piece(std::min(kCheckpointPiece, n));
    for (size_t first = 0; first < n; first += kCheckpointPiece) {
      const size_t count = std::min(kCheckpointPiece, n - first);
      model->copy_parameters_to_host(first, count, piece.data());
      sink(piece.data(), count);
    }
  };
  const auto t0 = Clock::now();
  const std::string dir = save_checkpoint(checkpoint_root, state, CheckpointStreams{params, moment(false), moment(true)},
                                          r.checkpoint.keep_last, r.checkpoint.keep_every);
  reporter.checkpoint(done, r.run.steps, dir, seconds_since(t0) * 1e3);
}

std::string Trainer::Run::last_good_checkpoint() const {
  if (last_saved_step == 0) return "none (no checkpoint was saved before it)";
  if (resumed && last_saved_step == resumed->state.step) return resumed->dir;
  return checkpoint_step_directory(checkpoint_root, last_saved_step);
}

// Ends the run at `step` (0-based), whose update was not applied: the metrics' end record, then
// the message with the figures and the checkpoint to go back to.
void Trainer::Run::diverged(int64_t step, double loss, double norm, const std::string& why,
                            const DivergenceGuard::Verdict& verdict) {
  reporter.emit({"end",
                 {{"event", "end"},
                  {"steps", step},
                  {"diverged", true},
                  {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json()},
                  {"divergence_skipped_steps", guard.skipped_steps()}},
                 ""});
  throw Error(fmt::format(
      "training diverged at step {}: {}. Loss {:.6g} (running mean {:.6g}), grad norm {:.6g} (running mean "
      "{:.6g}); the parameters were not updated and no checkpoint was written. Last good checkpoint: {}. "
      "Lower optimizer.lr, raise schedule.warmup_steps or set optimizer.grad_clip (run.divergence and "
      "run.divergence_factor set this guard)",
      step + 1, why, loss, verdict.loss_mean, norm, verdict.grad_norm_mean, last_good_checkpoint()));
}

Trainer::Trainer(const LoadedRecipe& loaded, const TrainOptions& options) {
  if (options.world_size > 1 && (options.group == nullptr || options.group->size() != options.world_size))
    throw Error(fmt::format("WORLD_SIZE={}: multi-process training needs a process group; start the "
                            "workers with `lmtrain launch`", options.world_size));
  run_ = std::make_unique<Run>(loaded, options);
}

Trainer::~Trainer() = default;

int64_t Trainer::steps_done() const { return run_->steps_done; }
int64_t Trainer::total_steps() const { return run_->r.run.steps; }
bool Trainer::already_complete() const { return run_->already_complete; }
Reporter& Trainer::reporter() { return run_->reporter; }

Backend& Trainer::backend() { return run_->backend(); }
std::vector<OpTiming> Trainer::op_timings() const {
  return run_->profiler ? run_->profiler->timings() : std::vector<OpTiming>();
}
void Trainer::reset_op_timings() {
  if (run_->profiler) run_->profiler->reset();
}
const GPTConfig& Trainer::model_config() const { return run_->cfg; }
std::vector<float> Trainer::parameters() const { return run_->model->get_parameters(); }

StepResult Trainer::step(StepPhases* phases) {
  Run& s = *run_;
  const Recipe& r = s.r;
  const int64_t step = s.steps_done;
  LMT_CHECK(step < r.run.steps, fmt::format("Trainer::step after the last step ({})", r.run.steps));
  const auto t0 = Clock::now();
  StepResult out;
  out.step = step + 1;
  out.seq_len = static_cast<int>(s.seq_len->at(step));
  out.tokens = r.run.global_batch_size * out.seq_len;
  const std::vector<data::WindowRef> windows = s.sampler.next(static_cast<size_t>(r.run.global_batch_size));
  if (phases) phases->data_ms += seconds_since(t0) * 1e3;
  const double loss_scale = s.scaler->scale();
  double loss = accumulate_gradients(*s.model, s.data.train,
                                     data::rank_slice(windows, static_cast<int>(s.options.rank), s.group.size()),
                                     s.accum, s.B, out.seq_len, s.inputs, s.targets, phases,
                                     static_cast<float>(loss_scale), s.parallel->backward_hook(s.model->grads()));
  const auto optimizer_start = Clock::now();
  // The mean over ranks of each rank's mean gradient is the global batch's mean gradient.
  const double scaled_norm = s.parallel->reduce_gradients(s.model->grads());
  if (phases) {
    phases->comm_ms += s.parallel->last_comm_times().comm_ms;
    phases->comm_wait_ms += s.parallel->last_comm_times().wait_ms;
  }
  const double norm = scaled_norm / loss_scale;
  loss = s.parallel->average(loss);
  out.loss = loss;
  out.grad_norm = norm;
  s.steps_done = out.step;
  // Applied or skipped, a step consumes its data (as in DeepSpeed) and is timed.
  auto done = [&] {
    s.tokens_seen += out.tokens;
    out.seconds = seconds_since(t0);
    if (phases) phases->optimizer_ms += seconds_since(optimizer_start) * 1e3;
    return out;
  };
  if (s.scaler->enabled() && !s.scaler->update(std::isfinite(loss) && std::isfinite(scaled_norm))) {
    // fp16 overflow: this step's update is skipped and the scale has dropped. Every rank sees
    // the same reduced values.
    out.applied = false;
    s.reporter.overflow(out.step, r.run.steps, loss_scale, s.scaler->scale(), s.scaler->skipped_steps());
    return done();
  }
  // The divergence guard (run.divergence): a runaway step is skipped like an overflow, or ends
  // the run before its update reaches the parameters.
  const DivergenceGuard::Verdict verdict = s.guard.judge(loss, norm);
  if (verdict.diverged && s.guard.mode() == Divergence::kSkip) {
    const int64_t in_a_row = s.guard.skip();
    if (in_a_row >= s.guard.max_skips())
      s.diverged(step, loss, norm,
                 fmt::format("{} ({} steps skipped in a row, run.divergence_max_skips {})", verdict.why, in_a_row,
                             s.guard.max_skips()),
                 verdict);
    out.applied = false;
    s.reporter.divergence_skip(out.step, r.run.steps, loss, verdict.loss_mean, norm, verdict.grad_norm_mean,
                               verdict.why, s.guard.skipped_steps());
    return done();
  }
  if (verdict.diverged) s.diverged(step, loss, norm, verdict.why, verdict);
  if (!std::isfinite(loss) || !std::isfinite(norm))  // run.divergence: off
    s.diverged(step, loss, norm, "loss or grad norm is not finite", verdict);
  s.guard.accept(loss, norm);
  out.lr = s.schedule->at(s.lr_in_tokens ? static_cast<double>(s.tokens_seen) / s.full_step_tokens
                                         : static_cast<double>(step));
  s.optimizer->step(s.model->params(), s.model->grads(), static_cast<float>(out.lr), norm,
                    static_cast<float>(1.0 / loss_scale));
  s.parallel->gather_parameters(s.model->params());
  s.model->parameters_changed();
  s.backend().synchronize();
  s.result.final_loss = loss;
  return done();
}

void Trainer::after_step(const StepResult& step) {
  Run& s = *run_;
  const Recipe& r = s.r;
  const int64_t done = step.step;
  if (step.applied) {
    if (done > 1) {
      s.timed_seconds += step.seconds;
      ++s.timed_steps;
    }
    s.window_seconds += step.seconds;
    ++s.window_steps;
    s.window_tokens += step.tokens;
    s.window_flops += flops_per_token(s.cfg, step.seq_len) * static_cast<double>(step.tokens);
    if (done == 1 || done % r.log.every == 0 || done == r.run.steps) {
      StepReport report;
      report.step = done;
      report.total_steps = r.run.steps;
      report.loss = step.loss;
      report.lr = step.lr;
      report.grad_norm = step.grad_norm;
      report.ms = s.window_seconds / static_cast<double>(s.window_steps) * 1e3;
      report.tokens_per_s = static_cast<double>(s.window_tokens) / s.window_seconds;
      if (r.log.peak_tflops > 0) report.mfu = s.window_flops / s.window_seconds / (r.log.peak_tflops * 1e12);
      const double avg = s.timed_steps > 0 ? s.timed_seconds / s.timed_steps : step.seconds;
      report.eta_s = avg * static_cast<double>(r.run.steps - done);
      report.tokens_seen = s.tokens_seen;
      report.seq_len = step.seq_len;
      report.show_seq_len = s.seq_len->enabled();
      if (s.scaler->enabled()) report.loss_scale = s.scaler->scale();
      report.elapsed_s = seconds_since(s.start);
      s.reporter.step(report);
      s.window_seconds = s.window_flops = 0.0;
      s.window_steps = s.window_tokens = 0;
    }
  }
  // After each step, applied or skipped: the periodic evaluation and checkpoint.
  if (r.eval.every > 0 && done % r.eval.every == 0 && done != r.run.steps) s.evaluate(done);
  if (r.checkpoint.every > 0 && done % r.checkpoint.every == 0) s.save(done);
}

// Ranks stop together: a stop seen by any rank stops all after the same step.
bool Trainer::stop_requested() {
  float stop = g_stop_signal.load() != 0 || stop_requested_here_ ? 1.0f : 0.0f;
  if (run_->group.size() > 1) run_->group.all_reduce(&stop, 1, ReduceOp::kSum);
  return stop > 0;
}

TrainResult Trainer::finish(bool interrupted, int stop_signal) {
  Run& s = *run_;
  if (s.already_complete) return s.result;
  TrainResult& result = s.result;
  result.interrupted = interrupted;
  result.stop_signal = stop_signal;
  result.steps_done = s.steps_done;
  // A checkpoint at the end and on a stop signal, unless this step is already saved.
  if (result.steps_done > s.last_saved_step) s.save(result.steps_done);
  if (!s.leader) {
    result.seconds = seconds_since(s.start);
    if (!result.interrupted) s.evaluate(result.steps_done);  // its collectives pair with rank 0's
    return result;
  }
  if (result.interrupted) {
    s.reporter.notice(fmt::format("stopped by signal {} after step {}; skipping the final evaluation", stop_signal,
                                  result.steps_done));
  } else {
    s.evaluate(result.steps_done);
  }
  result.seconds = seconds_since(s.start);
  nlohmann::json summary = {
      {"event", "end"},
      {"steps", result.steps_done},
      {"loss", result.final_loss},
      {"val_loss", result.final_val_loss ? nlohmann::json(*result.final_val_loss) : nlohmann::json()},
      {"loss_floor", s.data.loss_floor ? nlohmann::json(*s.data.loss_floor) : nlohmann::json()},
      {"set_losses", result.final_set_losses},
      {"seconds", result.seconds},
      {"interrupted", result.interrupted},
      {"skipped_steps", s.scaler->skipped_steps()},
      {"divergence_skipped_steps", s.guard.skipped_steps()},
      {"activation_bytes", s.model->activation_arena_bytes()}};
  s.reporter.emit({"end", summary, ""});
  write_file_atomic((std::filesystem::path(s.run_dir) / "summary.json").string(), summary.dump(2) + "\n");
  s.reporter.notice(fmt::format(
      "{}: {} steps in {} | final loss {:.4f}{}{} | metrics {}", result.interrupted ? "stopped" : "done",
      result.steps_done, human_duration(result.seconds), result.final_loss,
      result.final_val_loss ? fmt::format(" | val loss {:.4f}", *result.final_val_loss) : std::string(),
      s.data.loss_floor ? fmt::format(" | floor {:.4f}", *s.data.loss_floor) : std::string(), s.metrics_path));
  return result;
}

TrainResult train(const LoadedRecipe& loaded, const TrainOptions& options) {
  Trainer trainer(loaded, options);
  if (trainer.already_complete()) return trainer.finish(false, 0);
  StopSignalScope stop_scope;
  bool interrupted = false;
  while (trainer.steps_done() < trainer.total_steps()) {
    if (trainer.stop_requested()) {
      interrupted = true;
      break;
    }
    trainer.after_step(trainer.step());
  }
  // Also a signal during the last step (asked of all ranks together, so they agree).
  if (!interrupted && trainer.stop_requested()) interrupted = true;
  return trainer.finish(interrupted, g_stop_signal.load());
}

GPTConfig resolve_model_config(const Recipe& recipe, int64_t data_vocab_size, const std::string& where) {
  int64_t vocab = recipe.model.vocab_size;
  if (vocab == 0) vocab = data_vocab_size;
  if (vocab < data_vocab_size)
    throw Error(fmt::format("{}: model.vocab_size {} is smaller than the data's vocabulary {}; "
                            "set model.vocab_size: 0 to take it from the data",
                            where, vocab, data_vocab_size));
  return GPTConfig::from(recipe.model, vocab);
}

}  // namespace lmt
