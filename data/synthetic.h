// A synthetic corpus with a known entropy floor: an order-k Markov chain over a small
// vocabulary. A model trained on it cannot beat entropy_rate() nats per token on average, and
// oracle_loss() gives the loss of a perfect model on any particular sample, so a training curve
// can be shown next to the best achievable value (the quickstart recipe and tests use this).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace lmt::data {

struct MarkovSpec {
  int vocab_size = 32;  // 2..65536
  int order = 2;        // 1..4: how many previous tokens form the context
  int branching = 4;    // 1..vocab_size: distinct successors per context
  uint64_t seed = 1;    // everything about the chain derives from this
};

// Each context (the last `order` tokens) has `branching` distinct successors with random
// probabilities (weights -log(uniform), normalized: a flat Dirichlet draw, so some successors
// are clearly more likely than others). One successor of every context follows a de Bruijn
// sequence, which threads a cycle through all contexts: the chain is irreducible, so every
// long sample visits all contexts with the stationary frequencies and its per-token loss
// converges to entropy_rate().
class MarkovSource {
 public:
  // Throws lmt::Error unless 2 <= vocab_size <= 65536, 1 <= order <= 4,
  // vocab_size^order <= 2^20, 1 <= branching <= vocab_size and
  // vocab_size^order * branching <= 2^22 (the transition table stays under ~50 MB).
  explicit MarkovSource(const MarkovSpec& spec);

  // num_tokens tokens: a uniformly random first context, then samples from the chain. The
  // same (spec, stream_seed) always gives the same tokens.
  std::vector<int32_t> generate(size_t num_tokens, uint64_t stream_seed) const;

  // ln P(next | context), context = the last `order` tokens, oldest first; -infinity when
  // `next` is not a successor. Throws lmt::Error on a wrong context length or out-of-range id.
  double conditional_log_prob(std::span<const int32_t> context_last_order, int32_t next) const;

  // Mean over positions t >= order of -ln P(tokens[t] | tokens[t-order..t-1]): the loss a
  // perfect model gets on this sample (+infinity if a transition is impossible). Throws
  // lmt::Error if tokens has order or fewer elements or an id is out of range.
  double oracle_loss(std::span<const int32_t> tokens) const;

  // sum_s pi(s) H(P(.|s)) in nats per token, with pi the stationary distribution of the
  // context chain (power iteration from uniform on the lazy chain (I + P) / 2, which has the
  // same stationary distribution and converges even if the chain is periodic). The oracle
  // loss of a generated sample agrees with it up to sampling noise (about 1/sqrt(num_tokens)).
  double entropy_rate() const;

  const MarkovSpec& spec() const { return spec_; }

 private:
  size_t context_index(std::span<const int32_t> context, const char* caller) const;
  int32_t sample_next(size_t context, double uniform) const;

  MarkovSpec spec_;
  size_t num_contexts_ = 0;             // vocab_size^order
  std::vector<int32_t> successors_;     // (num_contexts, branching), ascending per context
  std::vector<double> probabilities_;   // (num_contexts, branching)
};

}  // namespace lmt::data
