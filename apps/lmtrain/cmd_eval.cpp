// lmtrain eval --checkpoint DIR|hf:DIR [--data GLOB]... [--batches N] [--seq-len T] [--json]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/lmtrain/commands.h"
#include "train/evaluate.h"

namespace lmt::app {

Action add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "validation loss and perplexity of a checkpoint");
  auto options = std::make_shared<EvalOptions>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("--checkpoint", options->checkpoint,
                  "a step_* directory, a checkpoint folder holding `latest`, or hf:DIR (a Hugging Face GPT-2)")
      ->required();
  cmd->add_option("--data", options->data, "validation shard or glob (repeatable); default: the run's val set")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--batches", options->batches, "batches per set (default: the recipe's eval.batches)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", options->seq_len, "tokens per window (default: the recipe's run.seq_len)")
      ->check(CLI::PositiveNumber);
  add_device_option(cmd, options->device, "where to run (default cpu)");
  cmd->add_flag("--json", *as_json, "print one JSON object instead of text");
  return [options, as_json] {
    EvalReport report = evaluate_checkpoint(*options);
    if (*as_json) {
      nlohmann::json sets = nlohmann::json::array();
      for (const auto& s : report.sets)
        sets.push_back({{"name", s.name}, {"loss", s.loss}, {"perplexity", s.perplexity},
                        {"batches", s.batches}, {"tokens", s.tokens}});
      fmt::print("{}\n", nlohmann::json{{"checkpoint", report.checkpoint_dir}, {"step", report.step},
                                        {"batch_size", report.batch_size}, {"seq_len", report.seq_len},
                                        {"sets", sets}}
                             .dump());
      return 0;
    }
    fmt::print("checkpoint {} (step {}), {} batches x {} x {} tokens per set\n", report.checkpoint_dir,
               report.step, report.sets.empty() ? 0 : report.sets[0].batches, report.batch_size,
               report.seq_len);
    for (const auto& s : report.sets)
      fmt::print("  {}: loss {:.4f}, perplexity {:.3f}\n", s.name, s.loss, s.perplexity);
    return 0;
  };
}

}  // namespace lmt::app
