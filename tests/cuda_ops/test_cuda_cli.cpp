// The trainer on a GPU through the CLI: exact resume in every precision and fp16 loss scaling.
// In test_cuda_ops they run lmtrain on a real GPU (and skip, with the reason, where none is
// visible); in test_cuda_emu they run lmtrain_emu, the same CLI on the CUDA emulator.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "tests/cli/cli_util.h"
#include "tests/cuda_ops/cuda_test_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

#ifdef LMTRAIN_EMU_ASAN
#define SKIP_WITHOUT_GPU_CLI()                                                          \
  do {                                                                                  \
    WARN("SKIPPED: the CLI cases run in test_cuda_emu (lmtrain_emu is not sanitized)"); \
    return;                                                                             \
  } while (0)
#else
#define SKIP_WITHOUT_GPU_CLI() SKIP_WITHOUT_GPU()
#endif

std::vector<std::string> loss_lines(const fs::path& metrics) {
  std::vector<std::string> out;
  for (const auto& r : read_jsonl(metrics))
    if (is_training_record(r))
      out.push_back(fmt::format("{} {} {}", r["step"].get<int64_t>(), r["loss"].dump(), r["grad_norm"].dump()));
  return out;
}

}  // namespace

TEST_CASE("cuda cli: 5 steps + resume + 5 equals 10 straight, bit for bit, in fp32, bf16 and fp16",
          "[cuda][cli][checkpoint]") {
  SKIP_WITHOUT_GPU_CLI();
  for (const std::string dtype : {"fp32", "bf16", "fp16"}) {
    DYNAMIC_SECTION(dtype) {
      TempDir straight, split;
      write_file(straight.path() / "tiny.yaml", tiny_recipe(straight, dtype));
      write_file(split.path() / "tiny.yaml", tiny_recipe(split, dtype));
      // Head size 32 (the CUDA attention's smallest), a constant learning rate.
      const std::string common = "train tiny.yaml --device cuda --set model.n_embd=64 --set log.every=1 "
                                 "--set schedule.decay=constant --set data.synthetic.train_tokens=200";
      // 12 windows per epoch, 4 per step: the resume at step 5 falls inside the second epoch.
      RunResult a = run_lmtrain(straight, common + " --set run.steps=10");
      INFO(a.output);
      REQUIRE(a.status == 0);
      CHECK_THAT(a.output, Contains("backend cuda"));
      RunResult b1 = run_lmtrain(split, common + " --set run.steps=5");
      REQUIRE(b1.status == 0);
      RunResult b2 = run_lmtrain(split, common + " --set run.steps=10 --resume auto");
      INFO(b2.output);
      REQUIRE(b2.status == 0);
      const auto expected = loss_lines(straight.path() / "runs" / "tiny" / "metrics.jsonl");
      CHECK(expected.size() == 10);
      CHECK(loss_lines(split.path() / "runs" / "tiny" / "metrics.jsonl") == expected);
      const fs::path a_dir = straight.path() / "runs" / "tiny" / "checkpoints" / "step_00000010";
      const fs::path b_dir = split.path() / "runs" / "tiny" / "checkpoints" / "step_00000010";
      CHECK(read_file(b_dir / "model.safetensors") == read_file(a_dir / "model.safetensors"));
      CHECK(read_file(b_dir / "optimizer.safetensors") == read_file(a_dir / "optimizer.safetensors"));
    }
  }
}

