// The recipe: a tree of plain structs, one per component, parsed once from YAML. Each struct
// lists its fields in visit(), which drives parsing, printing (--print-config), --set overrides
// and the key reference test, so a field is declared exactly once; a choice is an enum with its
// table of names beside it (core/named_enum.h). Each struct checks its own ranges in validate()
// (core/recipe_validate.cpp); validate_recipe adds the rules across sections. Components take
// their own section (GPTConfig::from(ModelConfig), AdamW(OptimizerConfig), ...). Defaults here
// are the documented defaults (docs/recipes.md).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/named_enum.h"

namespace lmt {

class ConfigCheck;  // collects a section's problems (core/recipe_validate.cpp)

// ---- the choice keys -----------------------------------------------------------------------

enum class DeviceKind { kAuto, kCpu, kCuda };
inline constexpr EnumName<DeviceKind> kDeviceKindNames[] = {
    {DeviceKind::kAuto, "auto"}, {DeviceKind::kCpu, "cpu"}, {DeviceKind::kCuda, "cuda"}};
constexpr const auto& enum_names(DeviceKind) { return kDeviceKindNames; }

enum class DataSource { kShards, kSynthetic };
inline constexpr EnumName<DataSource> kDataSourceNames[] = {
    {DataSource::kShards, "shards"}, {DataSource::kSynthetic, "synthetic"}};
constexpr const auto& enum_names(DataSource) { return kDataSourceNames; }

// The layout of token files (data/token_file.h).
enum class ShardFormat { kLmtrain, kLlmc, kNanogpt };
inline constexpr EnumName<ShardFormat> kShardFormatNames[] = {
    {ShardFormat::kLmtrain, "lmtrain"}, {ShardFormat::kLlmc, "llmc"}, {ShardFormat::kNanogpt, "nanogpt"}};
constexpr const auto& enum_names(ShardFormat) { return kShardFormatNames; }

enum class OptimizerKind { kAdamW };
inline constexpr EnumName<OptimizerKind> kOptimizerKindNames[] = {{OptimizerKind::kAdamW, "adamw"}};
constexpr const auto& enum_names(OptimizerKind) { return kOptimizerKindNames; }

enum class ScheduleUnit { kSteps, kTokens };
inline constexpr EnumName<ScheduleUnit> kScheduleUnitNames[] = {
    {ScheduleUnit::kSteps, "steps"}, {ScheduleUnit::kTokens, "tokens"}};
constexpr const auto& enum_names(ScheduleUnit) { return kScheduleUnitNames; }

enum class LrDecay { kCosine, kLinear, kConstant, kWsd };
inline constexpr EnumName<LrDecay> kLrDecayNames[] = {
    {LrDecay::kCosine, "cosine"}, {LrDecay::kLinear, "linear"}, {LrDecay::kConstant, "constant"}, {LrDecay::kWsd, "wsd"}};
constexpr const auto& enum_names(LrDecay) { return kLrDecayNames; }

enum class SeqLenScheduleKind { kNone, kFixedLinear, kFixedRoot, kFixedDiscrete };
inline constexpr EnumName<SeqLenScheduleKind> kSeqLenScheduleKindNames[] = {
    {SeqLenScheduleKind::kNone, "none"},
    {SeqLenScheduleKind::kFixedLinear, "fixed_linear"},
    {SeqLenScheduleKind::kFixedRoot, "fixed_root"},
    {SeqLenScheduleKind::kFixedDiscrete, "fixed_discrete"}};
constexpr const auto& enum_names(SeqLenScheduleKind) { return kSeqLenScheduleKindNames; }

// What the trainer does with a step whose loss or gradient norm runs away from its recent
// history (train/divergence_guard.h): end the run, drop the step's update, or nothing.
enum class Divergence { kStop, kSkip, kOff };
inline constexpr EnumName<Divergence> kDivergenceNames[] = {
    {Divergence::kStop, "stop"}, {Divergence::kSkip, "skip"}, {Divergence::kOff, "off"}};
constexpr const auto& enum_names(Divergence) { return kDivergenceNames; }

// Which activations the backward pass recomputes instead of keeping from the forward
// (model/gpt_tensors.h, docs/architecture.md#activation-recompute-modelrecompute): none, the GELU output, or
// every block's activations but its input. Losses and gradients are the same bits at every choice.
enum class Recompute { kNone, kMlp, kBlock };
inline constexpr EnumName<Recompute> kRecomputeNames[] = {
    {Recompute::kNone, "none"}, {Recompute::kMlp, "mlp"}, {Recompute::kBlock, "block"}};
constexpr const auto& enum_names(Recompute) { return kRecomputeNames; }

// ---- the sections ----------------------------------------------------------------------------

struct RunConfig {
  std::string name = "run";
  std::string out_dir = "runs";
  int64_t seed = 1337;
  int64_t steps = 1000;
  int64_t seq_len = 1024;
  int64_t micro_batch_size = 0;   // 0: derived from the other two
  int64_t grad_accum_steps = 0;   // 0: derived
  int64_t global_batch_size = 0;  // 0: derived
  DeviceKind device = DeviceKind::kAuto;
  int64_t threads = 0;
  Divergence divergence = Divergence::kStop;
  double divergence_factor = 10.0;
  int64_t divergence_window = 50;
  int64_t divergence_warmup = 10;
  int64_t divergence_max_skips = 5;
  double heartbeat_timeout = 60;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("name", name, "run name; the run directory is out_dir/name");
    v.field("out_dir", out_dir, "parent folder of run directories");
    v.field("seed", seed, "seed for initialization and data sampling");
    v.field("steps", steps, "number of optimizer steps");
    v.field("seq_len", seq_len, "tokens per sequence (T)");
    v.field("micro_batch_size", micro_batch_size, "sequences per rank per forward/backward; 0 = derive");
    v.field("grad_accum_steps", grad_accum_steps, "micro batches per optimizer step; 0 = derive");
    v.field("global_batch_size", global_batch_size, "sequences per optimizer step over all ranks; 0 = derive");
    v.field("device", device, "where to train; auto = a GPU when one can be used, else the CPU");
    v.field("threads", threads, "CPU threads; 0 = all cores");
    v.field("divergence", divergence,
            "a step whose loss (or, without clipping, grad norm) runs away from its running mean: stop the run, "
            "skip its update, or off");
    v.field("divergence_factor", divergence_factor,
            "a loss above this x the lowest running mean of the loss (at least 1 nat), or a grad norm above this x "
            "its running mean, diverges");
    v.field("divergence_window", divergence_window, "steps in each running mean");
    v.field("divergence_warmup", divergence_warmup,
            "steps before the guard judges (counted again from a resume)");
    v.field("divergence_max_skips", divergence_max_skips, "divergence skip: stop after this many skipped steps in a row");
    v.field("heartbeat_timeout", heartbeat_timeout,
            "several ranks: seconds without a heartbeat from a rank (stopped, hung, cut off) before the job stops; 0 = off");
  }
};

