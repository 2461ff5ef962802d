// Comparing a data-parallel run with a 1-rank run: the training steps of metrics.jsonl and the
// recipe overrides that keep the global batch at 12 sequences for any world size.
#pragma once
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/cli/cli_util.h"

namespace lmt::testing {

struct Step {
  int64_t step;
  double loss, grad_norm;
};

inline std::vector<Step> steps_of(const fs::path& metrics) {
  std::vector<Step> out;
  for (const auto& r : read_jsonl(metrics))
    if (is_training_record(r)) out.push_back({r["step"], r["loss"], r["grad_norm"]});
  return out;
}

// The training records from the last start or resume record on: what the attempt that finished
// a restarted run wrote.
inline std::vector<Step> steps_of_last_attempt(const fs::path& metrics) {
  std::vector<Step> out;
  for (const auto& r : read_jsonl(metrics)) {
    if (r.value("event", "") == "resume") out.clear();
    if (is_training_record(r)) out.push_back({r["step"], r["loss"], r["grad_norm"]});
  }
  return out;
}

inline void check_same_steps(const std::vector<Step>& a, const std::vector<Step>& b, double rel) {
  REQUIRE(!a.empty());
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << a[i].step);
    CHECK(a[i].step == b[i].step);
    CHECK(a[i].loss == Approx(b[i].loss).epsilon(rel));
    CHECK(a[i].grad_norm == Approx(b[i].grad_norm).epsilon(rel));
  }
}

// The tiny recipe with a global batch of 12 sequences: micro 2 x accum (6 / world) x world.
inline std::string batch_args(int world) {
  return fmt::format(
      "--set run.micro_batch_size=2 --set run.grad_accum_steps={} --set run.global_batch_size=12 "
      "--set log.every=1 --set eval.every=10 --set eval.batches=6",
      6 / world);
}

}  // namespace lmt::testing
