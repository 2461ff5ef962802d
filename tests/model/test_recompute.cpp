// model.recompute: mlp and block change what the activation arena keeps and what the backward pass
// computes again, never a bit of the losses, gradients (also at each backward hook) or weights;
// and the arena GPT allocates is, to the byte, what estimate_memory (and so `lmtrain plan`) says.
#include <catch2/catch.hpp>

#include <string>

#include "core/recipe.h"
#include "cpu/cpu_backend.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "tests/model/model_test_util.h"
#include "tests/model/recompute_util.h"

using namespace lmt;
using lmt::testing::describe;
using lmt::testing::trace_differences;
using lmt::testing::trace_training;

namespace {

// small_config with 3 layers: the first two blocks are recomputed in backward, the last one's
// activations are still in place from the forward.
GPTConfig three_layers(Recompute recompute) {
  GPTConfig cfg = testing::small_config();
  cfg.num_layers = 3;
  cfg.recompute = recompute;
  return cfg;
}

}  // namespace

TEST_CASE("recompute: mlp and block give none's losses, gradients, hook gradients and weights, bit for bit",
          "[model][recompute]") {
  for (int threads : {1, 2}) {
    auto backend = cpu::make_cpu_backend(threads);
    const testing::TrainingTrace none = trace_training(*backend, three_layers(Recompute::kNone), 3);
    REQUIRE(none.losses.size() == 6);
    REQUIRE(none.hooks.size() == 6 * 5);  // 5 groups (final layernorm, 3 blocks, embeddings) per backward pass
    for (const Recompute recompute : {Recompute::kMlp, Recompute::kBlock}) {
      DYNAMIC_SECTION(name_of(recompute) << ", " << threads << " thread(s)") {
        const auto differences = trace_differences(trace_training(*backend, three_layers(recompute), 3), none);
        INFO("differences from recompute none:" << describe(differences));
        CHECK(differences.empty());
      }
    }
  }
}

TEST_CASE("recompute: a backward pass that reads stale activations fails the bit-identity check",
          "[model][recompute]") {
  // The planted bug: no recomputation, so blocks 0 and 1 see the one-layer slices as the forward
  // left them (block 2's activations). The forward is untouched: the first loss is the same.
  auto backend = cpu::make_cpu_backend(1);
  const testing::TrainingTrace none = trace_training(*backend, three_layers(Recompute::kNone), 2);
  for (const Recompute recompute : {Recompute::kMlp, Recompute::kBlock}) {
    DYNAMIC_SECTION(name_of(recompute)) {
      const testing::TrainingTrace stale = trace_training(*backend, three_layers(recompute), 2, true);
      CHECK(stale.losses.front() == none.losses.front());
      const auto differences = trace_differences(stale, none);
      INFO("differences from recompute none:" << describe(differences));
      CHECK(differences.count("grads step 0") == 1);
      CHECK(differences.count("params step 0") == 1);
      // The final layernorm's and the last block's gradients come before any recomputation.
      CHECK(differences.count("grads at hook call 0") == 0);
      CHECK(differences.count("grads at hook call 1") == 0);
      CHECK(differences.count("grads at hook call 2") == 1);  // block 1: the first one recomputed
      // And the fault is only the skipped recompute: without it, the same code gives none's bits.
      CHECK(trace_differences(trace_training(*backend, three_layers(recompute), 2), none).empty());
    }
  }
}