struct ModelConfig {
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  int64_t max_seq_len = 1024;
  int64_t vocab_size = 0;  // 0: from the data (tokenizer or synthetic corpus)
  int64_t vocab_pad_to = 128;
  double init_std = 0.02;
  std::string init_from;  // empty: random initialization
  Recompute recompute = Recompute::kNone;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("n_layer", n_layer, "number of transformer blocks (L)");
    v.field("n_head", n_head, "attention heads per block (NH)");
    v.field("n_embd", n_embd, "channels (C); must be divisible by n_head");
    v.field("max_seq_len", max_seq_len, "rows of the position embedding; >= run.seq_len");
    v.field("vocab_size", vocab_size, "vocabulary size (V); 0 = take it from the data");
    v.field("vocab_pad_to", vocab_pad_to, "pad the embedding rows to a multiple of this for the GEMMs");
    v.field("init_std", init_std, "std of the normal initialization of weights");
    v.field("init_from", init_from,
            "start from pretrained weights (fine-tuning: step 0, fresh optimizer): hf:DIR (a Hugging Face GPT-2 "
            "directory) or an lmtrain checkpoint; empty = random initialization");
    v.field("recompute", recompute,
            "activations recomputed in the backward pass instead of kept: none, mlp (the GELU output) or block "
            "(all but each block's input); the same losses and gradients, less memory");
  }
};

struct SyntheticConfig {
  int64_t vocab_size = 32;
  int64_t order = 2;
  int64_t branching = 4;
  int64_t seed = 1;
  int64_t train_tokens = 2000000;
  int64_t val_tokens = 65536;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("vocab_size", vocab_size, "tokens of the Markov chain");
    v.field("order", order, "how many previous tokens decide the next one");
    v.field("branching", branching, "possible successors of each context");
    v.field("seed", seed, "seed of the chain's transition table and samples");
    v.field("train_tokens", train_tokens, "tokens generated for training");
    v.field("val_tokens", val_tokens, "tokens generated for validation");
  }
};

