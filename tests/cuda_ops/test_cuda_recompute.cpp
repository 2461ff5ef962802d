// model.recompute on the CUDA backend (in test_cuda_emu, the emulator): mlp and block give the bits
// of none in fp32 and bf16, with cuBLASLt's fused GELU epilogues and without; and why mlp's
// recompute is an op of its own: the fused epilogue's GELU is not gelu_forward of the stored pre.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "cuda/cuda_backend.h"
#include "model/gpt.h"
#include "tests/cli/cli_util.h"
#include "tests/cuda_ops/cuda_test_util.h"
#include "tests/model/recompute_util.h"

namespace {

// tiny_gpt of test_cuda_ops.cpp (head size 32, the CUDA attention's smallest) with 3 layers.
lmt::GPTConfig three_layer_gpt(lmt::Recompute recompute) {
  lmt::GPTConfig cfg;
  cfg.max_seq_len = 21;
  cfg.vocab_size = 101;
  cfg.padded_vocab_size = 128;
  cfg.num_layers = 3;
  cfg.num_heads = 2;
  cfg.channels = 64;
  cfg.recompute = recompute;
  return cfg;
}

// n values of `dtype`, uploaded to `backend` from fp32.
void* upload(lmt::Backend& backend, const std::vector<float>& values) {
  const lmt::DType dtype = backend.compute_dtype();
  std::vector<char> raw(values.size() * lmt::dtype_size(dtype));
  lmt::convert_from_f32(raw.data(), dtype, values.data(), values.size());
  void* ptr = backend.alloc(raw.size());
  backend.copy_to_device(ptr, raw.data(), raw.size());
  return ptr;
}

std::vector<char> download(lmt::Backend& backend, const void* ptr, size_t n) {
  std::vector<char> raw(n * lmt::dtype_size(backend.compute_dtype()));
  backend.synchronize();
  backend.copy_to_host(raw.data(), ptr, raw.size());
  return raw;
}

}  // namespace

TEST_CASE("cuda recompute: mlp and block give none's losses, gradients and weights bit for bit, fp32 and bf16, "
          "fused GELU or not",
          "[cuda][model][recompute]") {
  SKIP_WITHOUT_GPU();
  struct Case {
    lmt::DType dtype;
    bool fused;
  };
  // fp32 unfused is the CPU's composition of the ops, which tests/model checks. Under ASan (5x
  // slower) only the case the override of matmul_gelu_recompute exists for.
#ifdef LMTRAIN_EMU_ASAN
  const std::vector<Case> cases = {{lmt::DType::kBF16, true}};
  const int steps = 1;
#else
  const std::vector<Case> cases = {{lmt::DType::kBF16, true}, {lmt::DType::kBF16, false}, {lmt::DType::kF32, true}};
  const int steps = 2;
#endif
  for (const Case& c : cases) {
    DYNAMIC_SECTION(lmt::dtype_name(c.dtype) << (c.fused ? ", fused GELU" : ", unfused GELU")) {
      lmt::cuda::CudaOptions options;
      options.dtype = c.dtype;
      options.fuse_gelu = c.fused;
      auto gpu = lmt::cuda::make_cuda_backend(options);
      const auto none = lmt::testing::trace_training(*gpu, three_layer_gpt(lmt::Recompute::kNone), steps);
      REQUIRE(none.hooks.size() == static_cast<size_t>(2 * steps * 5));
      for (const lmt::Recompute recompute : {lmt::Recompute::kMlp, lmt::Recompute::kBlock}) {
        const auto differences =
            lmt::testing::trace_differences(lmt::testing::trace_training(*gpu, three_layer_gpt(recompute), steps), none);
        INFO("model.recompute " << lmt::name_of(recompute)
                                << ": differences from none:" << lmt::testing::describe(differences));
        CHECK(differences.empty());
        // The planted bug (the backward pass reads the last block's activations) shows here too:
        // one step of it against none's first.
        if (&c == &cases.front()) {
          const auto stale = lmt::testing::trace_differences(
              lmt::testing::trace_training(*gpu, three_layer_gpt(recompute), 1, true), none);
          CHECK(stale.count("grads step 0") == 1);
          CHECK(stale.count("grads at hook call 1") == 0);  // the last block: not recomputed
        }
      }
    }
  }
}

