// Validation: each section's own rules (its validate()), then the rules across sections and the
// derived values (validate_recipe). All problems are reported at once, each with the place the
// key was set.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/recipe.h"

namespace lmt {

// The problems of one section, its keys named relative to the section.
class ConfigCheck {
 public:
  ConfigCheck(const LoadedRecipe& loaded, std::vector<std::string>& errors, std::string prefix = "")
      : loaded_(loaded), errors_(errors), prefix_(std::move(prefix)) {}

  ConfigCheck section(const std::string& name) const { return ConfigCheck(loaded_, errors_, key(name)); }
  std::string key(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

  void fail(const std::string& name, const std::string& problem) {
    const std::string path = key(name);
    auto it = loaded_.origins.find(path);
    const std::string where = it != loaded_.origins.end() ? it->second : fmt::format("{} (default)", loaded_.path);
    errors_.push_back(fmt::format("{}: {}: {}", where, path, problem));
  }
  void at_least(const std::string& name, int64_t value, int64_t minimum) {
    if (value < minimum) fail(name, fmt::format("must be at least {} (got {})", minimum, value));
  }
  void at_most(const std::string& name, int64_t value, int64_t maximum) {
    if (value > maximum) fail(name, fmt::format("must be at most {} (got {})", maximum, value));
  }
  void in_range(const std::string& name, double value, double lo, double hi, bool lo_open = false,
                bool hi_open = false) {
    const bool ok = (lo_open ? value > lo : value >= lo) && (hi_open ? value < hi : value <= hi);
    if (!ok)
      fail(name, fmt::format("must be in {}{}, {}{} (got {})", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]",
                             value));
  }

