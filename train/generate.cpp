#include "train/generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/file_io.h"
#include "data/tokenizer.h"
#include "train/device.h"
#include "train/model_source.h"

namespace lmt {

namespace {

void check_options(const GenerateOptions& o) {
  const int prompts = (o.prompt ? 1 : 0) + (o.prompt_file ? 1 : 0) + (o.prompt_ids ? 1 : 0);
  if (prompts != 1) throw Error("give exactly one of --prompt, --prompt-file and --prompt-ids");
  if (o.max_new_tokens < 0) throw Error(fmt::format("--max-new-tokens must be at least 0 (got {})", o.max_new_tokens));
  if (!(o.sampling.temperature >= 0.0) || !std::isfinite(o.sampling.temperature))
    throw Error(fmt::format("--temperature must be a number >= 0 (got {}); 0 is greedy", o.sampling.temperature));
  if (o.sampling.top_k < 0) throw Error(fmt::format("--top-k must be at least 0 (got {}); 0 keeps every token", o.sampling.top_k));
  if (!(o.sampling.top_p > 0.0 && o.sampling.top_p <= 1.0))
    throw Error(fmt::format("--top-p must be in (0, 1] (got {}); 1 keeps every token", o.sampling.top_p));
  if (o.num_samples < 1 || o.num_samples > 1024)
    throw Error(fmt::format("--num-samples must be in [1, 1024] (got {})", o.num_samples));
}

}  // namespace

std::vector<GeneratedSample> generate_from_checkpoint(const GenerateOptions& options,
                                                      const std::function<void(const std::string&)>& write,
                                                      const std::function<void(const std::string&)>& notice) {
  check_options(options);
  const InferenceCheckpoint ck = open_for_inference(options.checkpoint);
  const GPTConfig& cfg = ck.cfg;

  std::vector<std::string> looked;
  const std::optional<data::Tokenizer> tokenizer = find_model_tokenizer(ck, options.tokenizer, looked);
  std::vector<int32_t> prompt;
  if (options.prompt_ids) {
    prompt = *options.prompt_ids;
  } else {
    if (!tokenizer)
      throw Error(fmt::format("no tokenizer for this run (looked for {}); pass --tokenizer FILE, or give the prompt "
                              "as token ids with --prompt-ids",
                              looked.empty() ? "none: synthetic data" : fmt::format("{}", fmt::join(looked, ", "))));
    const std::string text = options.prompt ? *options.prompt : read_file_bytes(*options.prompt_file, "--prompt-file");
    prompt = tokenizer->encode(text);
  }
  if (prompt.empty()) throw Error("the prompt is empty; give at least one token");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= cfg.vocab_size)
      throw Error(fmt::format("prompt token {} is {}, outside the model's vocabulary [0, {})", i, prompt[i], cfg.vocab_size));
  if (prompt.size() > static_cast<size_t>(cfg.max_seq_len)) {
    notice(fmt::format("the prompt has {} tokens; the model's context is {}: keeping the last {}", prompt.size(),
                       cfg.max_seq_len, cfg.max_seq_len));
    prompt.erase(prompt.begin(), prompt.end() - cfg.max_seq_len);
  }

  InferenceModel inference = build_inference_model(ck, options.device);
  if (!inference.choice.notice.empty()) notice(inference.choice.notice);
  GPT& model = *inference.gpt;

  const int B = static_cast<int>(options.num_samples);
  const bool stream = B == 1 && !options.json;
  std::vector<std::string> texts(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  std::vector<size_t> lengths(static_cast<size_t>(B), 0);  // tokens kept (up to a stop)
  auto on_step = [&](int64_t, const std::vector<int32_t>& next) {
    bool all_done = true;
    for (int b = 0; b < B; ++b) {
      if (done[b]) continue;
      ++lengths[b];
      if (tokenizer) {
        const std::string piece = tokenizer->decode(std::span(&next[b], 1));
        texts[b] += piece;
        if (stream) write(piece);
      }
      if (!options.stop.empty() && texts[b].find(options.stop) != std::string::npos) done[b] = true;
      all_done = all_done && done[b];
    }
    return !all_done;
  };
  std::vector<std::vector<int32_t>> ids =
      generate_tokens(model, prompt, B, options.max_new_tokens, options.sampling, options.use_cache, on_step);
  std::vector<GeneratedSample> samples(static_cast<size_t>(B));
  for (int b = 0; b < B; ++b) {
    samples[b].prompt_ids = prompt;
    samples[b].ids.assign(ids[b].begin(), ids[b].begin() + static_cast<long>(std::min(lengths[b], ids[b].size())));
    samples[b].text = tokenizer ? tokenizer->decode(samples[b].ids) : std::string();
  }
  return samples;
}

}  // namespace lmt