TEST_CASE("cuda recompute: matmul_gelu_recompute gives the fused forward's GELU bits, which gelu_forward of pre "
          "does not in bf16",
          "[cuda][matmul][gelu][recompute]") {
  SKIP_WITHOUT_GPU();
  const int N = 74, C = 64, OC = 256;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto values = [&](size_t n, float scale) {
    std::vector<float> v(n);
    for (auto& x : v) x = normal(rng) * scale;
    return v;
  };
  const auto inp = values(static_cast<size_t>(N) * C, 1.0f), weight = values(static_cast<size_t>(OC) * C, 0.3f);
  const auto bias = values(OC, 0.5f);
  const size_t n = static_cast<size_t>(N) * OC;
  for (const lmt::DType dtype : {lmt::DType::kF32, lmt::DType::kBF16}) {
    for (const bool fused : {true, false}) {
      DYNAMIC_SECTION(lmt::dtype_name(dtype) << (fused ? ", fused GELU" : ", unfused GELU")) {
        lmt::cuda::CudaOptions options;
        options.dtype = dtype;
        options.fuse_gelu = fused;
        auto gpu = lmt::cuda::make_cuda_backend(options);
        void* x = upload(*gpu, inp);
        void* w = upload(*gpu, weight);
        void* b = upload(*gpu, bias);
        void* pre = gpu->alloc(n * 4);
        void* out = gpu->alloc(n * 4);
        void* again = gpu->alloc(n * 4);
        void* scratch = gpu->alloc(n * 4);
        void* plain = gpu->alloc(n * 4);
        gpu->matmul_gelu_forward(pre, out, x, w, b, N, C, OC);
        gpu->matmul_gelu_recompute(again, scratch, pre, x, w, b, N, C, OC);
        gpu->gelu_forward(plain, pre, n);
        const auto forward_bits = download(*gpu, out, n);
        CHECK(download(*gpu, again, n) == forward_bits);
        const auto plain_bits = download(*gpu, plain, n);
        size_t differing = 0;
        const size_t e = lmt::dtype_size(dtype);
        for (size_t i = 0; i < n; ++i) differing += std::memcmp(&plain_bits[i * e], &forward_bits[i * e], e) != 0;
        // Unfused, out was gelu_forward(pre). Fused in bf16, the epilogue took the GELU of the fp32
        // accumulator before pre was rounded: gelu_forward of the rounded pre misses some bits.
        INFO(differing << " of " << n << " elements of gelu_forward(pre) differ from the forward's GELU output");
        if (!fused) CHECK(differing == 0);
        if (fused && dtype == lmt::DType::kBF16) CHECK(differing > 0);
        for (void* p : {x, w, b, pre, out, again, scratch, plain}) gpu->free(p);
      }
    }
  }
}

TEST_CASE("cuda recompute: through the CLI, none, mlp and block save the same checkpoint bytes in fp32 and bf16",
          "[cuda][cli][recompute]") {
#ifdef LMTRAIN_EMU_ASAN
  WARN("SKIPPED: the CLI cases run in test_cuda_emu (lmtrain_emu is not sanitized)");
  return;
#endif
  SKIP_WITHOUT_GPU();
  using namespace lmt::testing;
  for (const std::string dtype : {"fp32", "bf16"}) {
    DYNAMIC_SECTION(dtype) {
      std::map<std::string, std::string> losses, model, optimizer, state;
      for (const std::string choice : {"none", "mlp", "block"}) {
        TempDir dir;
        write_file(dir.path() / "tiny.yaml", tiny_recipe(dir, dtype));
        // Head size 32, 3 blocks, 2 micro batches a step.
        const RunResult r = run_lmtrain(dir, "train tiny.yaml --device cuda --set model.n_embd=64 --set model.n_layer=3 "
                                             "--set run.global_batch_size=8 --set run.steps=2 --set log.every=1 "
                                             "--set model.recompute=" + choice);
        INFO(choice << "\n" << r.output);
        REQUIRE(r.status == 0);
        const fs::path run = dir.path() / "runs" / "tiny";
        for (const auto& record : read_jsonl(run / "metrics.jsonl"))
          if (is_training_record(record)) losses[choice] += record["loss"].dump() + " " + record["grad_norm"].dump() + "\n";
        model[choice] = read_file(run / "checkpoints" / "step_00000002" / "model.safetensors");
        optimizer[choice] = read_file(run / "checkpoints" / "step_00000002" / "optimizer.safetensors");
        state[choice] = read_file(run / "checkpoints" / "step_00000002" / "trainer_state.json");
      }
      REQUIRE(std::count(losses["none"].begin(), losses["none"].end(), '\n') == 2);
      for (const std::string choice : {"mlp", "block"}) {
        INFO(choice);
        CHECK(losses[choice] == losses["none"]);
        CHECK(model[choice] == model["none"]);
        CHECK(optimizer[choice] == optimizer["none"]);
        CHECK(state[choice] == state["none"]);
      }
    }
  }
}
