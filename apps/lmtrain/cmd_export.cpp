// lmtrain export --checkpoint DIR|hf:DIR --format hf --out OUT [--tokenizer FILE]
#include <fmt/format.h>

#include "apps/lmtrain/commands.h"
#include "train/model_source.h"

namespace lmt::app {

Action add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "write a checkpoint's model in another format (Hugging Face GPT-2)");
  auto options = std::make_shared<ExportOptions>();
  auto format = std::make_shared<std::string>("hf");
  cmd->add_option("--checkpoint", options->checkpoint,
                  "a step_* directory, a checkpoint folder holding `latest`, or hf:DIR")
      ->required();
  cmd->add_option("--format", *format, "hf: config.json + model.safetensors (+ GPT-2 tokenizer files), "
                                       "for transformers' from_pretrained")
      ->check(CLI::IsMember({"hf"}));
  cmd->add_option("--out", options->out, "the directory to create (must not exist)")->required();
  cmd->add_option("--tokenizer", options->tokenizer, "tokenizer.json (default: the run's, found from the checkpoint)");
  return [options, format] {  // `format` must outlive the parse: CLI11 writes into it
    const HfExportResult result = export_model(*options);
    fmt::print("exported {} to {}: {}\n", options->checkpoint, result.dir, fmt::join(result.files, ", "));
    fmt::print("tokenizer: {}\n", result.tokenizer_note);
    return 0;
  };
}

}  // namespace lmt::app
