#include <catch2/catch.hpp>
#include <numeric>

#include "data/loader.h"
#include "test_helpers.h"

using namespace lmt::data;
using namespace lmt::data::testing;
using Catch::Matchers::Contains;

namespace {

// Token i has value i, so a window's start is its first token.
std::vector<int32_t> counting_tokens(size_t n) {
  std::vector<int32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), 0);
  return tokens;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch&) const = default;
};

Batch sample(const TokenWindows& windows, uint64_t seed, uint64_t index, int B, int T) {
  Batch batch{std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  windows.sample_batch(seed, index, B, T, batch.inputs.data(), batch.targets.data());
  return batch;
}

Batch eval(const TokenWindows& windows, int index, int num_batches, int B, int T) {
  Batch batch{std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  windows.eval_batch(index, num_batches, B, T, batch.inputs.data(), batch.targets.data());
  return batch;
}

void check_windows(const Batch& batch, int B, int T, size_t n) {
  for (int row = 0; row < B; ++row) {
    const int32_t start = batch.inputs[row * T];
    REQUIRE(start >= 0);
    REQUIRE(static_cast<size_t>(start) <= n - T - 1);
    for (int t = 0; t < T; ++t) {
      REQUIRE(batch.inputs[row * T + t] == start + t);        // contiguous window
      REQUIRE(batch.targets[row * T + t] == start + t + 1);   // shifted by one
    }
  }
}

}  // namespace

TEST_CASE("TokenWindows: random batches are reproducible from (seed, index)", "[data][loader]") {
  const std::vector<int32_t> tokens = counting_tokens(1000);
  const TokenWindows windows(tokens, 16);
  CHECK(windows.size() == 1000);
  const Batch first = sample(windows, 5, 3, 4, 16);
  check_windows(first, 4, 16, tokens.size());
  // Another object, other batches drawn in between: the same (seed, index) gives the same batch.
  const TokenWindows other(tokens, 16);
  sample(other, 5, 0, 4, 16);
  sample(other, 5, 7, 4, 16);
  CHECK(sample(other, 5, 3, 4, 16) == first);
  CHECK(sample(windows, 5, 4, 4, 16) != first);
  CHECK(sample(windows, 6, 3, 4, 16) != first);
  // A shorter sequence (an earlier point of a sequence-length schedule) is valid too.
  check_windows(sample(windows, 5, 3, 2, 8), 2, 8, tokens.size());
}

TEST_CASE("TokenWindows: random starts cover the whole range", "[data][loader]") {
  const int T = 8;
  const std::vector<int32_t> tokens = counting_tokens(T + 3);  // starts 0, 1, 2
  const TokenWindows windows(tokens, T);
  std::vector<int> count(3, 0);
  for (uint64_t index = 0; index < 100; ++index) {
    const Batch batch = sample(windows, 1, index, 2, T);
    check_windows(batch, 2, T, tokens.size());
    for (int row = 0; row < 2; ++row) ++count[batch.inputs[row * T]];
  }
  for (int c : count) CHECK(c > 30);
}

TEST_CASE("TokenWindows: eval batches are fixed and evenly spaced", "[data][loader]") {
  const std::vector<int32_t> tokens = counting_tokens(1001);
  const TokenWindows windows(tokens, 10);
  const int num_batches = 3, B = 4, T = 10;
  std::vector<int32_t> starts;
  for (int index = 0; index < num_batches; ++index) {
    const Batch batch = eval(windows, index, num_batches, B, T);
    CHECK(eval(windows, index, num_batches, B, T) == batch);
    check_windows(batch, B, T, tokens.size());
    for (int row = 0; row < B; ++row) starts.push_back(batch.inputs[row * T]);
  }
  // 12 windows over starts 0..990: k * 990 / 11 = 90 k.
  for (size_t k = 0; k < starts.size(); ++k) CHECK(starts[k] == static_cast<int32_t>(90 * k));
  // A single window starts at 0.
  CHECK(eval(windows, 0, 1, 1, T).inputs[0] == 0);
  CHECK_THROWS_AS(eval(windows, 3, 3, B, T), lmt::Error);
  CHECK_THROWS_AS(eval(windows, 0, 0, B, T), lmt::Error);
}

TEST_CASE("TokenWindows: too little data is an error saying how much is needed", "[data][loader]") {
  const std::vector<int32_t> tokens = counting_tokens(16);
  CHECK_THAT(error_message([&] { TokenWindows(tokens, 16); }), Contains("16 tokens") && Contains("at least 17"));
  CHECK_NOTHROW(TokenWindows(std::span<const int32_t>(tokens).first(16), 15));
  const TokenWindows windows(tokens, 15);
  std::vector<int32_t> inputs(32), targets(32);
  CHECK_THROWS_AS(windows.sample_batch(1, 0, 1, 16, inputs.data(), targets.data()), lmt::Error);
  CHECK_THROWS_AS(windows.sample_batch(1, 0, 0, 8, inputs.data(), targets.data()), lmt::Error);
  CHECK_THROWS_AS(TokenWindows(tokens, 0), lmt::Error);
}
