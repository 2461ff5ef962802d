// Numeric faults through the CLI (issue 16, item 4): the quickstart at lr 10 without clipping and
// with init_std 1 blows up to a finite loss in hundreds; the divergence guard must end it (stop)
// or skip its runaway steps and then end it (skip), and no checkpoint it leaves may hold a
// non-finite value.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

// The blow-up: by step 12 the loss is above 10 x its lowest running mean (it climbs from 17 to
// about 250 in 12 steps on one thread). Checkpoints every 4 steps, so the run has saved before
// the guard acts.
std::string blow_up(const std::string& more) {
  return "train " + quoted((source_dir() / "recipes" / "quickstart.yaml").string()) +
         " --device cpu --set run.out_dir=runs --set run.threads=1 --set run.steps=60 --set log.every=1"
         " --set eval.every=0 --set optimizer.lr=10 --set optimizer.grad_clip=0 --set model.init_std=1"
         " --set checkpoint.every=4 " +
         more;
}

fs::path run_dir(const TempDir& dir) { return dir.path() / "runs" / "quickstart"; }

// Every value of every tensor in every checkpoint of the run is finite; returns the files read.
int scan_checkpoints(const TempDir& dir) {
  int files = 0;
  for (const auto& step : fs::directory_iterator(run_dir(dir) / "checkpoints")) {
    if (!step.is_directory()) continue;
    INFO(step.path().string());
    CHECK(step.path().filename().string().find(".partial") == std::string::npos);
    for (const char* name : {"model.safetensors", "optimizer.safetensors"}) {
      const lmt::SafeTensorsFile file = lmt::read_safetensors((step.path() / name).string());
      for (const auto& [tensor, values] : file.tensors) {
        size_t bad = 0;
        for (float v : values.as_f32()) bad += std::isfinite(v) ? 0 : 1;
        INFO(name << " " << tensor);
        CHECK(bad == 0);
      }
      ++files;
    }
  }
  return files;
}

}  // namespace

TEST_CASE("divergence: stop ends the blow-up with the figures and the last good checkpoint", "[cli][divergence]") {
  TempDir dir;
  RunResult r = run_lmtrain(dir, blow_up("--set run.divergence=stop"));
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("training diverged at step") && Contains("running mean") &&
                           Contains("grad norm") && Contains("Last good checkpoint: runs/quickstart/checkpoints/step_"));
  // It stopped early, with the end record saying so and no summary.
  const auto records = read_jsonl(run_dir(dir) / "metrics.jsonl");
  REQUIRE_FALSE(records.empty());
  CHECK(records.back()["event"] == "end");
  CHECK(records.back()["diverged"] == true);
  CHECK(records.back()["steps"].get<int64_t>() < 30);
  CHECK_FALSE(fs::exists(run_dir(dir) / "summary.json"));
  CHECK(scan_checkpoints(dir) >= 2);
}

TEST_CASE("divergence: the default guard is stop", "[cli][divergence]") {
  TempDir dir;
  RunResult r = run_lmtrain(dir, blow_up(""));
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("training diverged at step"));
}

TEST_CASE("divergence: skip drops runaway steps, counts them, and stops after max_skips in a row", "[cli][divergence]") {
  TempDir dir;
  RunResult r = run_lmtrain(dir, blow_up("--set run.divergence=skip --set run.divergence_max_skips=3"));
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("step skipped") && Contains("3 steps skipped in a row"));
  int64_t skips = 0, last_count = 0;
  for (const auto& rec : read_jsonl(run_dir(dir) / "metrics.jsonl"))
    if (rec.value("event", "") == "divergence_skip") {
      ++skips;
      CHECK(rec["divergence_skipped_steps"].get<int64_t>() == skips);
      last_count = rec["divergence_skipped_steps"].get<int64_t>();
    }
  CHECK(skips >= 2);
  const auto end = read_jsonl(run_dir(dir) / "metrics.jsonl").back();
  CHECK(end["event"] == "end");
  CHECK(end["diverged"] == true);
  CHECK(end["divergence_skipped_steps"].get<int64_t>() == last_count + 1);
  CHECK(scan_checkpoints(dir) >= 2);
}

TEST_CASE("divergence: off trains the blow-up to the end (the behaviour before the guard)", "[cli][divergence]") {
  TempDir dir;
  RunResult r = run_lmtrain(dir, blow_up("--set run.divergence=off --set run.steps=20 --set schedule.warmup_steps=5"));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(fs::exists(run_dir(dir) / "summary.json"));
}

TEST_CASE("divergence: the guard's keys are range-checked", "[cli][divergence][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.divergence=halt");
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("run.divergence") && Contains("stop, skip, off"));
  r = run_lmtrain(dir, "train tiny.yaml --set run.divergence_factor=1 --set run.divergence_max_skips=0");
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("run.divergence_factor") && Contains("run.divergence_max_skips"));
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
}
