#include "data/synthetic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/error.h"
#include "core/rng.h"

namespace lmt::data {

namespace {

constexpr uint64_t kMaxContexts = uint64_t{1} << 20;
constexpr uint64_t kMaxTableEntries = uint64_t{1} << 22;

// A de Bruijn sequence B(k, n) by concatenating Lyndon words in lexicographic order (Duval's
// algorithm): a cyclic sequence of length k^n containing every length-n word exactly once.
std::vector<int32_t> de_bruijn_sequence(int k, int n) {
  std::vector<int32_t> sequence;
  std::vector<int32_t> word = {-1};
  while (!word.empty()) {
    word.back() += 1;
    const size_t lyndon_length = word.size();
    if (n % lyndon_length == 0) sequence.insert(sequence.end(), word.begin(), word.end());
    while (word.size() < static_cast<size_t>(n)) word.push_back(word[word.size() - lyndon_length]);
    while (!word.empty() && word.back() == k - 1) word.pop_back();
  }
  return sequence;
}

// Uniform in (0, 1): never 0, so -log(u) is finite and every successor has positive weight.
double open_uniform(Rng& rng) { return (static_cast<double>(rng.next_u64() >> 11) + 0.5) * 0x1.0p-53; }

}  // namespace

MarkovSource::MarkovSource(const MarkovSpec& spec) : spec_(spec) {
  const std::string what = "synthetic Markov source";
  if (spec.vocab_size < 2 || spec.vocab_size > 65536) {
    throw Error(fmt::format("{}: vocab_size {} is outside [2, 65536]", what, spec.vocab_size));
  }
  if (spec.order < 1 || spec.order > 4) {
    throw Error(fmt::format("{}: order {} is outside [1, 4]", what, spec.order));
  }
  uint64_t num_contexts = 1;
  for (int i = 0; i < spec.order; ++i) {
    num_contexts *= static_cast<uint64_t>(spec.vocab_size);
    if (num_contexts > kMaxContexts) {
      throw Error(fmt::format("{}: vocab_size^order = {}^{} exceeds 2^20 contexts; lower the "
                              "vocab_size or the order", what, spec.vocab_size, spec.order));
    }
  }
  if (spec.branching < 1 || spec.branching > spec.vocab_size) {
    throw Error(fmt::format("{}: branching {} is outside [1, vocab_size = {}]", what, spec.branching,
                            spec.vocab_size));
  }
  if (num_contexts * static_cast<uint64_t>(spec.branching) > kMaxTableEntries) {
    throw Error(fmt::format("{}: vocab_size^order * branching = {} * {} exceeds 2^22 transitions; "
                            "lower the branching, vocab_size or order", what, num_contexts,
                            spec.branching));
  }
  num_contexts_ = num_contexts;
  const int vocab_size = spec.vocab_size;
  const size_t branching = spec.branching;

  // The de Bruijn successor of each context, read off the cyclic sequence with a rolling index.
  const std::vector<int32_t> cycle = de_bruijn_sequence(vocab_size, spec.order);
  if (cycle.size() != num_contexts_) throw std::logic_error("de Bruijn sequence has the wrong length");
  std::vector<int32_t> cycle_successor(num_contexts_, -1);
  size_t context = 0;
  for (int i = 0; i < spec.order; ++i) context = context * vocab_size + cycle[i];
  for (size_t i = 0; i < num_contexts_; ++i) {
    const int32_t next = cycle[(i + spec.order) % num_contexts_];
    cycle_successor[context] = next;
    context = (context * vocab_size + next) % num_contexts_;
  }

  successors_.resize(num_contexts_ * branching);
  probabilities_.resize(num_contexts_ * branching);
  Rng rng(hash_combine(spec.seed, 0x4D41524B4F56ull));  // "MARKOV": a stream of its own
  // Floyd's algorithm picks branching-1 distinct tokens among the vocab_size-1 others in
  // O(branching) per context; `stamp` marks picks without clearing a set for every context.
  std::vector<uint32_t> stamp(vocab_size, 0);
  for (size_t s = 0; s < num_contexts_; ++s) {
    int32_t* successors = &successors_[s * branching];
    const int32_t fixed = cycle_successor[s];
    if (fixed < 0) throw std::logic_error("de Bruijn sequence missed a context");
    const auto marker = static_cast<uint32_t>(s + 1);
    const uint64_t num_others = vocab_size - 1;
    size_t count = 0;
    successors[count++] = fixed;
    for (uint64_t j = num_others - (branching - 1); j < num_others; ++j) {
      uint64_t pick = rng.below(j + 1);
      if (stamp[pick] == marker) pick = j;
      stamp[pick] = marker;
      successors[count++] = static_cast<int32_t>(pick >= static_cast<uint64_t>(fixed) ? pick + 1 : pick);
    }
    std::sort(successors, successors + branching);
    double* probabilities = &probabilities_[s * branching];
    double total = 0.0;
    for (size_t j = 0; j < branching; ++j) {
      probabilities[j] = -std::log(open_uniform(rng));
      total += probabilities[j];
    }
    for (size_t j = 0; j < branching; ++j) probabilities[j] /= total;
  }
}

size_t MarkovSource::context_index(std::span<const int32_t> context, const char* caller) const {
  if (context.size() != static_cast<size_t>(spec_.order)) {
    throw Error(fmt::format("MarkovSource::{}: context has {} tokens but the order is {}", caller,
                            context.size(), spec_.order));
  }
  size_t index = 0;
  for (int32_t token : context) {
    if (token < 0 || token >= spec_.vocab_size) {
      throw Error(fmt::format("MarkovSource::{}: token {} is outside [0, vocab_size = {})", caller,
                              token, spec_.vocab_size));
    }
    index = index * spec_.vocab_size + token;
  }
  return index;
}

int32_t MarkovSource::sample_next(size_t context, double uniform) const {
  const size_t branching = spec_.branching;
  const double* probabilities = &probabilities_[context * branching];
  double cumulative = 0.0;
  for (size_t j = 0; j + 1 < branching; ++j) {
    cumulative += probabilities[j];
    if (uniform < cumulative) return successors_[context * branching + j];
  }
  // Rounding can leave the cumulative sum just under 1: the last successor takes the rest.
  return successors_[context * branching + branching - 1];
}

std::vector<int32_t> MarkovSource::generate(size_t num_tokens, uint64_t stream_seed) const {
  Rng rng(hash_combine(spec_.seed, 0x47454E4552415445ull, stream_seed));  // "GENERATE"
  std::vector<int32_t> tokens;
  tokens.reserve(num_tokens);
  size_t context = 0;
  for (int i = 0; i < spec_.order && tokens.size() < num_tokens; ++i) {
    const auto token = static_cast<int32_t>(rng.below(spec_.vocab_size));
    tokens.push_back(token);
    context = context * spec_.vocab_size + token;
  }
  while (tokens.size() < num_tokens) {
    const int32_t token = sample_next(context, rng.uniform());
    tokens.push_back(token);
    context = (context * spec_.vocab_size + token) % num_contexts_;
  }
  return tokens;
}

double MarkovSource::conditional_log_prob(std::span<const int32_t> context_last_order, int32_t next) const {
  const size_t context = context_index(context_last_order, "conditional_log_prob");
  if (next < 0 || next >= spec_.vocab_size) {
    throw Error(fmt::format("MarkovSource::conditional_log_prob: next token {} is outside [0, "
                            "vocab_size = {})", next, spec_.vocab_size));
  }
  const size_t branching = spec_.branching;
  const int32_t* begin = &successors_[context * branching];
  const int32_t* end = begin + branching;
  const int32_t* found = std::lower_bound(begin, end, next);
  if (found == end || *found != next) return -std::numeric_limits<double>::infinity();
  return std::log(probabilities_[context * branching + (found - begin)]);
}

double MarkovSource::oracle_loss(std::span<const int32_t> tokens) const {
  const size_t order = spec_.order;
  if (tokens.size() <= order) {
    throw Error(fmt::format("MarkovSource::oracle_loss: needs more than order = {} tokens, got {}",
                            order, tokens.size()));
  }
  double total = 0.0;
  for (size_t t = order; t < tokens.size(); ++t) {
    total -= conditional_log_prob(tokens.subspan(t - order, order), tokens[t]);
  }
  return total / static_cast<double>(tokens.size() - order);
}

double MarkovSource::entropy_rate() const {
  const size_t branching = spec_.branching;
  std::vector<double> entropy(num_contexts_, 0.0);
  for (size_t s = 0; s < num_contexts_; ++s) {
    for (size_t j = 0; j < branching; ++j) {
      const double p = probabilities_[s * branching + j];
      if (p > 0) entropy[s] -= p * std::log(p);
    }
  }
  std::vector<double> pi(num_contexts_, 1.0 / static_cast<double>(num_contexts_));
  std::vector<double> next_pi(num_contexts_);
  // Stop when an iteration moves pi by less than 1e-13 in L1, or after a work budget: the
  // entropy rate is then accurate far beyond the sampling noise it is compared against.
  const size_t max_iterations =
      std::max<size_t>(200, (size_t{1} << 30) / std::max<size_t>(1, num_contexts_ * branching));
  for (size_t iteration = 0; iteration < max_iterations; ++iteration) {
    for (size_t s = 0; s < num_contexts_; ++s) next_pi[s] = 0.5 * pi[s];
    for (size_t s = 0; s < num_contexts_; ++s) {
      const double half_mass = 0.5 * pi[s];
      const size_t shifted = (s * spec_.vocab_size) % num_contexts_;
      for (size_t j = 0; j < branching; ++j) {
        next_pi[shifted + successors_[s * branching + j]] += half_mass * probabilities_[s * branching + j];
      }
    }
    double change = 0.0;
    for (size_t s = 0; s < num_contexts_; ++s) change += std::abs(next_pi[s] - pi[s]);
    pi.swap(next_pi);
    if (change < 1e-13) break;
  }
  double rate = 0.0;
  for (size_t s = 0; s < num_contexts_; ++s) rate += pi[s] * entropy[s];
  return rate;
}

}  // namespace lmt::data