#ifdef LMTRAIN_CUDA_EMU
// The emulator's schedules (cuda/emu/cuda_emu.h: the order of threads between barriers and of
// blocks) through the whole trainer: every kernel of a bf16 training step, the loss scaler aside,
// must give the same losses, gradient norms and checkpoint bytes under each.
TEST_CASE("cuda cli: training gives the same bits under every emulator schedule", "[cuda][cli][schedule]") {
  SKIP_WITHOUT_GPU_CLI();
  std::vector<std::string> first_losses;
  std::string first_model, first_optimizer;
  for (const std::string schedule : {"forward", "reverse", "random:5", "warps:5"}) {
    INFO("LMTRAIN_EMU_SCHEDULE=" << schedule);
    TempDir dir;
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir, "bf16"));
    const RunResult r = run_lmtrain(dir,
                                    "train tiny.yaml --device cuda --set model.n_embd=64 --set log.every=1 "
                                    "--set run.steps=3 --set data.synthetic.train_tokens=200",
                                    "LMTRAIN_EMU_SCHEDULE=" + schedule);
    INFO(r.output);
    REQUIRE(r.status == 0);
    const auto losses = loss_lines(dir.path() / "runs" / "tiny" / "metrics.jsonl");
    const fs::path checkpoint = dir.path() / "runs" / "tiny" / "checkpoints" / "step_00000003";
    const std::string model = read_file(checkpoint / "model.safetensors");
    const std::string optimizer = read_file(checkpoint / "optimizer.safetensors");
    CHECK(losses.size() == 3);
    if (first_losses.empty()) {
      first_losses = losses;
      first_model = model;
      first_optimizer = optimizer;
      continue;
    }
    CHECK(losses == first_losses);
    CHECK(model == first_model);
    CHECK(optimizer == first_optimizer);
  }
}
#endif

// precision.tensor_core_attention reaches the backend: at bf16 and head size 64 the two attention
// paths (attention_mma.cu and attention.cu) round differently, so the losses differ in their bits
// but not by more than bf16's rounding.
TEST_CASE("cuda cli: precision.tensor_core_attention chooses the attention kernels", "[cuda][cli][attention]") {
  SKIP_WITHOUT_GPU_CLI();
  std::vector<std::vector<std::string>> losses;
  for (const std::string tensor_cores : {"true", "false"}) {
    INFO("precision.tensor_core_attention=" << tensor_cores);
    TempDir dir;
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir, "bf16"));
    const RunResult r = run_lmtrain(dir, "train tiny.yaml --device cuda --set model.n_embd=128 --set log.every=1 "
                                         "--set run.steps=2 --set data.synthetic.train_tokens=200 "
                                         "--set precision.tensor_core_attention=" + tensor_cores);
    INFO(r.output);
    REQUIRE(r.status == 0);
    losses.push_back(loss_lines(dir.path() / "runs" / "tiny" / "metrics.jsonl"));
    REQUIRE(losses.back().size() == 2);
  }
  CHECK(losses[0] != losses[1]);
  for (size_t step = 0; step < 2; ++step) {
    const double a = std::stod(losses[0][step].substr(losses[0][step].find(' ') + 1));
    const double b = std::stod(losses[1][step].substr(losses[1][step].find(' ') + 1));
    CHECK(std::abs(a - b) < 2e-2 * std::abs(b));
  }
}

TEST_CASE("cuda cli: fp16 skips overflowed steps, lowers the scale and saves it", "[cuda][cli][fp16]") {
  SKIP_WITHOUT_GPU_CLI();
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir, "fp16"));
  // 2^30 overflows fp16 at once (the loss gradient alone is 2^30 / 64): the scale must come
  // down, by halving after the hysteresis, before any step is applied.
  const RunResult r = run_lmtrain(dir, "train tiny.yaml --device cuda --set model.n_embd=64 --set log.every=1 "
                                       "--set run.steps=20 --set precision.initial_scale_power=30");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("step skipped, loss scale"));
  const auto records = read_jsonl(dir.path() / "runs" / "tiny" / "metrics.jsonl");
  int overflows = 0;
  double last_scale = 0;
  for (const auto& record : records) {
    if (record.value("event", "") == "overflow") ++overflows;
    if (is_training_record(record)) last_scale = record["loss_scale"].get<double>();
  }
  CHECK(overflows >= 2);
  CHECK(overflows < 20);  // some steps were applied
  CHECK(last_scale > 0);
  CHECK(last_scale < std::ldexp(1.0, 30));
  const auto state = nlohmann::json::parse(
      read_file(dir.path() / "runs" / "tiny" / "checkpoints" / "step_00000020" / "trainer_state.json"));
  CHECK(state["loss_scaler"]["skipped_steps"].get<int>() == overflows);
  CHECK(state["loss_scaler"]["scale"].get<double>() == last_scale);
  // Resumed, the run continues at the saved scale: no new overflows from a scale reset to 2^30.
  const RunResult resumed = run_lmtrain(dir, "train tiny.yaml --device cuda --set model.n_embd=64 --set log.every=1 "
                                             "--set run.steps=25 --set precision.initial_scale_power=30 --resume auto");
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  int later_overflows = 0, later_steps = 0;
  for (const auto& record : read_jsonl(dir.path() / "runs" / "tiny" / "metrics.jsonl")) {
    if (!record.contains("step") || record["step"].get<int>() <= 20) continue;
    if (record.value("event", "") == "overflow") ++later_overflows;
    if (is_training_record(record)) {
      ++later_steps;
      CHECK(record["loss_scale"].get<double>() == last_scale);
    }
  }
  CHECK(later_overflows == 0);
  CHECK(later_steps == 5);
}

