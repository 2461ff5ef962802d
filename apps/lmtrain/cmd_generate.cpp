// lmtrain generate --checkpoint DIR|hf:DIR (--prompt TEXT | --prompt-file F | --prompt-ids 1,2,3)
//   [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--num-samples N]
//   [--stop TEXT] [--tokenizer FILE] [--json] [--device cpu|cuda|auto] [--no-kv-cache]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "train/generate.h"

namespace lmt::app {
namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(begin, end - begin);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int32_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      throw Error(fmt::format("--prompt-ids: '{}' is not a token id; give integers separated by commas, e.g. 1,2,3",
                              item));
    ids.push_back(value);
    begin = end + 1;
  }
  return ids;
}

}  // namespace

Action add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "sample text from a checkpoint (KV-cached decoding)");
  auto options = std::make_shared<GenerateOptions>();
  struct Flags {
    std::string prompt, prompt_file, prompt_ids;
    bool no_cache = false;
  };
  auto flags = std::make_shared<Flags>();
  cmd->add_option("--checkpoint", options->checkpoint,
                  "a step_* directory, a checkpoint folder holding `latest`, or hf:DIR (a Hugging Face GPT-2)")
      ->required();
  auto* prompt = cmd->add_option("--prompt", flags->prompt, "the text to continue");
  auto* prompt_file = cmd->add_option("--prompt-file", flags->prompt_file, "a file holding the text to continue");
  auto* prompt_ids = cmd->add_option("--prompt-ids", flags->prompt_ids, "the prompt as token ids, e.g. 1,2,3");
  cmd->add_option("--max-new-tokens", options->max_new_tokens, "tokens to generate per sample (default 256)");
  cmd->add_option("--temperature", options->sampling.temperature, "divides the logits; 0 = greedy (default 1)");
  cmd->add_option("--top-k", options->sampling.top_k, "sample among the K most likely tokens; 0 = all (default)");
  cmd->add_option("--top-p", options->sampling.top_p, "sample among the most likely tokens holding P of the "
                                                      "probability (nucleus); 1 = all (default)");
  cmd->add_option("--seed", options->sampling.seed, "seed of the sampling (default 1337)");
  cmd->add_option("--num-samples", options->num_samples, "samples of the same prompt, generated as one batch");
  cmd->add_option("--stop", options->stop, "end a sample once its text contains this");
  cmd->add_option("--tokenizer", options->tokenizer, "tokenizer.json (default: the run's, found from the checkpoint)");
  cmd->add_flag("--json", options->json, "one JSON object per sample: prompt_ids, ids (the new tokens), text");
  cmd->add_flag("--no-kv-cache", flags->no_cache, "a full forward over the context for every token (slow; for checks)");
  add_device_option(cmd, options->device, "where to run (default cpu)");
  return [options, flags, prompt, prompt_file, prompt_ids] {
    if (*prompt) options->prompt = flags->prompt;
    if (*prompt_file) options->prompt_file = flags->prompt_file;
    if (*prompt_ids) options->prompt_ids = parse_ids(flags->prompt_ids);
    options->use_cache = !flags->no_cache;
    const bool stream = options->num_samples == 1 && !options->json;
    bool prompt_shown = false;
    auto write = [&](const std::string& piece) {
      if (!prompt_shown) {
        if (options->prompt) fmt::print("{}", *options->prompt);
        prompt_shown = true;
      }
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    auto notice = [](const std::string& text) { fmt::print(stderr, "{}\n", text); };
    const std::vector<GeneratedSample> samples = generate_from_checkpoint(*options, write, notice);
    if (options->json) {
      for (const auto& s : samples)
        fmt::print("{}\n", nlohmann::json{{"prompt_ids", s.prompt_ids}, {"ids", s.ids}, {"text", s.text}}.dump());
      return 0;
    }
    if (stream) {
      if (samples[0].text.empty() && !samples[0].ids.empty())  // no tokenizer: the ids
        fmt::print("{}", fmt::join(samples[0].ids, " "));
      fmt::print("\n");
      return 0;
    }
    for (size_t i = 0; i < samples.size(); ++i) {
      fmt::print("--- sample {} ---\n", i + 1);
      if (options->prompt) fmt::print("{}", *options->prompt);
      if (samples[i].text.empty()) fmt::print("{}", fmt::join(samples[i].ids, " "));
      fmt::print("{}\n", samples[i].text);
    }
    return 0;
  };
}

}  // namespace lmt::app
