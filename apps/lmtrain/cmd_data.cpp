// lmtrain data prepare --input FILE... --tokenizer char|byte --out DIR [--val-fraction F]
#include <fmt/format.h>

#include "apps/lmtrain/commands.h"
#include "core/strings.h"
#include "data/prepare.h"

namespace lmt::app {

Action add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "prepare training data");
  data->require_subcommand(1);
  auto* prepare = data->add_subcommand("prepare", "turn text files into train/val token shards");
  auto options = std::make_shared<data::PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  prepare->add_option("--input", options->inputs, "text file(s) to tokenize, concatenated in order")
      ->required();
  prepare->add_option("--tokenizer", options->tokenizer, "char (distinct characters) or byte (256)")
      ->check(CLI::IsMember({"char", "byte"}));
  prepare->add_option("--out", options->out_dir, "output folder for train.bin, val.bin, tokenizer.json")
      ->required();
  prepare->add_option("--val-fraction", options->val_fraction,
                      "share of tokens, taken from the end, kept for validation (default 0.1)");
  prepare->add_flag("--quiet", *quiet, "no progress bar");
  return [options, quiet, prepare] {
    if (!prepare->parsed()) return 2;
    options->progress = !*quiet;
    data::PrepareSummary summary = data::prepare_data(*options);
    fmt::print("prepared {} of text: {} train tokens, {} val tokens, vocab {}\n",
               human_bytes(static_cast<double>(summary.num_bytes)), with_commas(summary.train_tokens),
               with_commas(summary.val_tokens), summary.vocab_size);
    for (const auto& f : summary.files_written) fmt::print("  wrote {}\n", f);
    return 0;
  };
}

}  // namespace lmt::app
