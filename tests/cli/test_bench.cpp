// lmtrain bench: structure and consistency of its report (never its speed).
#include <catch2/catch.hpp>

#include "tests/cli/cli_util.h"

using namespace lmt::test;
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
