// The trainer in-process (no binary spawned): the evaluation and checkpoint schedule, a stop
// request, gradient accumulation, and an fp16 overflow that skips its update (on the CUDA
// emulator, which test_train links as its GPU runtime).
#include <catch2/catch.hpp>

#include <csignal>
#include <string>
#include <utility>
#include <vector>

#include "core/recipe.h"
#include "tests/cli/cli_util.h"
#include "train/reporter.h"
#include "train/trainer.h"

namespace lmt {
namespace {

using testing::TempDir;

// Every event the reporter sends, in order.
class CaptureSink final : public ReportSink {
 public:
  explicit CaptureSink(std::vector<ReportEvent>& events) : events_(events) {}
  void on_event(const ReportEvent& event) override { events_.push_back(event); }

 private:
  std::vector<ReportEvent>& events_;
};

LoadedRecipe tiny(const TempDir& dir, const std::vector<std::string>& overrides) {
  LoadedRecipe loaded = parse_recipe_text(testing::tiny_recipe(dir), "tiny.yaml");
  apply_overrides(loaded, overrides);
  validate_recipe(loaded, 1);
  return loaded;
}

TrainOptions quiet(const std::string& resume = "") {
  TrainOptions options;
  options.print_progress = false;
  options.resume = resume;
  return options;
}

// (kind, step) of the events that have a step, in order.
std::vector<std::pair<std::string, int64_t>> steps_of(const std::vector<ReportEvent>& events) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& e : events)
    if (e.record.is_object() && e.record.contains("step") && e.kind != "start" && e.kind != "resume")
      out.emplace_back(e.kind, e.record["step"].get<int64_t>());
  return out;
}

TEST_CASE("trainer: steps, metrics lines, evaluations and checkpoints follow the schedule", "[train][trainer]") {
  TempDir dir;
  Trainer trainer(tiny(dir, {"run.steps=6", "log.every=2", "eval.every=2", "checkpoint.every=3"}), quiet());
  std::vector<ReportEvent> events;
  trainer.reporter().add_sink(std::make_unique<CaptureSink>(events));
  std::vector<double> losses;
  while (trainer.steps_done() < trainer.total_steps()) {
    const StepResult step = trainer.step();
    CHECK(step.applied);
    CHECK(step.step == trainer.steps_done());
    CHECK(step.tokens == 4 * 16);
    losses.push_back(step.loss);
    trainer.after_step(step);
  }
  const TrainResult result = trainer.finish(false, 0);
  CHECK(result.steps_done == 6);
  CHECK_FALSE(result.interrupted);
  REQUIRE(result.final_val_loss.has_value());
  CHECK(losses.back() < losses.front());
  // Metrics lines at 1, every log.every and the last; evaluations every eval.every before the
  // last step, whose evaluation is the final one; checkpoints every checkpoint.every, and none
  // again at the end since step 6 is saved.
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"step", 1}, {"step", 2}, {"eval", 2},       {"checkpoint", 3}, {"step", 4},
      {"eval", 4}, {"step", 6}, {"checkpoint", 6}, {"eval", 6}};
  CHECK(steps_of(events) == expected);
  // The run's end: its summary record, then the closing console line.
  REQUIRE(events.size() >= 2);
  const ReportEvent& end = events[events.size() - 2];
  CHECK(end.kind == "end");
  CHECK(end.record["steps"].get<int64_t>() == 6);
  CHECK_THAT(events.back().line, Catch::StartsWith("done: 6 steps"));
}

TEST_CASE("trainer: a stop request ends after the step in flight, with a checkpoint and no final evaluation",
          "[train][trainer]") {
  TempDir dir;
  std::vector<std::string> overrides = {"run.steps=8", "log.every=1", "eval.every=0"};
  {
    Trainer trainer(tiny(dir, overrides), quiet());
    std::vector<ReportEvent> events;
    trainer.reporter().add_sink(std::make_unique<CaptureSink>(events));
    trainer.after_step(trainer.step());
    trainer.after_step(trainer.step());
    CHECK_FALSE(trainer.stop_requested());
    trainer.request_stop();
    REQUIRE(trainer.stop_requested());
    const TrainResult result = trainer.finish(true, SIGTERM);
    CHECK(result.interrupted);
    CHECK(result.stop_signal == SIGTERM);
    CHECK(result.steps_done == 2);
    CHECK_FALSE(result.final_val_loss.has_value());
    const std::vector<std::pair<std::string, int64_t>> expected = {{"step", 1}, {"step", 2}, {"checkpoint", 2}};
    CHECK(steps_of(events) == expected);
  }
  // It resumes at the saved step and runs to the end.
  Trainer resumed(tiny(dir, overrides), quiet("auto"));
  CHECK(resumed.steps_done() == 2);
  CHECK(resumed.step().step == 3);
}

TEST_CASE("trainer: 2 micro-batches of 2 give the loss and gradient norm of 1 micro-batch of 4",
          "[train][trainer]") {
  auto run = [](const std::string& micro, const std::string& accum) {
    TempDir dir;
    Trainer trainer(tiny(dir, {"run.steps=3", "run.micro_batch_size=" + micro, "run.grad_accum_steps=" + accum,
                               "run.global_batch_size=4"}),
                    quiet());
    std::vector<StepResult> steps;
    for (int i = 0; i < 3; ++i) {
      steps.push_back(trainer.step());
      trainer.after_step(steps.back());
    }
    return steps;
  };
  const auto whole = run("4", "1"), accumulated = run("2", "2");
  for (size_t i = 0; i < whole.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(accumulated[i].loss == Approx(whole[i].loss).epsilon(1e-5));
    CHECK(accumulated[i].grad_norm == Approx(whole[i].grad_norm).epsilon(1e-4));
    CHECK(accumulated[i].lr == whole[i].lr);
  }
}

TEST_CASE("trainer: an fp16 overflow skips the update, lowers the scale and is reported (CUDA emulator)",
          "[train][trainer][fp16]") {
  TempDir dir;
  LoadedRecipe loaded = parse_recipe_text(testing::tiny_recipe(dir, "fp16"), "tiny.yaml");
  apply_overrides(loaded, {"run.steps=3", "model.n_embd=64", "log.every=1", "precision.initial_scale_power=30",
                           "data.synthetic.train_tokens=400"});
  validate_recipe(loaded, 1);
  TrainOptions options = quiet();
  options.device = lmt::DeviceKind::kCuda;
  Trainer trainer(loaded, options);
  std::vector<ReportEvent> events;
  trainer.reporter().add_sink(std::make_unique<CaptureSink>(events));
  const StepResult first = trainer.step();
  trainer.after_step(first);
  // 2^30 overflows fp16 at once: no update, no learning rate, the data consumed.
  CHECK_FALSE(first.applied);
  CHECK(first.lr == 0.0);
  CHECK(trainer.steps_done() == 1);
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == "overflow");
  CHECK(events[0].record["loss_scale"].get<double>() <= std::ldexp(1.0, 30));
  CHECK_THAT(events[0].line, Catch::Contains("step skipped, loss scale"));
}

}  // namespace
}  // namespace lmt
