#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>

#include "data/synthetic.h"
#include "tests/test_util.h"

using namespace lmt::data;
using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("Markov source: oracle loss of a long sample matches the entropy rate", "[data][synthetic]") {
  const auto [vocab_size, order, branching] = GENERATE(table<int, int, int>({
      {32, 2, 4},   // the defaults
      {50, 1, 50},  // dense successors
      {8, 3, 2},
      {5, 4, 3},
  }));
  MarkovSpec spec;
  spec.vocab_size = vocab_size;
  spec.order = order;
  spec.branching = branching;
  spec.seed = 11;
  const MarkovSource source(spec);
  const double entropy_rate = source.entropy_rate();
  INFO("vocab " << vocab_size << " order " << order << " branching " << branching << " entropy "
                << entropy_rate);
  CHECK(entropy_rate > 0.0);
  CHECK(entropy_rate < std::log(static_cast<double>(branching)));
  const std::vector<int32_t> tokens = source.generate(400'000, 5);
  REQUIRE(tokens.size() == 400'000);
  CHECK(std::all_of(tokens.begin(), tokens.end(), [&](int32_t token) { return token >= 0 && token < vocab_size; }));
  const double oracle = source.oracle_loss(tokens);
  CHECK(std::abs(oracle - entropy_rate) <= 0.02 * entropy_rate);
}

TEST_CASE("Markov source: generation is deterministic per seed", "[data][synthetic]") {
  const MarkovSource source(MarkovSpec{});
  CHECK(source.generate(1000, 3) == source.generate(1000, 3));
  CHECK(source.generate(1000, 3) != source.generate(1000, 4));
  CHECK(MarkovSource(MarkovSpec{}).generate(1000, 3) == source.generate(1000, 3));
  MarkovSpec other;
  other.seed = 2;
  CHECK(MarkovSource(other).generate(1000, 3) != source.generate(1000, 3));
  CHECK(MarkovSource(other).entropy_rate() != source.entropy_rate());
  // A shorter request is a prefix of a longer one (one stream per seed).
  const std::vector<int32_t> longer = source.generate(50, 9);
  const std::vector<int32_t> shorter = source.generate(20, 9);
  CHECK(std::equal(shorter.begin(), shorter.end(), longer.begin()));
  CHECK(source.generate(1, 9).size() == 1);
  CHECK(source.generate(0, 9).empty());
}

TEST_CASE("Markov source: conditional distributions", "[data][synthetic]") {
  MarkovSpec spec;
  spec.vocab_size = 10;
  spec.order = 2;
  spec.branching = 3;
  const MarkovSource source(spec);
  for (int32_t a = 0; a < 10; ++a) {
    for (int32_t b = 0; b < 10; ++b) {
      const std::vector<int32_t> context = {a, b};
      double total = 0.0;
      int num_successors = 0;
      for (int32_t next = 0; next < 10; ++next) {
        const double log_prob = source.conditional_log_prob(context, next);
        if (std::isfinite(log_prob)) {
          ++num_successors;
          total += std::exp(log_prob);
        } else {
          CHECK(log_prob < 0);  // -infinity: not a successor
        }
      }
      CHECK(num_successors == 3);
      CHECK(total == Approx(1.0).epsilon(1e-12));
    }
  }
  // Every transition in generated text is possible.
  const std::vector<int32_t> tokens = source.generate(5000, 1);
  CHECK(std::isfinite(source.oracle_loss(tokens)));
  // An impossible transition makes the oracle loss infinite.
  std::vector<int32_t> impossible = {0, 0};
  for (int32_t next = 0; next < 10; ++next) {
    if (!std::isfinite(source.conditional_log_prob(impossible, next))) {
      impossible.push_back(next);
      break;
    }
  }
  REQUIRE(impossible.size() == 3);
  CHECK(std::isinf(source.oracle_loss(impossible)));

  const std::vector<int32_t> short_context = {1};
  CHECK_THAT(error_message([&] { source.conditional_log_prob(short_context, 0); }), Contains("order is 2"));
  const std::vector<int32_t> bad_token = {1, 10};
  CHECK_THROWS_AS(source.conditional_log_prob(bad_token, 0), lmt::Error);
  CHECK_THAT(error_message([&] { source.oracle_loss(std::vector<int32_t>{1, 2}); }), Contains("more than order"));
}

TEST_CASE("Markov source: branching 1 is deterministic text with zero entropy", "[data][synthetic]") {
  MarkovSpec spec;
  spec.vocab_size = 6;
  spec.order = 2;
  spec.branching = 1;
  const MarkovSource source(spec);
  CHECK(source.entropy_rate() == 0.0);
  const std::vector<int32_t> tokens = source.generate(500, 1);
  CHECK(source.oracle_loss(tokens) == 0.0);
  // The single successors follow a de Bruijn cycle: every one of the 36 contexts appears.
  std::vector<bool> seen(36, false);
  for (size_t t = 1; t < tokens.size(); ++t) seen[tokens[t - 1] * 6 + tokens[t]] = true;
  CHECK(std::count(seen.begin(), seen.end(), true) == 36);
}

TEST_CASE("Markov source: invalid specs are errors", "[data][synthetic]") {
  const auto spec_with = [](int vocab_size, int order, int branching) {
    MarkovSpec spec;
    spec.vocab_size = vocab_size;
    spec.order = order;
    spec.branching = branching;
    return spec;
  };
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(1, 1, 1)); }), Contains("vocab_size 1"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(65537, 1, 1)); }), Contains("vocab_size 65537"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(32, 0, 1)); }), Contains("order 0"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(4, 5, 1)); }), Contains("order 5"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(1025, 2, 1)); }), Contains("2^20"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(32, 2, 0)); }), Contains("branching 0"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(32, 2, 33)); }), Contains("branching 33"));
  CHECK_THAT(error_message([&] { MarkovSource(spec_with(65536, 1, 65)); }), Contains("2^22"));
  CHECK_NOTHROW(MarkovSource(spec_with(1024, 2, 4)));
  CHECK_NOTHROW(MarkovSource(spec_with(2, 4, 2)));
}
