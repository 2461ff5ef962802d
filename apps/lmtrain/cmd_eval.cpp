// lmtrain eval --checkpoint DIR|hf:DIR [--data GLOB]... [--batches N] [--seq-len T] [--json]
//              [--task loss|hellaswag] [--limit N] [--tokenizer FILE]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/lmtrain/commands.h"
#include "train/evaluate.h"
#include "train/hellaswag.h"

namespace lmt::app {
namespace {

int print_choices(const ChoiceReport& r, bool as_json) {
  if (as_json) {
    nlohmann::json examples = nlohmann::json::array();
    for (const auto& s : r.scores)
      examples.push_back({{"pred", s.pred}, {"pred_norm", s.pred_norm}, {"sum_losses", s.sum_losses},
                          {"mean_losses", s.mean_losses}});
    fmt::print("{}\n", nlohmann::json{{"checkpoint", r.checkpoint_dir}, {"step", r.step}, {"task", "hellaswag"},
                                      {"data", r.data}, {"examples", r.examples}, {"acc", r.acc},
                                      {"acc_norm", r.acc_norm}, {"cropped", r.cropped}, {"scores", examples}}
                             .dump());
    return 0;
  }
  fmt::print("checkpoint {} (step {}), hellaswag {}: {} examples\n", r.checkpoint_dir, r.step, r.data, r.examples);
  fmt::print("  acc {:.4f}, acc_norm {:.4f}{}\n", r.acc, r.acc_norm,
             r.cropped ? fmt::format(" ({} contexts cut from the left to fit the model)", r.cropped) : "");
  return 0;
}

}  // namespace

Action add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "validation loss and perplexity of a checkpoint");
  auto options = std::make_shared<EvalOptions>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("--checkpoint", options->checkpoint,
                  "a step_* directory, a checkpoint folder holding `latest`, or hf:DIR (a Hugging Face GPT-2)")
      ->required();
  cmd->add_option_function<std::string>(
         "--task", [options](const std::string& name) { options->task = *enum_from_name<EvalTask>(name); },
         "loss: loss and perplexity on token shards (default); hellaswag: multiple-choice accuracy (acc, acc_norm) "
         "on a HellaSwag jsonl file")
      ->check(CLI::IsMember(enum_name_list<EvalTask>()));
  cmd->add_option("--data", options->data,
                  "loss: validation shard or glob (repeatable; default: the run's val set); hellaswag: the jsonl file")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--batches", options->batches, "batches per set (default: the recipe's eval.batches)")
      ->check(at_least(1));
  cmd->add_option("--seq-len", options->seq_len, "tokens per window (default: the recipe's run.seq_len)")
      ->check(at_least(1));
  cmd->add_option("--limit", options->limit, "hellaswag: only the first N examples")->check(at_least(1));
  cmd->add_option("--tokenizer", options->tokenizer, "hellaswag: tokenizer.json (default: the run's)");
  add_device_option(cmd, options->device, "where to run (default cpu)");
  cmd->add_flag("--json", *as_json, "print one JSON object instead of text");
  return [options, as_json] {
    if (options->task == EvalTask::kHellaswag) {
      return print_choices(evaluate_choices(*options,
                                            [](int64_t done, int64_t total, const ChoiceReport& r) {
                                              if (done < total)
                                                fmt::print(stderr, "hellaswag: {}/{} examples, acc_norm {:.4f}\n",
                                                           done, total, r.acc_norm);
                                            }),
                           *as_json);
    }
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
