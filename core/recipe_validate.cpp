// validate_recipe: every range and cross-field rule of a recipe, in one place.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/recipe.h"
#include "core/strings.h"

namespace lmt {
namespace {

class Checker {
 public:
  Checker(const LoadedRecipe& loaded) : loaded_(loaded) {}

  // Location of a key: where it was set, or the recipe file for a default value.
  std::string where(const std::string& path) const {
    auto it = loaded_.origins.find(path);
    if (it != loaded_.origins.end()) return it->second;
    return fmt::format("{} (default)", loaded_.path);
  }

  void fail(const std::string& path, const std::string& problem) {
    errors_.push_back(fmt::format("{}: {}: {}", where(path), path, problem));
  }

  void at_least(const std::string& path, int64_t value, int64_t minimum) {
    if (value < minimum) fail(path, fmt::format("must be at least {} (got {})", minimum, value));
  }

  void in_range(const std::string& path, double value, double lo, double hi, bool lo_open = false,
                bool hi_open = false) {
    bool ok = (lo_open ? value > lo : value >= lo) && (hi_open ? value < hi : value <= hi);
    if (!ok)
      fail(path, fmt::format("must be in {}{}, {}{} (got {})", lo_open ? "(" : "[", lo, hi,
                             hi_open ? ")" : "]", value));
  }

  void one_of(const std::string& path, const std::string& value,
              const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    fail(path, fmt::format("'{}' is not one of: {}{}", value, fmt::join(allowed, ", "),
                           did_you_mean(value, allowed)));
  }

  bool set(const std::string& path) const { return loaded_.origins.count(path) > 0; }
  bool ok() const { return errors_.empty(); }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  const LoadedRecipe& loaded_;
  std::vector<std::string> errors_;
};

// DeepSpeed's relation, in sequences: global = micro * accum * world. Zero means "derive".
void resolve_batch(RunConfig& run, int64_t world, Checker& c) {
  int64_t& g = run.global_batch_size;
  int64_t& m = run.micro_batch_size;
  int64_t& a = run.grad_accum_steps;
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
      c.fail("run.global_batch_size",
             fmt::format("{} is not a multiple of micro_batch_size {} x world size {} = {}", g, m,
                         world, m * world));
      return;
    }
    a = g / (m * world);
    return;
  }
  if (a > 0 && g > 0) {
    if (g % (a * world) != 0) {
      c.fail("run.global_batch_size",
             fmt::format("{} is not a multiple of grad_accum_steps {} x world size {} = {}", g, a,
                         world, a * world));
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
    c.fail("run.global_batch_size",
           fmt::format("{} is not a multiple of the world size {}", g, world));
    return;
  }
  a = 1;
  m = g / world;
}

}  // namespace