struct DataConfig {
  DataSource source = DataSource::kShards;
  ShardFormat format = ShardFormat::kLmtrain;
  std::string train;
  std::string val;
  SyntheticConfig synthetic;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("source", source, "token files (data.train, data.val), or a corpus generated in memory (data.synthetic)");
    v.field("format", format, "the shard format of data.train, data.val and eval.sets");
    v.field("train", train, "training token files, a path or glob such as data/x/train_*.bin (source: shards)");
    v.field("val", val, "validation token files, a path or glob (source: shards); empty = no evaluation");
    v.section("synthetic", synthetic, "Markov-chain corpus generated in memory (source: synthetic)");
  }
};

struct OptimizerConfig {
  OptimizerKind name = OptimizerKind::kAdamW;
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("name", name, "the optimizer");
    v.field("lr", lr, "peak learning rate");
    v.field("beta1", beta1, "Adam beta1");
    v.field("beta2", beta2, "Adam beta2");
    v.field("eps", eps, "Adam epsilon");
    v.field("weight_decay", weight_decay, "decoupled weight decay on matrices and embeddings");
    v.field("grad_clip", grad_clip, "clip the global gradient norm to this; 0 = off");
  }
};

struct ScheduleConfig {
  ScheduleUnit unit = ScheduleUnit::kSteps;
  int64_t warmup_steps = 0;
  LrDecay decay = LrDecay::kCosine;
  double min_lr = 0.0;
  double decay_fraction = 0.0;  // 0: 1.0 for cosine/linear, 0.2 for wsd

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("unit", unit, "count schedule progress in steps, or in tokens (full-length steps' worth) while the sequence length grows");
    v.field("warmup_steps", warmup_steps, "linear warmup from lr/warmup_steps to lr");
    v.field("decay", decay, "the shape of the decay after warmup (wsd: warmup-stable-decay)");
    v.field("min_lr", min_lr, "learning rate at the end of the decay");
    v.field("decay_fraction", decay_fraction,
            "share of the post-warmup steps spent decaying, at the end; 0 = 1.0 (wsd: 0.2)");
  }
};

// Progressive sequence length with DeepSpeed's curriculum semantics (seqlen curriculum).
struct SeqLenScheduleConfig {
  SeqLenScheduleKind type = SeqLenScheduleKind::kNone;
  int64_t min_seq_len = 0;
  int64_t max_seq_len = 0;  // 0: run.seq_len
  int64_t total_steps = 0;
  int64_t step_multiple = 8;
  int64_t root_degree = 2;
  std::vector<int64_t> difficulty;
  std::vector<int64_t> max_step;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("type", type, "how the sequence length grows (DeepSpeed's seqlen curriculum)");
    v.field("min_seq_len", min_seq_len, "sequence length at the first step");
    v.field("max_seq_len", max_seq_len, "sequence length reached at total_steps; 0 = run.seq_len");
    v.field("total_steps", total_steps, "steps over which the length grows (fixed_linear, fixed_root)");
    v.field("step_multiple", step_multiple, "round the length down to a multiple of this");
    v.field("root_degree", root_degree, "fixed_root: length grows with (step/total_steps)^(1/root_degree)");
    v.field("difficulty", difficulty, "fixed_discrete: the lengths, one more than max_step");
    v.field("max_step", max_step, "fixed_discrete: the last step of each length but the final one");
  }
};

struct PrecisionConfig {
  DType dtype = DType::kF32;
  bool tf32 = true;
  bool tensor_core_attention = true;
  // fp16 dynamic loss scaling (DeepSpeed's names and defaults).
  int64_t initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int64_t hysteresis = 2;
  double min_loss_scale = 1.0;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("dtype", dtype, "activations and the compute copy of the weights (bf16/fp16 need --device cuda)");
    v.field("tf32", tf32, "CUDA fp32: matrix products on tensor cores with TF32 inputs");
    v.field("tensor_core_attention", tensor_core_attention,
            "CUDA bf16/fp16 at head sizes 64 and 128: attention on tensor cores (false: the fp32 kernels)");
    v.field("initial_scale_power", initial_scale_power, "fp16: the loss scale starts at 2^this");
    v.field("loss_scale_window", loss_scale_window, "fp16: overflow-free steps before the scale doubles");
    v.field("hysteresis", hysteresis, "fp16: overflows tolerated before the scale halves");
    v.field("min_loss_scale", min_loss_scale, "fp16: an overflow at this scale stops the run");
  }
};