TEST_CASE("cuda cli: 2 ranks on 2 GPUs (NCCL) train like 1 GPU, with and without ZeRO-1", "[cuda][cli][nccl]") {
  SKIP_WITHOUT_GPU_CLI();
  if (lmt::cuda::visible_device_count() < 2) {
    WARN("SKIPPED: needs 2 GPUs (NCCL cannot put two ranks on one)");
    return;
  }
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // Global batch 12: micro 2 x accum (6 / world) x world; full fp32 products so that the
  // comparison is about the reduction, not TF32.
  auto batch = [](int world) {
    return fmt::format(" --device cuda --set model.n_embd=64 --set precision.tf32=false --set run.micro_batch_size=2 "
                       "--set run.grad_accum_steps={} --set run.global_batch_size=12 --set log.every=1",
                       6 / world);
  };
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=g1" + batch(1));
  INFO(one.output);
  REQUIRE(one.status == 0);
  const auto expected = read_jsonl(dir.path() / "runs" / "g1" / "metrics.jsonl");
  for (const int zero : {0, 1}) {
    const std::string name = fmt::format("g2z{}", zero);
    RunResult r = run_lmtrain(dir, fmt::format("launch --nproc-per-node 2 --master-port 0 -- train tiny.yaml "
                                               "--set run.name={} --set distributed.zero_stage={}{}",
                                               name, zero, batch(2)));
    INFO(r.output);
    REQUIRE(r.status == 0);
    const auto got = read_jsonl(dir.path() / "runs" / name / "metrics.jsonl");
    std::vector<double> a, b;
    for (const auto& record : got)
      if (is_training_record(record)) a.push_back(record["loss"].get<double>());
    for (const auto& record : expected)
      if (is_training_record(record)) b.push_back(record["loss"].get<double>());
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).epsilon(1e-5));
  }
}

// tools/gpu_check.sh runs these cases from a bundle on another machine, where the build path of
// lmtrain baked in above does not exist: LMTRAIN_TEST_BINARY must take its place.
TEST_CASE("cuda cli: LMTRAIN_TEST_BINARY replaces the lmtrain the tests were built with", "[cli][gpu_check]") {
  TempDir dir;
  const fs::path stand_in = dir.path() / "stand-in-lmtrain";
  write_file(stand_in, "#!/bin/sh\necho \"stand-in lmtrain: $*\"\n");
  fs::permissions(stand_in, fs::perms::owner_all);
  const char* before = std::getenv("LMTRAIN_TEST_BINARY");
  const std::string saved = before ? before : "";
  ::setenv("LMTRAIN_TEST_BINARY", stand_in.c_str(), 1);
  const RunResult r = run_lmtrain(dir, "doctor --probe");
  if (saved.empty())
    ::unsetenv("LMTRAIN_TEST_BINARY");
  else
    ::setenv("LMTRAIN_TEST_BINARY", saved.c_str(), 1);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("stand-in lmtrain: doctor --probe"));
  CHECK(lmtrain_binary() == (saved.empty() ? kBuiltBinary : saved));
}
