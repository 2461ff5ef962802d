#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace lmt {

int32_t sample_token(const float* logits, int V, const SamplingOptions& options, Rng& rng) {
  if (options.temperature <= 0.0) return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  // Candidates by descending logit (ties by id), cut by top_k, then by top_p on their softmax.
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = order.size();
  if (options.top_k > 0 && static_cast<size_t>(options.top_k) < keep) {
    keep = static_cast<size_t>(options.top_k);
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(keep), order.end(), by_logit);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  const double top = logits[order[0]];
  std::vector<double> weights(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    weights[i] = std::exp((logits[order[i]] - top) / options.temperature);
    total += weights[i];
  }
  if (options.top_p < 1.0) {
    double mass = 0.0;
    size_t cut = 0;
    while (cut < keep) {
      mass += weights[cut++] / total;
      if (mass >= options.top_p) break;
    }
    keep = cut;
    total = std::accumulate(weights.begin(), weights.begin() + static_cast<long>(keep), 0.0);
  }
  double u = rng.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    if (u < weights[i]) return order[i];
    u -= weights[i];
  }
  return order[keep - 1];
}

std::vector<std::vector<int32_t>> generate_tokens(GPT& model, const std::vector<int32_t>& prompt, int num_samples,
                                                  int64_t max_new_tokens, const SamplingOptions& sampling,
                                                  bool use_cache,
                                                  const std::function<bool(int64_t, const std::vector<int32_t>&)>& on_step) {
  LMT_CHECK(!prompt.empty() && num_samples >= 1, "generate_tokens needs a prompt and a sample");
  const int B = num_samples;
  const int context = model.config().max_seq_len;
  const int V = model.config().vocab_size;
  std::vector<std::vector<int32_t>> sequences(static_cast<size_t>(B), prompt);
  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(B));
  std::vector<Rng> rngs;
  for (int b = 0; b < B; ++b) rngs.emplace_back(hash_combine(sampling.seed, 0x67656E6572617465ull, static_cast<uint64_t>(b)));
  // The window is the last `context` tokens; `cached` of them are in the model's cache.
  int cached = 0;
  size_t window_start = 0;
  std::vector<int32_t> feed, dummy_targets;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const size_t length = sequences[0].size();
    const size_t start = length > static_cast<size_t>(context) ? length - static_cast<size_t>(context) : 0;
    const int window = static_cast<int>(length - start);
    std::vector<float> logits;
    if (use_cache) {
      if (start != window_start || cached == 0) {  // a new window: prefill it from the start
        model.start_generation(B, context);
        cached = 0;
        window_start = start;
      }
      const int fresh = window - cached;
      feed.resize(static_cast<size_t>(B) * fresh);
      for (int b = 0; b < B; ++b)
        std::copy(sequences[b].begin() + static_cast<long>(start) + cached, sequences[b].end(),
                  feed.begin() + static_cast<long>(b) * fresh);
      logits = model.generate_step(feed.data(), fresh);
      cached = window;
    } else {
      feed.resize(static_cast<size_t>(B) * window);
      for (int b = 0; b < B; ++b)
        std::copy(sequences[b].begin() + static_cast<long>(start), sequences[b].end(),
                  feed.begin() + static_cast<long>(b) * window);
      dummy_targets.assign(feed.size(), 0);
      model.forward(feed.data(), dummy_targets.data(), B, window);
      const std::vector<float> all = model.get_logits();  // (B, window, V)
      logits.resize(static_cast<size_t>(B) * V);
      for (int b = 0; b < B; ++b)
        std::copy_n(all.begin() + (static_cast<long>(b) * window + window - 1) * V, V, logits.begin() + static_cast<long>(b) * V);
    }
    std::vector<int32_t> next(static_cast<size_t>(B));
    for (int b = 0; b < B; ++b) {
      next[b] = sample_token(logits.data() + static_cast<size_t>(b) * V, V, sampling, rngs[b]);
      sequences[b].push_back(next[b]);
      generated[b].push_back(next[b]);
    }
    if (on_step && !on_step(step, next)) break;
  }
  return generated;
}

}  // namespace lmt