struct EvalConfig {
  int64_t every = 0;
  int64_t batches = 20;
  std::map<std::string, std::string> sets;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("every", every, "evaluate every N steps; 0 = only at the end");
    v.field("batches", batches, "validation batches (of micro_batch_size sequences) per evaluation");
    v.field("sets", sets, "more validation sets by name, e.g. {wiki: data/wiki/val_*.bin}; logged under their names");
  }
};

struct LogConfig {
  int64_t every = 10;
  double peak_tflops = 0.0;
  bool tensorboard = false;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("every", every, "print and record a metrics line every N steps");
    v.field("peak_tflops", peak_tflops, "peak TFLOP/s of one device for MFU; 0 = unknown");
    v.field("tensorboard", tensorboard, "also write the metrics as TensorBoard scalars to <run directory>/tensorboard");
  }
};

struct CheckpointConfig {
  std::string dir;  // empty: <run directory>/checkpoints
  int64_t every = 0;
  int64_t keep_last = 0;
  int64_t keep_every = 0;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("dir", dir, "where checkpoints go; empty = <run directory>/checkpoints");
    v.field("every", every, "save every N steps; 0 = only at the end and on a stop signal");
    v.field("keep_last", keep_last, "keep only the newest N checkpoints; 0 = keep all");
    v.field("keep_every", keep_every, "never prune checkpoints whose step is a multiple of M (milestones); 0 = none");
  }
};

struct DistributedConfig {
  int64_t zero_stage = 0;
  bool overlap_comm = true;
  double bucket_mb = 25;

  void validate(ConfigCheck& c) const;  // this section's own rules

  template <class V>
  void visit(V& v) {
    v.field("zero_stage", zero_stage,
            "0: every rank holds the whole optimizer state; 1: AdamW moments (and master weights) sharded over the ranks (ZeRO-1)");
    v.field("overlap_comm", overlap_comm,
            "zero_stage 0 on the CPU: average each gradient bucket while the backward pass computes the rest");
    v.field("bucket_mb", bucket_mb, "size of a gradient bucket in MB (fp32 gradients)");
  }
};

struct Recipe {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  PrecisionConfig precision;
  EvalConfig eval;
  LogConfig log;
  CheckpointConfig checkpoint;
  SeqLenScheduleConfig seq_len_schedule;
  DistributedConfig distributed;

  template <class V>
  void visit(V& v) {
    v.section("run", run, "the run: length, batch, device");
    v.section("model", model, "GPT shape");
    v.section("data", data, "where tokens come from");
    v.section("optimizer", optimizer, "AdamW");
    v.section("schedule", schedule, "learning-rate schedule");
    v.section("precision", precision, "number formats");
    v.section("eval", eval, "validation loss");
    v.section("log", log, "metrics lines");
    v.section("checkpoint", checkpoint, "saving and resuming");
    v.section("seq_len_schedule", seq_len_schedule, "progressive sequence length");
    v.section("distributed", distributed, "data parallelism across ranks");
  }
};

// Where each key of a recipe was set ("file:line:col" or "--set key=value"), by full key path.
using RecipeOrigins = std::map<std::string, std::string>;

struct LoadedRecipe {
  Recipe recipe;
  RecipeOrigins origins;
  std::string path;
};

// Parses a YAML file into a Recipe. Unknown keys, wrong types and malformed YAML throw
// lmt::Error naming file:line:col and the full key path (all problems at once).
LoadedRecipe load_recipe(const std::string& path);
LoadedRecipe parse_recipe_text(const std::string& text, const std::string& display_name);

// Applies "key.path=value" overrides, validated like file keys.
void apply_overrides(LoadedRecipe& loaded, const std::vector<std::string>& overrides);

// Resolves the batch relation for world_size ranks (global_batch_size = micro_batch_size *
// grad_accum_steps * world_size) and seq_len_schedule.max_seq_len's default, then checks every
// section's rules and those across sections. Throws lmt::Error listing every problem.
void validate_recipe(LoadedRecipe& loaded, int64_t world_size);

// The recipe as YAML that parses back to the same Recipe.
std::string recipe_to_yaml(const Recipe& recipe);

// "key: old -> new" for every key whose value differs between two recipes given as YAML text
// (e.g. a checkpoint's recipe and the current one).
std::vector<std::string> recipe_differences(const std::string& before_yaml, const std::string& after_yaml);

// Every leaf key path ("model.n_layer") with its help text, in declaration order.
std::vector<std::pair<std::string, std::string>> recipe_keys();

}  // namespace lmt