TEST_CASE("recompute: the activation arena and all GPT and AdamW allocate are estimate_memory's bytes, exactly",
          "[model][recompute][memory]") {
  auto cpu = cpu::make_cpu_backend(1);
  for (const Recompute recompute : {Recompute::kNone, Recompute::kMlp, Recompute::kBlock}) {
    for (const auto& [B, T] : {std::pair{1, 1}, std::pair{3, 13}, std::pair{2, 16}}) {
      DYNAMIC_SECTION(name_of(recompute) << " at B " << B << ", T " << T) {
        const GPTConfig cfg = three_layers(recompute);
        testing::CountingBackend counting(*cpu);
        const MemoryEstimate expected = estimate_memory(cfg, B, T, DType::kF32);
        {
          GPT model(counting, cfg);
          model.init_weights(1, 0.02);
          AdamW optimizer(counting, OptimizerConfig{}, model.layout(), model.num_param_storage());
          CHECK(model.activation_arena_bytes() == 0);
          const auto tokens = testing::random_tokens(static_cast<size_t>(B) * T, cfg.vocab_size, 4);
          model.zero_grad();
          model.forward_backward(tokens.data(), tokens.data(), B, T, 1.0f);
          optimizer.step(model.params(), model.grads(), 1e-3f, optimizer.grad_norm(model.grads()));
          CHECK(model.activation_arena_bytes() == static_cast<size_t>(expected.activations));
          CHECK(counting.live_bytes() == static_cast<size_t>(expected.total()));
          // A smaller batch reuses the arena; a longer one grows it to the larger B and T.
          model.forward(tokens.data(), tokens.data(), 1, 1);
          CHECK(model.activation_arena_bytes() == static_cast<size_t>(expected.activations));
        }
        CHECK(counting.live_bytes() == 0);
        CHECK(counting.peak_bytes() == static_cast<size_t>(expected.total()));
      }
    }
  }
}

TEST_CASE("recompute: GPT-2 124M's arenas equal plan's figures and shrink as documented", "[model][recompute][memory]") {
  // A ledger backend allocates address space only: the sizes GPT-2 really asks for, without the memory.
  GPTConfig gpt2;  // GPT-2 124M
  struct Shape {
    int B, T;
    DType dtype;
  };
  for (const Shape shape : {Shape{4, 64, DType::kF32}, Shape{64, 1024, DType::kBF16}}) {
    DYNAMIC_SECTION("B " << shape.B << ", T " << shape.T << ", " << dtype_name(shape.dtype)) {
      const size_t b = dtype_size(shape.dtype);
      std::map<Recompute, size_t> arena;
      for (const Recompute recompute : {Recompute::kNone, Recompute::kMlp, Recompute::kBlock}) {
        GPTConfig cfg = gpt2;
        cfg.recompute = recompute;
        testing::LedgerBackend ledger(shape.dtype);
        GPT model(ledger, cfg);
        AdamW optimizer(ledger, OptimizerConfig{}, model.layout(), model.num_param_storage());
        const std::vector<int32_t> tokens(static_cast<size_t>(shape.B) * shape.T, 0);
        model.forward_backward(tokens.data(), tokens.data(), shape.B, shape.T, 1.0f);
        const MemoryEstimate expected = estimate_memory(cfg, shape.B, shape.T, shape.dtype);
        arena[recompute] = model.activation_arena_bytes();
        CHECK(arena[recompute] == static_cast<size_t>(expected.activations));
        CHECK(ledger.live_bytes() == static_cast<size_t>(expected.total()));
      }
      // mlp drops L-1 of the L slices of fch_gelu (BT x 4C); block those of ln1, atty, residual2,
      // ln2 (C each), qkv (3C), fch, fch_gelu (4C each) and the five statistics rows (NH + 4 per
      // position, fp32). Each slice is rounded up to 128 elements, the buffers to 256 bytes.
      const size_t L = 12, C = 768, NH = 12, BT = static_cast<size_t>(shape.B) * shape.T;
      auto pad = [](size_t n) { return (n + 127) / 128 * 128; };
      const size_t gelu_drop = (L - 1) * pad(BT * 4 * C) * b;
      CHECK(arena[Recompute::kNone] - arena[Recompute::kMlp] >= gelu_drop - 256);
      CHECK(arena[Recompute::kNone] - arena[Recompute::kMlp] <= gelu_drop + 256);
      const size_t block_drop =
          gelu_drop + (L - 1) * ((4 * pad(BT * C) + pad(BT * 3 * C) + pad(BT * 4 * C)) * b +
                                 (4 * pad(BT) + pad(BT * NH)) * 4);
      CHECK(arena[Recompute::kNone] - arena[Recompute::kBlock] >= block_drop - 12 * 256);
      CHECK(arena[Recompute::kNone] - arena[Recompute::kBlock] <= block_drop + 12 * 256);
    }
  }
}
