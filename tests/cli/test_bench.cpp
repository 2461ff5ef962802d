// lmtrain bench: structure and consistency of its report (never its speed).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("bench: reports every phase and writes consistent JSON", "[cli][bench]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir, "bench tiny.yaml --steps 5 --warmup 1 --json bench.json --set run.grad_accum_steps=2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("forward") && Contains("backward") && Contains("optimizer") && Contains("GFLOP/s"));
  const auto report = nlohmann::json::parse(read_file(dir.path() / "bench.json"));
  CHECK(report["steps"] == 5);
  CHECK(report["tokens_per_step"] == 4 * 2 * 16);  // micro 4 x accum 2 x T 16
  double phases = 0;
  for (const char* phase : {"data", "forward", "backward", "optimizer"}) {
    REQUIRE(report["phases"].contains(phase));
    const auto& p = report["phases"][phase];
    CHECK(p["p10_ms"].get<double>() <= p["median_ms"].get<double>());
    CHECK(p["median_ms"].get<double>() <= p["p90_ms"].get<double>());
    phases += p["median_ms"].get<double>();
  }
  CHECK(report["step"]["median_ms"].get<double>() > 0);
  // Medians need not add up exactly, but the phases cover the step.
  CHECK(phases <= 1.5 * report["step"]["p90_ms"].get<double>());
  CHECK(report["gflops"].get<double>() ==
        Approx(report["flops_per_step"].get<double>() / report["step"]["median_ms"].get<double>() / 1e6));
  // No files besides the JSON: bench never writes a run directory.
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
  RunResult bad = run_lmtrain(dir, "bench tiny.yaml --steps 0");
  CHECK(bad.status == 2);
}

TEST_CASE("bench --ops: every op the model calls, counted per step", "[cli][bench]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // accum 2: every per-micro-batch op is called twice per step.
  RunResult r = run_lmtrain(dir, "bench tiny.yaml --steps 3 --warmup 1 --ops --json bench.json --set run.grad_accum_steps=2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("calls") && Contains("ms/step") && Contains("all ops"));
  const auto report = nlohmann::json::parse(read_file(dir.path() / "bench.json"));
  REQUIRE(report.contains("ops"));
  std::map<std::string, nlohmann::json> ops;
  double total_ms = 0;
  for (const auto& op : report["ops"]) {
    ops[op["op"].get<std::string>()] = op;
    total_ms += op["ms_per_step"].get<double>();
    CHECK(op["ms_per_step"].get<double>() >= 0);
  }
  // The tiny model has 1 layer: per micro-batch one attention forward and backward, one
  // classifier, one encoder forward; AdamW once per step per parameter tensor (16).
  for (const char* name : {"attention_forward", "attention_backward", "classifier_forward_backward",
                           "encoder_forward", "encoder_backward"}) {
    INFO(name);
    REQUIRE(ops.count(name) == 1);
    CHECK(ops[name]["calls_per_step"].get<double>() == 2.0);
  }
  CHECK(ops["adamw_update"]["calls_per_step"].get<double>() == 16.0);
  CHECK(ops["matmul_forward"]["gflops"].get<double>() > 0);  // GEMM ops report their rate
  CHECK(total_ms <= 2.0 * report["step"]["p90_ms"].get<double>());
  // Without --ops there is no op table.
  RunResult plain = run_lmtrain(dir, "bench tiny.yaml --steps 2 --warmup 0 --json plain.json");
  REQUIRE(plain.status == 0);
  CHECK_FALSE(nlohmann::json::parse(read_file(dir.path() / "plain.json")).contains("ops"));
}
