// TensorBoard itself reads a trained run's event files (tools/tensorboard_check.py loads them with
// its EventAccumulator and compares every scalar with metrics.jsonl), also after a resume from an
// earlier checkpoint, where TensorBoard must drop the steps the first run logged past it. Needs a
// Python with tensorboard: $LMTRAIN_TEST_PYTHON, else .venv-test/bin/python in the source tree
// (tools/setup-test-env.sh); skipped with a SKIPPED line without one.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/cli/cli_util.h"
#include "tests/data/foreign_shard_writers.h"

using namespace lmt::testing;

namespace {

// The Python that has tensorboard, or empty after a visible SKIPPED line.
std::string tensorboard_python() {
  std::string why;
  const std::string python = test_python("tensorboard.backend.event_processing.event_accumulator", why);
  if (python.empty()) WARN("SKIPPED: " << why);
  return python;
}

RunResult check_with_tensorboard(const TempDir& dir, const std::string& python, const fs::path& tensorboard_dir,
                                 const fs::path& metrics) {
  return run_shell(dir, quoted(python) + " " + quoted((source_dir() / "tools" / "tensorboard_check.py").string()) +
                              " " + quoted(tensorboard_dir.string()) + " " + quoted(metrics.string()));
}

size_t num_event_files(const fs::path& dir) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) ++n;
  return n;
}

// The tiny CLI recipe with evaluations on the validation split and on one eval.sets entry.
fs::path write_recipe(const TempDir& dir) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 1024; ++i) tokens.push_back((i * 3) % 8);
  write_file(dir.path() / "heldout.bin", nanogpt_bytes(tokens));
  std::string text = tiny_recipe(dir);
  const std::string eval = "eval:\n  every: 0\n";
  REQUIRE(text.find(eval) != std::string::npos);
  text.replace(text.find(eval), eval.size(),
               "eval:\n  every: 5\n  sets:\n    heldout: " + (dir.path() / "heldout.bin").string() + "\n");
  const std::string data = "data:\n";
  text.replace(text.find(data), data.size(), "data:\n  format: nanogpt\n");
  const fs::path recipe = dir.path() / "tiny.yaml";
  write_file(recipe, text);
  return recipe;
}

const std::string kSchedule = " --set log.every=2";

}  // namespace

TEST_CASE("tensorboard: TensorBoard reads back every scalar of metrics.jsonl", "[cli][tensorboard]") {
  TempDir dir;
  const std::string python = tensorboard_python();
  if (python.empty()) return;
  const fs::path recipe = write_recipe(dir);
  RunResult train = run_lmtrain(dir, "train " + quoted(recipe.string()) + kSchedule + " --set log.tensorboard=true");
  INFO(train.output);
  REQUIRE(train.status == 0);
  const fs::path run_dir = dir.path() / "runs" / "tiny";
  REQUIRE(num_event_files(run_dir / "tensorboard") == 1);
  RunResult check = check_with_tensorboard(dir, python, run_dir / "tensorboard", run_dir / "metrics.jsonl");
  INFO(check.output);
  CHECK(check.status == 0);
  CHECK_THAT(check.output, Catch::Contains("match metrics.jsonl"));
}

TEST_CASE("tensorboard: a run resumed from an earlier checkpoint shows each step once, as last logged",
          "[cli][tensorboard]") {
  TempDir dir;
  const std::string python = tensorboard_python();
  if (python.empty()) return;
  const fs::path recipe = write_recipe(dir);
  const fs::path tensorboard_dir = dir.path() / "tb";
  const std::string common = quoted(recipe.string()) + kSchedule + " --tensorboard " + quoted(tensorboard_dir.string());
  // 20 steps with a checkpoint at 10; then, as if the run had died after step 20 with only the
  // step-10 checkpoint usable, resume from it and go on to 30 (a longer schedule, so the resumed
  // steps 11..20 log values other than the first run's).
  RunResult first = run_lmtrain(dir, "train " + common + " --set run.steps=20 --set checkpoint.every=10");
  INFO(first.output);
  REQUIRE(first.status == 0);
  const fs::path run_dir = dir.path() / "runs" / "tiny";
  RunResult resumed = run_lmtrain(dir, "train " + common + " --set run.steps=30 --set checkpoint.every=10 --resume " +
                                           quoted((run_dir / "checkpoints" / "step_00000010").string()));
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK_THAT(resumed.output, Catch::Contains("at step 10"));
  CHECK_FALSE(fs::exists(run_dir / "tensorboard"));  // --tensorboard DIR replaces the default
  REQUIRE(num_event_files(tensorboard_dir) == 2);

  // metrics.jsonl holds steps 12..20 twice, the first run's and the resumed run's.
  int step_12_records = 0;
  for (const auto& record : read_jsonl(run_dir / "metrics.jsonl"))
    if (is_training_record(record) && record["step"] == 12) ++step_12_records;
  REQUIRE(step_12_records == 2);

  RunResult check = check_with_tensorboard(dir, python, tensorboard_dir, run_dir / "metrics.jsonl");
  INFO(check.output);
  CHECK(check.status == 0);
  CHECK_THAT(check.output, Catch::Contains("steps 1..30, match metrics.jsonl"));
}
