// Model-level properties the trainer relies on: gradient accumulation equals one big batch,
// initialization is deterministic, parameters are laid out as documented.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/rng.h"
#include "cpu/cpu_backend.h"
#include "model/gpt.h"
#include "tests/model/model_test_util.h"

using lmt::testing::random_tokens;
using lmt::testing::small_config;

TEST_CASE("two half batches with grad_scale 1/2 accumulate the gradient of the full batch", "[model]") {
  auto backend = lmt::cpu::make_cpu_backend(1);
  lmt::GPTConfig cfg = small_config();
  lmt::GPT model(*backend, cfg);
  model.init_weights(3, 0.02);
  const int B = 4, T = 13;
  auto inputs = random_tokens(B * T, cfg.vocab_size, 1);
  auto targets = random_tokens(B * T, cfg.vocab_size, 2);

  model.zero_grad();
  const float full_loss = model.forward_backward(inputs.data(), targets.data(), B, T, 1.0f);
  auto full = model.get_gradients();

  model.zero_grad();
  const size_t half = static_cast<size_t>(B / 2) * T;
  float l1 = model.forward_backward(inputs.data(), targets.data(), B / 2, T, 0.5f);
  float l2 = model.forward_backward(inputs.data() + half, targets.data() + half, B / 2, T, 0.5f);
  auto accumulated = model.get_gradients();
  CHECK(0.5f * (l1 + l2) == Approx(full_loss).epsilon(1e-6));
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(full[i] - accumulated[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(full[i])));
  }
  CHECK(max_abs > 1e-3);
  CHECK(max_diff <= 1e-6 * max_abs + 1e-9);
}

TEST_CASE("initialization is deterministic in the seed and follows GPT-2's scheme", "[model]") {
  auto backend = lmt::cpu::make_cpu_backend(1);
  lmt::GPTConfig cfg = small_config();
  lmt::GPT a(*backend, cfg), b(*backend, cfg), c(*backend, cfg);
  a.init_weights(7, 0.02);
  b.init_weights(7, 0.02);
  c.init_weights(8, 0.02);
  auto pa = a.get_parameters(), pb = b.get_parameters(), pc = c.get_parameters();
  CHECK(pa == pb);
  CHECK(pa != pc);
  const auto& layout = a.layout();
  auto stddev = [&](const lmt::ParamTensor& t, size_t count) {
    double sum = 0, sq = 0;
    for (size_t i = 0; i < count; ++i) {
      sum += pa[t.offset + i];
      sq += static_cast<double>(pa[t.offset + i]) * pa[t.offset + i];
    }
    return std::sqrt(sq / count - (sum / count) * (sum / count));
  };
  const auto& wte = layout[0];
  const size_t real = static_cast<size_t>(cfg.vocab_size) * cfg.channels;
  CHECK(stddev(wte, real) == Approx(0.02).epsilon(0.1));
  for (size_t i = real; i < wte.numel; ++i) REQUIRE(pa[wte.offset + i] == 0.0f);  // padding rows
  const auto& fcprojw = layout[12];
  REQUIRE(fcprojw.name == "fcprojw");
  CHECK(stddev(fcprojw, fcprojw.numel) == Approx(0.02 / std::sqrt(2.0 * cfg.num_layers)).epsilon(0.1));
  const auto& ln1w = layout[2];
  for (size_t i = 0; i < ln1w.numel; ++i) REQUIRE(pa[ln1w.offset + i] == 1.0f);
  const auto& qkvb = layout[5];
  for (size_t i = 0; i < qkvb.numel; ++i) REQUIRE(pa[qkvb.offset + i] == 0.0f);
}

TEST_CASE("GPT-2 124M has 124,439,808 parameters", "[model]") {
  lmt::GPTConfig cfg;  // defaults are GPT-2 small
  CHECK(lmt::parameter_count(cfg) == 124439808);
  CHECK(lmt::parameter_storage_count(cfg) == 124439808 + 47 * 768);
  CHECK(lmt::GPTConfig::pad_vocab(50257, 128) == 50304);
  // llm.c's estimate: 6N + 6*L*C*T
  CHECK(lmt::flops_per_token(cfg, 1024) == Approx(6.0 * 124439808 + 6.0 * 12 * 768 * 1024));
}

TEST_CASE("a shorter batch after a longer one reuses the activations correctly", "[model]") {
  auto backend = lmt::cpu::make_cpu_backend(1);
  lmt::GPTConfig cfg = small_config();
  lmt::GPT model(*backend, cfg);
  model.init_weights(5, 0.02);
  auto inputs = random_tokens(4 * 16, cfg.vocab_size, 3);
  auto targets = random_tokens(4 * 16, cfg.vocab_size, 4);
  const float fresh = [&] {
    lmt::GPT other(*backend, cfg);
    other.init_weights(5, 0.02);
    return other.forward(inputs.data(), targets.data(), 2, 9);
  }();
  model.forward(inputs.data(), targets.data(), 4, 16);
  CHECK(model.forward(inputs.data(), targets.data(), 2, 9) == fresh);
}
