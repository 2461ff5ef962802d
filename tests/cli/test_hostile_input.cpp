// Red-team defects of issue 16 through the CLI: each bad input is refused with exit 2 and a
// message naming what to fix, and nothing is written (or replaced) on the way.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <tuple>
#include <vector>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;


TEST_CASE("hostile: sizes beyond what plan can count are refused before anything is written", "[cli][hostile]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  SECTION("micro_batch_size 1e12") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.micro_batch_size=1e12");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("run.micro_batch_size: must be at most 2147483647 (got 1000000000000)"));
  }
  SECTION("n_embd 1e9") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set model.n_embd=1e9 --set model.n_head=8");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("model.n_embd") && Contains("parameters; lmtrain holds at most 2^48"));
    RunResult plan = run_lmtrain(dir, "plan tiny.yaml --set model.n_embd=1e9 --set model.n_head=8");
    CHECK(plan.status == 2);
  }
  SECTION("a model that plan can count but this machine cannot hold") {
    RunResult plan = run_lmtrain(dir, "plan tiny.yaml --set model.n_embd=1000000 --set model.n_head=8 --set model.n_layer=12");
    INFO(plan.output);
    REQUIRE(plan.status == 0);
    CHECK_THAT(plan.output, Contains("parameters  144,"));
    CHECK_FALSE(Catch::Matchers::Contains("parameters  -").match(plan.output));
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set model.n_embd=1000000 --set model.n_head=8 --set model.n_layer=12");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("GiB of memory and this machine has") && Contains("lmtrain plan"));
  }
  SECTION("a batch that this machine cannot hold") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.micro_batch_size=2000000");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("GiB of memory and this machine has"));
  }
  SECTION("a 300-character run.name") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.name=" + std::string(300, 'n'));
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("run.name: is 300 bytes long; a file name holds at most 255"));
  }
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
  // The corrected rerun is not refused as "already holds a run".
  RunResult fixed = run_lmtrain(dir, "train tiny.yaml --set run.steps=2");
  INFO(fixed.output);
  CHECK(fixed.status == 0);
}

TEST_CASE("hostile: run.name may not leave the output directory", "[cli][hostile]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "recipe.yaml", "the user's own file\n");
  fs::create_directories(dir.path() / "runs");
  for (const std::string name : {"..", ".", "a/b", "../escape", "''"}) {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=2 --set run.name=" + name);
    INFO(name << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("run.name") && Contains("must be a file name"));
  }
  CHECK(read_file(dir.path() / "recipe.yaml") == "the user's own file\n");
  CHECK(fs::is_empty(dir.path() / "runs"));
  CHECK_FALSE(fs::exists(dir.path() / "metrics.jsonl"));
}