 private:
  const LoadedRecipe& loaded_;
  std::vector<std::string>& errors_;
  std::string prefix_;
};

// ---- each section ----------------------------------------------------------------------------

// Sizes the model and the kernels hold in 32-bit integers (sequences, tokens per sequence,
// channels, layers, vocabulary rows).
constexpr int64_t kMaxDimension = 2147483647;
// Elements of one tensor arena (parameters, activations): 2^48 keeps every byte count of plan's
// arithmetic exact in 64 bits and is far beyond any machine's memory.
constexpr double kMaxElements = 281474976710656.0;
constexpr size_t kMaxFileNameBytes = 255;  // NAME_MAX of Linux file systems
// Rows the ops and kernels count in 32-bit integers: tokens of a micro-batch (N = B * T rows of
// every activation) and padded vocabulary entries. 2^30 leaves them room for a row index plus a
// tile or a stride without passing 2^31; element offsets (rows times columns) are 64-bit.
constexpr int64_t kMaxRows = int64_t{1} << 30;

void RunConfig::validate(ConfigCheck& c) const {
  c.at_least("steps", steps, 1);
  c.at_least("seq_len", seq_len, 1);
  c.at_most("seq_len", seq_len, kMaxDimension);
  c.at_least("micro_batch_size", micro_batch_size, 0);
  c.at_most("micro_batch_size", micro_batch_size, kMaxDimension);
  c.at_least("grad_accum_steps", grad_accum_steps, 0);
  c.at_most("grad_accum_steps", grad_accum_steps, kMaxDimension);
  c.at_least("global_batch_size", global_batch_size, 0);
  c.at_most("global_batch_size", global_batch_size, kMaxDimension);
  c.at_least("threads", threads, 0);
  c.at_most("threads", threads, 1024);  // OpenMP's runtime fails (or crashes) long before 100000
  c.in_range("divergence_factor", divergence_factor, 1.0, 1e9, true);
  c.at_least("divergence_window", divergence_window, 1);
  c.at_most("divergence_window", divergence_window, 100000);
  c.at_least("divergence_warmup", divergence_warmup, 1);
  c.at_least("divergence_max_skips", divergence_max_skips, 1);
  if (heartbeat_timeout != 0 && !(heartbeat_timeout >= 1 && heartbeat_timeout <= 86400))
    c.fail("heartbeat_timeout", fmt::format("must be 0 (off) or from 1 to 86400 seconds (got {})", heartbeat_timeout));
  // The run directory is out_dir/name: a name that is a path (or . and ..) would write elsewhere.
  if (name.empty() || name == "." || name == ".." || name.find_first_of(std::string("/\0", 2)) != std::string::npos)
    c.fail("name", fmt::format("'{}' must be a file name: non-empty, not '.' or '..', without '/'", name));
  else if (name.size() > kMaxFileNameBytes)
    c.fail("name", fmt::format("is {} bytes long; a file name holds at most {} (the run directory is out_dir/name)",
                               name.size(), kMaxFileNameBytes));
}

void ModelConfig::validate(ConfigCheck& c) const {
  c.at_least("n_layer", n_layer, 1);
  c.at_least("n_head", n_head, 1);
  c.at_least("n_embd", n_embd, 1);
  c.at_least("max_seq_len", max_seq_len, 1);
  c.at_least("vocab_size", vocab_size, 0);
  c.at_least("vocab_pad_to", vocab_pad_to, 1);
  const std::pair<const char*, int64_t> dimensions[] = {{"n_layer", n_layer},         {"n_head", n_head},
                                                        {"n_embd", n_embd},           {"max_seq_len", max_seq_len},
                                                        {"vocab_size", vocab_size},   {"vocab_pad_to", vocab_pad_to}};
  for (const auto& [key, value] : dimensions) c.at_most(key, value, kMaxDimension);
  c.in_range("init_std", init_std, 0.0, 1.0, true);
  if (n_head >= 1 && n_embd >= 1 && n_embd % n_head != 0)
    c.fail("n_embd", fmt::format("{} is not divisible by {} {}", n_embd, c.key("n_head"), n_head));
}

void SyntheticConfig::validate(ConfigCheck& c) const {
  c.at_least("vocab_size", vocab_size, 2);
  c.at_most("vocab_size", vocab_size, 65536);
  c.at_least("order", order, 1);
  c.at_most("order", order, 4);
  c.at_least("branching", branching, 1);
  c.at_least("val_tokens", val_tokens, 0);
  if (vocab_size >= 2 && vocab_size <= 65536 && order >= 1 && order <= 4 && branching >= 1) {
    const double table =
        std::pow(static_cast<double>(vocab_size), static_cast<double>(order)) * static_cast<double>(branching);
    if (table > 4194304.0)
      c.fail("vocab_size", fmt::format("vocab_size^order x branching = {} transitions exceeds 2^22; lower "
                                       "vocab_size, order or branching",
                                       static_cast<int64_t>(table)));
  }
  if (branching > vocab_size && vocab_size >= 2)
    c.fail("branching", fmt::format("{} exceeds {} {}", branching, c.key("vocab_size"), vocab_size));
}

void DataConfig::validate(ConfigCheck& c) const {
  if (source == DataSource::kShards && train.empty())
    c.fail("train", "source is 'shards' but no training shard is given; run `lmtrain data "
                    "prepare` and point data.train at its shards (DIR/train_*.bin)");
  if (source == DataSource::kSynthetic) {
    ConfigCheck sub = c.section("synthetic");
    synthetic.validate(sub);
  }
  // Keys of the source that is not selected would be ignored silently: a run on the synthetic
  // corpus that was meant to read shards (or the other way round). Compared with the defaults,
  // so resolved recipes (which list every key) pass.
  const DataConfig defaults;
  const char* fix = "set data.source to the source you mean, or remove the key";
  if (source == DataSource::kSynthetic) {
    if (!train.empty()) c.fail("train", fmt::format("is set, but source is 'synthetic', which ignores it; {}", fix));
    if (!val.empty()) c.fail("val", fmt::format("is set, but source is 'synthetic', which ignores it; {}", fix));
  } else {
    const SyntheticConfig& d = defaults.synthetic;
    if (synthetic.vocab_size != d.vocab_size || synthetic.order != d.order || synthetic.branching != d.branching ||
        synthetic.seed != d.seed || synthetic.train_tokens != d.train_tokens || synthetic.val_tokens != d.val_tokens)
      c.fail("synthetic", fmt::format("is set, but source is 'shards', which ignores it; {}", fix));
  }
}

void OptimizerConfig::validate(ConfigCheck& c) const {
  c.in_range("lr", lr, 0.0, 10.0, true);
  c.in_range("beta1", beta1, 0.0, 1.0, false, true);
  c.in_range("beta2", beta2, 0.0, 1.0, false, true);
  c.in_range("eps", eps, 0.0, 1.0, true);
  c.in_range("weight_decay", weight_decay, 0.0, 10.0);
  c.in_range("grad_clip", grad_clip, 0.0, 1e9);
}

void ScheduleConfig::validate(ConfigCheck& c) const {
  c.at_least("warmup_steps", warmup_steps, 0);
  c.in_range("decay_fraction", decay_fraction, 0.0, 1.0);
}

void SeqLenScheduleConfig::validate(ConfigCheck& c) const {
  if (type == SeqLenScheduleKind::kNone) return;
  c.at_least("step_multiple", step_multiple, 1);
  if (type == SeqLenScheduleKind::kFixedLinear || type == SeqLenScheduleKind::kFixedRoot) {
    c.at_least("total_steps", total_steps, 1);
    c.at_least("min_seq_len", min_seq_len, std::max<int64_t>(1, step_multiple));
    if (min_seq_len > max_seq_len)
      c.fail("min_seq_len", fmt::format("{} exceeds max_seq_len {}", min_seq_len, max_seq_len));
    if (type == SeqLenScheduleKind::kFixedRoot) c.at_least("root_degree", root_degree, 1);
  }
  if (type == SeqLenScheduleKind::kFixedDiscrete) {
    if (difficulty.size() != max_step.size() + 1 || max_step.empty())
      c.fail("difficulty", fmt::format("fixed_discrete needs one more difficulty than max_step entries (got {} and {})",
                                       difficulty.size(), max_step.size()));
    for (size_t i = 1; i < max_step.size(); ++i)
      if (max_step[i] <= max_step[i - 1]) c.fail("max_step", "must be strictly increasing");
  }
}

void PrecisionConfig::validate(ConfigCheck& c) const {
  c.at_least("initial_scale_power", initial_scale_power, 0);
  if (initial_scale_power > 40)
    c.fail("initial_scale_power", fmt::format("{} is above 40; fp16 overflows at 2^16", initial_scale_power));
  c.at_least("loss_scale_window", loss_scale_window, 1);
  c.at_least("hysteresis", hysteresis, 1);
  const double initial = std::ldexp(1.0, static_cast<int>(std::clamp<int64_t>(initial_scale_power, 0, 40)));
  if (!(min_loss_scale > 0) || min_loss_scale > initial)
    c.fail("min_loss_scale", fmt::format("{} must be above 0 and at most the initial scale 2^{}", min_loss_scale,
                                         initial_scale_power));
}

void EvalConfig::validate(ConfigCheck& c) const {
  c.at_least("every", every, 0);
  c.at_least("batches", batches, 1);
  for (const auto& [name, path] : sets) {
    if (name.empty() || name == "val" || name.find_first_of(" /") != std::string::npos)
      c.fail("sets", fmt::format("set name '{}' must be non-empty, not 'val' (the data.val set), "
                                 "without spaces or '/'",
                                 name));
    if (path.empty()) c.fail("sets", fmt::format("set '{}' has no path", name));
  }
}

void LogConfig::validate(ConfigCheck& c) const {
  c.at_least("every", every, 1);
  c.in_range("peak_tflops", peak_tflops, 0.0, 1e9);
}

void CheckpointConfig::validate(ConfigCheck& c) const {
  c.at_least("every", every, 0);
  c.at_least("keep_last", keep_last, 0);
  c.at_least("keep_every", keep_every, 0);
}

void DistributedConfig::validate(ConfigCheck& c) const {
  if (zero_stage < 0 || zero_stage > 1)
    c.fail("zero_stage", fmt::format("must be 0 or 1 (got {}); ZeRO stages 2 and 3 are not implemented", zero_stage));
  c.in_range("bucket_mb", bucket_mb, 0.0, 65536.0, true);
}

namespace {

// ---- derived values and the rules across sections ------------------------------------------

// DeepSpeed's relation, in sequences: global = micro * accum * world. Zero means "derive".
void resolve_batch(RunConfig& run, int64_t world, ConfigCheck& c) {
  int64_t& g = run.global_batch_size;
  int64_t& m = run.micro_batch_size;
  int64_t& a = run.grad_accum_steps;
  // Out of range: reported by RunConfig::validate (and the products below stay within 64 bits).
  if (m < 0 || a < 0 || g < 0 || m > kMaxDimension || a > kMaxDimension || g > kMaxDimension) return;
  if (static_cast<double>(std::max<int64_t>(m, 1)) * static_cast<double>(std::max<int64_t>(a, 1)) *
          static_cast<double>(world) > static_cast<double>(kMaxDimension)) {
    c.fail("run.micro_batch_size",
           fmt::format("micro_batch_size {} x grad_accum_steps {} x world size {} exceeds {} sequences per step",
                       m, a, world, kMaxDimension));
    return;
  }
  if (g == 0 && m == 0) {
    c.fail("run.micro_batch_size",
           "give two of run.micro_batch_size, run.grad_accum_steps, run.global_batch_size "
           "(global = micro x accum x world size)");
    return;
  }
  if (m > 0 && a > 0 && g > 0) {
    if (m * a * world != g)
      c.fail("run.global_batch_size",
             fmt::format("{} contradicts micro_batch_size {} x grad_accum_steps {} x world size {} "
                         "= {}; drop one of the three to derive it",
                         g, m, a, world, m * a * world));
    return;
  }
  if (m > 0 && g > 0) {
    if (g % (m * world) != 0) {
      c.fail("run.global_batch_size", fmt::format("{} is not a multiple of micro_batch_size {} x world size {} = {}",
                                                  g, m, world, m * world));
      return;
    }
    a = g / (m * world);
    return;
  }
  if (a > 0 && g > 0) {
    if (g % (a * world) != 0) {
      c.fail("run.global_batch_size", fmt::format("{} is not a multiple of grad_accum_steps {} x world size {} = {}",
                                                  g, a, world, a * world));
      return;
    }
    m = g / (a * world);
    return;
  }
  if (m > 0) {  // only micro (and maybe accum)
    if (a == 0) a = 1;
    g = m * a * world;
    return;
  }
  // only global
  if (g % world != 0) {
    c.fail("run.global_batch_size", fmt::format("{} is not a multiple of the world size {}", g, world));
    return;
  }
  a = 1;
  m = g / world;
}

// The parameter and activation counts of plan's arithmetic (model/gpt_config.h), in double so
// that they cannot overflow here; within kMaxElements, the 64-bit counts are exact.
void check_sizes(const Recipe& r, ConfigCheck& c) {
  const ModelConfig& m = r.model;
  const int64_t dims[] = {m.n_layer, m.n_head, m.n_embd, m.max_seq_len, m.vocab_size, m.vocab_pad_to,
                          r.run.seq_len, r.run.micro_batch_size};
  for (int64_t d : dims)
    if (d < 0 || d > kMaxDimension) return;  // reported by the sections
  const double L = static_cast<double>(m.n_layer), C = static_cast<double>(m.n_embd);
  const double pad = static_cast<double>(std::max<int64_t>(m.vocab_pad_to, 1));
  const double Vp = std::ceil(static_cast<double>(std::max<int64_t>(m.vocab_size, 65536)) / pad) * pad;
  const double params = Vp * C + static_cast<double>(m.max_seq_len) * C + L * (12.0 * C * C + 13.0 * C) + 2.0 * C;
  if (params > kMaxElements)
    c.fail("model.n_embd", fmt::format("n_layer {} x n_embd {} make about {:.3g} parameters; lmtrain holds at "
                                       "most 2^48 (2.8e14)",
                                       m.n_layer, m.n_embd, params));
  const double BT = static_cast<double>(r.run.micro_batch_size) * static_cast<double>(r.run.seq_len);
  if (BT > static_cast<double>(kMaxRows))
    c.fail("run.micro_batch_size", fmt::format("micro_batch_size {} x seq_len {} = {:.0f} tokens per micro-batch; "
                                               "lmtrain holds at most 2^30 (1073741824)",
                                               r.run.micro_batch_size, r.run.seq_len, BT));
  if (m.vocab_size >= 1 && m.vocab_pad_to >= 1) {
    const double padded = std::ceil(static_cast<double>(m.vocab_size) / pad) * pad;
    if (padded > static_cast<double>(kMaxRows))
      c.fail("model.vocab_size", fmt::format("{} padded to a multiple of vocab_pad_to {} is {:.0f}; lmtrain holds "
                                             "at most 2^30 (1073741824) vocabulary rows",
                                             m.vocab_size, m.vocab_pad_to, padded));
  }
  const double activations = BT * (L * (16.0 * C + 4.0) + 10.0 * C + Vp + 6.0) +
                             L * static_cast<double>(r.run.micro_batch_size) * static_cast<double>(m.n_head) *
                                 static_cast<double>(r.run.seq_len);
  if (activations > kMaxElements)
    c.fail("run.micro_batch_size",
           fmt::format("micro_batch_size {} x seq_len {} on this model need about {:.3g} activation values; "
                       "lmtrain holds at most 2^48 (2.8e14)",
                       r.run.micro_batch_size, r.run.seq_len, activations));
}

void check_across_sections(const Recipe& r, ConfigCheck& c) {
  check_sizes(r, c);
  if (r.run.seq_len > r.model.max_seq_len && r.model.max_seq_len >= 1)
    c.fail("run.seq_len", fmt::format("{} exceeds model.max_seq_len {}", r.run.seq_len, r.model.max_seq_len));
  if (r.data.source == DataSource::kShards && r.data.format != ShardFormat::kLmtrain && r.model.vocab_size == 0)
    c.fail("model.vocab_size", fmt::format("data.format {} files do not record a vocabulary size; set "
                                           "model.vocab_size (50257 for GPT-2 tokens)",
                                           name_of(r.data.format)));
  if (r.data.source == DataSource::kSynthetic)
    c.at_least("data.synthetic.train_tokens", r.data.synthetic.train_tokens, r.run.seq_len + 1);
  // data.format also reads eval.sets, so with the synthetic corpus it is ignored only without them.
  if (r.data.source == DataSource::kSynthetic && r.data.format != DataConfig().format && r.eval.sets.empty())
    c.fail("data.format", fmt::format("is '{}', but source is 'synthetic' and there are no eval.sets, so nothing "
                                      "reads it; set data.source to the source you mean, or remove the key",
                                      name_of(r.data.format)));
  c.in_range("schedule.min_lr", r.schedule.min_lr, 0.0, r.optimizer.lr);
  if (r.schedule.warmup_steps >= r.run.steps && r.run.steps >= 1 && r.schedule.warmup_steps > 0 &&
      r.schedule.decay != LrDecay::kConstant)
    c.fail("schedule.warmup_steps",
           fmt::format("{} leaves no step to decay in a run of {} steps", r.schedule.warmup_steps, r.run.steps));
  const auto& s = r.seq_len_schedule;
  if (s.type != SeqLenScheduleKind::kNone && s.max_seq_len != r.run.seq_len)
    c.fail("seq_len_schedule.max_seq_len",
           fmt::format("{} must equal run.seq_len {} (the length the schedule grows to, and the "
                       "length evaluation runs at)",
                       s.max_seq_len, r.run.seq_len));
  if (s.type == SeqLenScheduleKind::kFixedDiscrete)
    for (size_t i = 0; i < s.difficulty.size(); ++i)
      if (s.difficulty[i] < 1 || s.difficulty[i] > r.run.seq_len)
        c.fail("seq_len_schedule.difficulty", fmt::format("item {} is {}; lengths must be in [1, run.seq_len {}]",
                                                          i + 1, s.difficulty[i], r.run.seq_len));
}

// Calls validate() of every section, with its name as the prefix.
struct SectionValidator {
  ConfigCheck& root;
  template <class T>
  void field(const char*, T&, const char*) {}
  template <class S>
  void section(const char* name, S& s, const char*) {
    ConfigCheck sub = root.section(name);
    s.validate(sub);
  }
};

}  // namespace

void validate_recipe(LoadedRecipe& loaded, int64_t world_size) {
  if (world_size < 1) throw Error(fmt::format("world size must be at least 1 (got {})", world_size));
  Recipe& r = loaded.recipe;
  std::vector<std::string> errors;
  ConfigCheck c(loaded, errors);
  resolve_batch(r.run, world_size, c);
  if (r.seq_len_schedule.max_seq_len == 0) r.seq_len_schedule.max_seq_len = r.run.seq_len;
  SectionValidator sections{c};
  r.visit(sections);
  check_across_sections(r, c);
  if (errors.empty()) return;
  std::string msg = fmt::format("invalid recipe {} ({} problem{}):", loaded.path, errors.size(),
                                errors.size() == 1 ? "" : "s");
  for (const auto& e : errors) msg += "\n  " + e;
  throw Error(msg);
}

}  // namespace lmt
