// lmtrain data prepare --input FILE|GLOB... --out DIR [--tokenizer char|byte|FILE] [...]
// lmtrain data tokenizer ... (cmd_tokenizer.cpp)
#include <fmt/format.h>

#include "apps/lmtrain/commands.h"
#include "core/strings.h"
#include "data/prepare.h"

namespace lmt::app {

Action add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "prepare training data and tokenizers");
  data->require_subcommand(1);
  auto* prepare = data->add_subcommand("prepare", "turn text files into train/val token shards");
  auto options = std::make_shared<data::PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  prepare->add_option("--input", options->inputs,
                      "text files or globs (quote them); .jsonl files hold one JSON document per line")
      ->required();
  prepare->add_option("--tokenizer", options->tokenizer,
                      "char, byte, or a tokenizer file (tok.json, or GPT-2's vocab.json with merges.txt)");
  prepare->add_option("--out", options->out_dir, "output folder for the shards, tokenizer.json, prepare.json")
      ->required();
  prepare->add_option("--val-fraction", options->val_fraction, "share kept for validation (default 0.1)");
  prepare->add_option("--split", options->split,
                      "documents (every k-th document), tail (the last tokens) or auto (default: tail for "
                      "one text file, else documents)");
  prepare->add_option("--doc-separator", options->doc_separator,
                      "split text files into documents at this string (e.g. '<|endoftext|>')");
  prepare->add_option("--json-key", options->json_key, "field holding the text in .jsonl files (default text)");
  prepare->add_option("--shard-tokens", options->shard_tokens, "tokens per shard (default 100000000)");
  prepare->add_option("--threads", options->threads, "encoding threads; 0 = all cores (default)");
  prepare->add_flag("--quiet", *quiet, "no progress bar");
  Action tokenizer_action = add_tokenizer_command(*data);
  return [options, quiet, prepare, tokenizer_action] {
    if (!prepare->parsed()) return tokenizer_action();
    options->progress = !*quiet;
    const data::PrepareSummary s = data::prepare_data(*options);
    fmt::print("prepared {} of text in {:.1f} s ({:.1f} MB/s): {} document{} ({} val), {} train tokens, {} val "
               "tokens, vocab {}, split by {}{}\n",
               human_bytes(static_cast<double>(s.num_bytes)), s.seconds,
               s.seconds > 0 ? static_cast<double>(s.num_bytes) / 1e6 / s.seconds : 0.0, with_commas(s.documents),
               s.documents == 1 ? "" : "s",
               with_commas(s.val_documents), with_commas(s.train_tokens), with_commas(s.val_tokens),
               s.vocab_size, s.split, s.end_of_text ? ", each document preceded by <|endoftext|>" : "");
    if (s.val_tokens == 0 && options->val_fraction > 0)
      fmt::print("warning: no validation tokens ({} documents are too few for --val-fraction {}); use "
                 "--split tail or more documents\n", s.documents, options->val_fraction);
    for (const auto& f : s.files_written) fmt::print("  wrote {}\n", f);
    return 0;
  };
}

}  // namespace lmt::app
