// Generation: decoding with the key/value cache gives the tokens a full forward over the context
// gives (greedy, token for token, also once the window slides past max_seq_len), the logits of
// a cached step equal the full forward's last row, and sample_token's filters do what they say.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "core/rng.h"
#include "cpu/cpu_backend.h"
#include "model/gpt.h"
#include "model/sampling.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

using lmt::testing::random_tokens;

namespace {

// The small test shape with a context of 20 (the window slides in the tests below).
lmt::GPTConfig tiny_config() {
  lmt::GPTConfig cfg = lmt::testing::small_config();
  cfg.max_seq_len = 20;
  return cfg;
}

}  // namespace

TEST_CASE("generation: a cached step's logits equal a full forward's last row", "[model][generate]") {
  auto backend = lmt::cpu::make_cpu_backend(1);
  const lmt::GPTConfig cfg = tiny_config();
  lmt::GPT model(*backend, cfg);
  model.init_weights(7, 0.2);
  const int B = 3, T = 11;
  const std::vector<int32_t> tokens = random_tokens(B * T, cfg.vocab_size, 4);
  model.start_generation(B, cfg.max_seq_len);
  // Prefill 6 positions, then one at a time; after each step compare with a full forward.
  int fed = 0;
  for (const int Tn : {6, 1, 1, 1, 1, 1}) {
    std::vector<int32_t> chunk(static_cast<size_t>(B) * Tn);
    for (int b = 0; b < B; ++b)
      std::copy_n(tokens.begin() + b * T + fed, Tn, chunk.begin() + b * Tn);
    const std::vector<float> cached = model.generate_step(chunk.data(), Tn);
    fed += Tn;
    CHECK(model.generation_length() == fed);
    std::vector<int32_t> prefix(static_cast<size_t>(B) * fed), targets(prefix.size(), 0);
    for (int b = 0; b < B; ++b) std::copy_n(tokens.begin() + b * T, fed, prefix.begin() + b * fed);
    model.forward(prefix.data(), targets.data(), B, fed);
    const std::vector<float> all = model.get_logits();
    std::vector<float> last(static_cast<size_t>(B) * cfg.vocab_size);
    for (int b = 0; b < B; ++b)
      std::copy_n(all.begin() + (static_cast<long>(b) * fed + fed - 1) * cfg.vocab_size, cfg.vocab_size,
                  last.begin() + static_cast<long>(b) * cfg.vocab_size);
    lmt::testing::check_close(cached, last, 1e-5, 1e-4, "logits after " + std::to_string(fed) + " positions");
  }
  // Past the capacity: a clear error, not a write outside the cache.
  std::vector<int32_t> too_many(static_cast<size_t>(B) * (cfg.max_seq_len - fed + 1), 1);
  CHECK_THROWS_WITH(model.generate_step(too_many.data(), cfg.max_seq_len - fed + 1),
                    Catch::Contains("exceed the cache's 20"));
}

TEST_CASE("generation: cached and uncached greedy decoding agree token for token", "[model][generate]") {
  auto backend = lmt::cpu::make_cpu_backend(0);
  const lmt::GPTConfig cfg = tiny_config();
  lmt::GPT model(*backend, cfg);
  model.init_weights(11, 0.3);  // large weights: confident, well separated logits
  lmt::SamplingOptions greedy;
  greedy.temperature = 0.0;
  for (const size_t prompt_length : {size_t{1}, size_t{7}, size_t{20}}) {
    DYNAMIC_SECTION("prompt of " << prompt_length) {
      const std::vector<int32_t> prompt = random_tokens(prompt_length, cfg.vocab_size, prompt_length);
      // 30 new tokens: the sequence outgrows the 20-token context and the window slides.
      const auto cached = lmt::generate_tokens(model, prompt, 2, 30, greedy, true);
      const auto uncached = lmt::generate_tokens(model, prompt, 2, 30, greedy, false);
      REQUIRE(cached.size() == 2);
      CHECK(cached[0].size() == 30);
      CHECK(cached == uncached);
      CHECK(cached[0] == cached[1]);  // greedy: the samples of one prompt are the same
    }
  }
  // Sampling: the same seed gives the same tokens with and without the cache, another seed others.
  lmt::SamplingOptions sampled;
  sampled.temperature = 0.8;
  sampled.top_k = 5;
  const std::vector<int32_t> prompt = random_tokens(5, cfg.vocab_size, 9);
  const auto a = lmt::generate_tokens(model, prompt, 3, 25, sampled, true);
  CHECK(a == lmt::generate_tokens(model, prompt, 3, 25, sampled, false));
  CHECK(a[0] != a[1]);  // each sample has its own stream
  sampled.seed = 7;
  CHECK(a != lmt::generate_tokens(model, prompt, 3, 25, sampled, true));
}

TEST_CASE("sample_token: greedy, top-k, top-p and temperature", "[model][generate]") {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  lmt::Rng rng(1);
  lmt::SamplingOptions o;
  o.temperature = 0.0;
  CHECK(lmt::sample_token(logits.data(), 5, o, rng) == 1);  // the first of the two largest
  auto histogram = [&](const lmt::SamplingOptions& options, int draws) {
    std::map<int32_t, int> counts;
    for (int i = 0; i < draws; ++i) ++counts[lmt::sample_token(logits.data(), 5, options, rng)];
    return counts;
  };
  o.temperature = 1.0;
  o.top_k = 2;  // only ids 1 and 3 (tied at 3.0)
  auto counts = histogram(o, 4000);
  CHECK(counts.size() == 2);
  CHECK(counts[1] + counts[3] == 4000);
  CHECK(std::abs(counts[1] - 2000) < 200);
  o.top_k = 0;
  o.top_p = 0.5;  // p = softmax: ids 1 and 3 hold 0.40 each, so the nucleus is {1, 3}
  counts = histogram(o, 2000);
  CHECK(counts.size() == 2);
  o.top_p = 1.0;
  counts = histogram(o, 20000);  // every id, in softmax proportions: e^3 / e^2 for ids 1 and 2
  CHECK(counts.size() == 5);
  CHECK(static_cast<double>(counts[1]) / counts[2] == Approx(std::exp(1.0)).epsilon(0.1));
  o.temperature = 0.25;  // sharper: id 2 (one below the top) all but disappears
  counts = histogram(o, 4000);
  CHECK(counts[2] < 4000 * 0.05);
}
