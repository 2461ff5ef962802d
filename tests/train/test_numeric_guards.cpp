// The two numeric guards in-process: the divergence guard's verdicts (train/divergence_guard.h)
// and save_checkpoint's refusal of a non-finite tensor, with nothing written.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/recipe.h"
#include "model/gpt_config.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "train/divergence_guard.h"

namespace lmt {
namespace {

using testing::TempDir;

RunConfig guard_config(Divergence mode) {
  RunConfig run;
  run.divergence = mode;
  run.divergence_factor = 10;
  run.divergence_window = 4;
  run.divergence_warmup = 3;
  run.divergence_max_skips = 2;
  return run;
}

TEST_CASE("divergence guard: a loss that climbs past 10x its lowest running mean diverges", "[train][divergence]") {
  DivergenceGuard guard(guard_config(Divergence::kStop), /*grad_clip=*/1.0);
  // Warm-up: nothing is judged, however large.
  CHECK_FALSE(guard.judge(1e6, 1.0).diverged);
  for (double loss : {5.0, 4.0, 3.0}) {
    CHECK_FALSE(guard.judge(loss, 1.0).diverged);
    guard.accept(loss, 1.0);
  }
  // The lowest running mean is 4 (after three steps): the limit is 40.
  for (double loss : {8.0, 16.0, 32.0}) {
    CHECK_FALSE(guard.judge(loss, 1.0).diverged);
    guard.accept(loss, 1.0);
  }
  const auto verdict = guard.judge(41.0, 1.0);
  CHECK(verdict.diverged);
  CHECK_THAT(verdict.why, Catch::Contains("loss 41") && Catch::Contains("10 x 4"));
  CHECK(verdict.loss_mean == Approx((3.0 + 8.0 + 16.0 + 32.0) / 4));
  // With clipping on, the grad norm is not judged; a non-finite figure always is.
  CHECK_FALSE(guard.judge(3.0, 1e9).diverged);
  CHECK(guard.judge(3.0, std::numeric_limits<double>::infinity()).diverged);
  CHECK(guard.judge(std::nan(""), 1.0).diverged);
}

TEST_CASE("divergence guard: without clipping a grad norm above 10x its running mean diverges", "[train][divergence]") {
  DivergenceGuard guard(guard_config(Divergence::kSkip), /*grad_clip=*/0.0);
  for (double norm : {1.0, 2.0, 3.0, 2.0}) guard.accept(3.0, norm);
  CHECK_FALSE(guard.judge(3.0, 20.0).diverged);
  const auto verdict = guard.judge(3.0, 20.5);
  CHECK(verdict.diverged);
  CHECK_THAT(verdict.why, Catch::Contains("grad norm 20.5"));
  CHECK(guard.skip() == 1);
  CHECK(guard.skip() == 2);
  guard.accept(3.0, 2.0);
  CHECK(guard.skipped_in_a_row() == 0);
  CHECK(guard.skipped_steps() == 2);
}

TEST_CASE("divergence guard: a loss near zero is judged against 1 nat", "[train][divergence]") {
  DivergenceGuard guard(guard_config(Divergence::kStop), 1.0);
  for (double loss : {0.01, 0.001, 0.002}) guard.accept(loss, 0.1);
  CHECK_FALSE(guard.judge(9.9, 0.1).diverged);
  CHECK(guard.judge(10.1, 0.1).diverged);
}

TEST_CASE("divergence guard: off judges nothing", "[train][divergence]") {
  DivergenceGuard guard(guard_config(Divergence::kOff), 0.0);
  for (int i = 0; i < 5; ++i) guard.accept(3.0, 1.0);
  CHECK_FALSE(guard.judge(1e9, 1e9).diverged);
  CHECK_FALSE(guard.judge(std::nan(""), 1.0).diverged);
}

TEST_CASE("checkpoints: a NaN or infinity in any tensor refuses the save and writes nothing", "[train][checkpoint]") {
  TempDir dir;
  GPTConfig cfg;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.channels = 8;
  cfg.max_seq_len = 4;
  cfg.vocab_size = 5;
  cfg.padded_vocab_size = 8;
  const size_t n = parameter_storage_count(cfg);
  CheckpointState state;
  state.step = 1;
  state.model = cfg;
  CheckpointTensors good{std::vector<float>(n, 0.5f), std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
  const std::string root = dir.file("checkpoints");
  save_checkpoint(root, state, good, 0, 0);
  const std::string latest = testing::read_file(dir.path() / "checkpoints" / "latest");
  CHECK(latest == "step_00000001\n");

  state.step = 2;
  const auto layout = parameter_layout(cfg);
  struct Plant {
    std::vector<float> CheckpointTensors::*which;
    float value;
    const char* expect;
  };
  for (const Plant& plant : {Plant{&CheckpointTensors::params, std::nanf(""), "the model tensor 'qkvw'"},
                             Plant{&CheckpointTensors::adam_m, INFINITY, "the optimizer tensor 'm.qkvw'"},
                             Plant{&CheckpointTensors::adam_v, -INFINITY, "the optimizer tensor 'v.qkvw'"}}) {
    CheckpointTensors bad = good;
    for (const auto& t : layout)
      if (t.name == "qkvw") (bad.*plant.which)[t.offset + 3] = plant.value;
    const std::string message = testing::error_message([&] { save_checkpoint(root, state, bad, 0, 0); });
    INFO(message);
    CHECK_THAT(message, Catch::Contains("refusing to save checkpoint") && Catch::Contains("step_00000002") &&
                            Catch::Contains(plant.expect) && Catch::Contains("1 non-finite value"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints" / "step_00000002"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints" / "step_00000002.partial"));
    CHECK(testing::read_file(dir.path() / "checkpoints" / "latest") == latest);
  }
}

}  // namespace
}  // namespace lmt
