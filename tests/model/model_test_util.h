// Helpers shared by the model tests: a small GPT shape and seeded random token ids.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/gpt_config.h"

namespace lmt::testing {

// 2 layers, 2 heads, 24 channels, vocab 37 (padded to 64), context 16.
inline lmt::GPTConfig small_config() {
  lmt::GPTConfig cfg;
  cfg.max_seq_len = 16;
  cfg.vocab_size = 37;
  cfg.padded_vocab_size = 64;
  cfg.num_layers = 2;
  cfg.num_heads = 2;
  cfg.channels = 24;
  return cfg;
}

inline std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  lmt::Rng rng(seed);
  std::vector<int32_t> out(n);
  for (auto& t : out) t = static_cast<int32_t>(rng.below(vocab));
  return out;
}

}  // namespace lmt::testing