void validate_recipe(LoadedRecipe& loaded, int64_t world_size) {
  Recipe& r = loaded.recipe;
  Checker c(loaded);
  if (world_size < 1) throw Error(fmt::format("world size must be at least 1 (got {})", world_size));

  // run
  c.at_least("run.steps", r.run.steps, 1);
  c.at_least("run.seq_len", r.run.seq_len, 1);
  c.at_least("run.micro_batch_size", r.run.micro_batch_size, 0);
  c.at_least("run.grad_accum_steps", r.run.grad_accum_steps, 0);
  c.at_least("run.global_batch_size", r.run.global_batch_size, 0);
  c.at_least("run.threads", r.run.threads, 0);
  c.one_of("run.device", r.run.device, {"auto", "cpu", "cuda"});
  if (r.run.name.empty() || r.run.name.find('/') != std::string::npos)
    c.fail("run.name", "must be a non-empty name without '/'");
  if (r.run.micro_batch_size >= 0 && r.run.grad_accum_steps >= 0 && r.run.global_batch_size >= 0)
    resolve_batch(r.run, world_size, c);

  // model
  c.at_least("model.n_layer", r.model.n_layer, 1);
  c.at_least("model.n_head", r.model.n_head, 1);
  c.at_least("model.n_embd", r.model.n_embd, 1);
  c.at_least("model.max_seq_len", r.model.max_seq_len, 1);
  c.at_least("model.vocab_size", r.model.vocab_size, 0);
  c.at_least("model.vocab_pad_to", r.model.vocab_pad_to, 1);
  c.in_range("model.init_std", r.model.init_std, 0.0, 1.0, true);
  if (r.model.n_head >= 1 && r.model.n_embd >= 1 && r.model.n_embd % r.model.n_head != 0)
    c.fail("model.n_embd", fmt::format("{} is not divisible by model.n_head {}", r.model.n_embd,
                                       r.model.n_head));
  if (r.run.seq_len > r.model.max_seq_len && r.model.max_seq_len >= 1)
    c.fail("run.seq_len", fmt::format("{} exceeds model.max_seq_len {}", r.run.seq_len,
                                      r.model.max_seq_len));

  // data
  c.one_of("data.source", r.data.source, {"shards", "synthetic"});
  c.one_of("data.format", r.data.format, {"lmtrain", "llmc", "nanogpt"});
  if (r.data.source == "shards" && r.data.format != "lmtrain" && r.model.vocab_size == 0)
    c.fail("model.vocab_size", fmt::format("data.format {} files do not record a vocabulary size; set "
                                           "model.vocab_size (50257 for GPT-2 tokens)", r.data.format));
  if (r.data.source == "shards" && r.data.train.empty())
    c.fail("data.train", "source is 'shards' but no training shard is given; run `lmtrain data "
                         "prepare` and point data.train at its shards (DIR/train_*.bin)");
  if (r.data.source == "synthetic") {
    const auto& s = r.data.synthetic;
    c.at_least("data.synthetic.vocab_size", s.vocab_size, 2);
    c.at_least("data.synthetic.order", s.order, 1);
    c.at_least("data.synthetic.branching", s.branching, 1);
    c.at_least("data.synthetic.train_tokens", s.train_tokens, r.run.seq_len + 1);
    c.at_least("data.synthetic.val_tokens", s.val_tokens, 0);
    if (s.vocab_size > 65536)
      c.fail("data.synthetic.vocab_size", fmt::format("must be at most 65536 (got {})", s.vocab_size));
    if (s.order > 4) c.fail("data.synthetic.order", fmt::format("must be at most 4 (got {})", s.order));
    if (s.vocab_size >= 2 && s.vocab_size <= 65536 && s.order >= 1 && s.order <= 4 && s.branching >= 1) {
      double table = std::pow(static_cast<double>(s.vocab_size), static_cast<double>(s.order)) *
                     static_cast<double>(s.branching);
      if (table > 4194304.0)
        c.fail("data.synthetic.vocab_size",
               fmt::format("vocab_size^order x branching = {} transitions exceeds 2^22; lower "
                           "vocab_size, order or branching", static_cast<int64_t>(table)));
    }
    if (s.branching > s.vocab_size && s.vocab_size >= 2)
      c.fail("data.synthetic.branching", fmt::format("{} exceeds data.synthetic.vocab_size {}",
                                                     s.branching, s.vocab_size));
  }

  // optimizer and schedule
  c.one_of("optimizer.name", r.optimizer.name, {"adamw"});
  c.in_range("optimizer.lr", r.optimizer.lr, 0.0, 10.0, true);
  c.in_range("optimizer.beta1", r.optimizer.beta1, 0.0, 1.0, false, true);
  c.in_range("optimizer.beta2", r.optimizer.beta2, 0.0, 1.0, false, true);
  c.in_range("optimizer.eps", r.optimizer.eps, 0.0, 1.0, true);
  c.in_range("optimizer.weight_decay", r.optimizer.weight_decay, 0.0, 10.0);
  c.in_range("optimizer.grad_clip", r.optimizer.grad_clip, 0.0, 1e9);
  c.at_least("schedule.warmup_steps", r.schedule.warmup_steps, 0);
  c.one_of("schedule.decay", r.schedule.decay, {"cosine", "linear", "constant", "wsd"});
  c.in_range("schedule.min_lr", r.schedule.min_lr, 0.0, r.optimizer.lr);
  c.in_range("schedule.decay_fraction", r.schedule.decay_fraction, 0.0, 1.0);
  if (r.schedule.warmup_steps >= r.run.steps && r.run.steps >= 1 && r.schedule.warmup_steps > 0 &&
      r.schedule.decay != "constant")
    c.fail("schedule.warmup_steps", fmt::format("{} leaves no step to decay in a run of {} steps",
                                                r.schedule.warmup_steps, r.run.steps));

  // precision, eval, log
  c.one_of("precision.dtype", r.precision.dtype, {"fp32", "bf16", "fp16"});
  c.at_least("precision.initial_scale_power", r.precision.initial_scale_power, 0);
  if (r.precision.initial_scale_power > 40)
    c.fail("precision.initial_scale_power", fmt::format("{} is above 40; fp16 overflows at 2^16", r.precision.initial_scale_power));
  c.at_least("precision.loss_scale_window", r.precision.loss_scale_window, 1);
  c.at_least("precision.hysteresis", r.precision.hysteresis, 1);
  if (!(r.precision.min_loss_scale > 0) ||
      r.precision.min_loss_scale > std::ldexp(1.0, static_cast<int>(std::min<int64_t>(r.precision.initial_scale_power, 40))))
    c.fail("precision.min_loss_scale", fmt::format("{} must be above 0 and at most the initial scale 2^{}",
                                                   r.precision.min_loss_scale, r.precision.initial_scale_power));
  c.at_least("eval.every", r.eval.every, 0);
  c.at_least("eval.batches", r.eval.batches, 1);
  for (const auto& [name, path] : r.eval.sets) {
    if (name.empty() || name == "val" || name.find_first_of(" /") != std::string::npos)
      c.fail("eval.sets", fmt::format("set name '{}' must be non-empty, not 'val' (the data.val set), "
                                      "without spaces or '/'", name));
    if (path.empty()) c.fail("eval.sets", fmt::format("set '{}' has no path", name));
  }
  c.at_least("log.every", r.log.every, 1);
  c.in_range("log.peak_tflops", r.log.peak_tflops, 0.0, 1e9);
  c.at_least("checkpoint.every", r.checkpoint.every, 0);
  c.one_of("schedule.unit", r.schedule.unit, {"steps", "tokens"});
  if (r.distributed.zero_stage < 0 || r.distributed.zero_stage > 1)
    c.fail("distributed.zero_stage", fmt::format("must be 0 or 1 (got {}); ZeRO stages 2 and 3 are not "
                                                 "implemented", r.distributed.zero_stage));
  {
    auto& s = r.seq_len_schedule;
    c.one_of("seq_len_schedule.type", s.type, {"none", "fixed_linear", "fixed_root", "fixed_discrete"});
    if (s.max_seq_len == 0) s.max_seq_len = r.run.seq_len;
    if (s.type != "none") {
      c.at_least("seq_len_schedule.step_multiple", s.step_multiple, 1);
      if (s.max_seq_len != r.run.seq_len)
        c.fail("seq_len_schedule.max_seq_len",
               fmt::format("{} must equal run.seq_len {} (the length the schedule grows to, and the "
                           "length evaluation runs at)", s.max_seq_len, r.run.seq_len));
    }
    if (s.type == "fixed_linear" || s.type == "fixed_root") {
      c.at_least("seq_len_schedule.total_steps", s.total_steps, 1);
      c.at_least("seq_len_schedule.min_seq_len", s.min_seq_len, std::max<int64_t>(1, s.step_multiple));
      if (s.min_seq_len > s.max_seq_len)
        c.fail("seq_len_schedule.min_seq_len", fmt::format("{} exceeds max_seq_len {}", s.min_seq_len, s.max_seq_len));
      if (s.type == "fixed_root") c.at_least("seq_len_schedule.root_degree", s.root_degree, 1);
    }
    if (s.type == "fixed_discrete") {
      if (s.difficulty.size() != s.max_step.size() + 1 || s.max_step.empty())
        c.fail("seq_len_schedule.difficulty",
               fmt::format("fixed_discrete needs one more difficulty than max_step entries (got {} and {})",
                           s.difficulty.size(), s.max_step.size()));
      for (size_t i = 0; i < s.difficulty.size(); ++i)
        if (s.difficulty[i] < 1 || s.difficulty[i] > r.run.seq_len)
          c.fail("seq_len_schedule.difficulty",
                 fmt::format("item {} is {}; lengths must be in [1, run.seq_len {}]", i + 1, s.difficulty[i], r.run.seq_len));
      for (size_t i = 1; i < s.max_step.size(); ++i)
        if (s.max_step[i] <= s.max_step[i - 1])
          c.fail("seq_len_schedule.max_step", "must be strictly increasing");
    }
  }
  c.at_least("checkpoint.keep_last", r.checkpoint.keep_last, 0);
  c.at_least("checkpoint.keep_every", r.checkpoint.keep_every, 0);

  if (!c.ok()) {
    std::string msg = fmt::format("invalid recipe {} ({} problem{}):", loaded.path,
                                  c.errors().size(), c.errors().size() == 1 ? "" : "s");
    for (const auto& e : c.errors()) msg += "\n  " + e;
    throw Error(msg);
  }
}

}  // namespace lmt
