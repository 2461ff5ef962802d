// `lmtrain generate`: text from a trained checkpoint, decoded with the run's tokenizer; the
// decoding itself is model/sampling.h.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "model/sampling.h"

namespace lmt {

struct GenerateOptions {
  std::string checkpoint;          // a step directory or a checkpoint root holding `latest`
  std::optional<std::string> prompt;       // text
  std::optional<std::string> prompt_file;  // text from a file
  std::optional<std::vector<int32_t>> prompt_ids;
  std::string tokenizer;           // empty: the run's (see find_tokenizer)
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  int64_t num_samples = 1;
  std::string stop;                // a sample ends once its text contains this
  bool json = false;               // one JSON object per sample instead of text
  bool use_cache = true;           // --no-kv-cache: a full forward per token
  DeviceKind device = DeviceKind::kCpu;
};

struct GeneratedSample {
  std::vector<int32_t> prompt_ids, ids;  // ids: the new tokens only
  std::string text;                      // their decoded text ("" without a tokenizer)
};

// Loads the checkpoint and its tokenizer, generates, and streams: with one sample and no --json,
// `write` receives the text as it is produced; otherwise each finished sample. Notices (a cut
// prompt) go to `notice`. Throws lmt::Error on bad input before anything is generated.
std::vector<GeneratedSample> generate_from_checkpoint(const GenerateOptions& options,
                                                      const std::function<void(const std::string&)>& write,
                                                      const std::function<void(const std::string&)>& notice);

}  // namespace lmt
