// Decoding from a GPT: one token from a row of logits (greedy, temperature, top-k, top-p), and
// the loop that extends prompts with the model's key/value cache (GPT::start_generation). The
// context is nanoGPT's sample.py's: the last max_seq_len tokens; once a sequence is longer, every
// further step re-reads that window from its start (a new prefill), which gives exactly the
// tokens a full forward over the window would.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "model/gpt.h"

namespace lmt {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: all tokens
  double top_p = 1.0;        // nucleus: the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 1337;
};

// The next token from one row of V logits; with temperature 0, the first largest logit.
int32_t sample_token(const float* logits, int V, const SamplingOptions& options, Rng& rng);

// num_samples continuations of `prompt` (each its own random stream), max_new_tokens each.
// on_step(step, tokens) is called after every step with the new token of each sample; returning
// false stops early (every sample is done). use_cache false runs a full forward over the window
// at every step instead (the reference the cache is tested against).
std::vector<std::vector<int32_t>> generate_tokens(GPT& model, const std::vector<int32_t>& prompt,
                                                  int num_samples, int64_t max_new_tokens,
                                                  const SamplingOptions& sampling, bool use_cache,
                                                  const std::function<bool(int64_t, const std::vector<int32_t>&)>& on_step = {});

}  // namespace lmt
