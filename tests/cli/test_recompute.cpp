// model.recompute through the CLI: the three choices train to the same bytes, and `lmtrain plan`
// prints the activation arena each one allocates (summary.json's activation_bytes), to the byte.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;

namespace {

const char* const kChoices[] = {"none", "mlp", "block"};

// step, loss, lr and grad norm of every training line, as text for exact equality.
std::vector<std::string> loss_lines(const fs::path& metrics) {
  std::vector<std::string> out;
  for (const auto& r : read_jsonl(metrics))
    if (is_training_record(r))
      out.push_back(fmt::format("{} {} {} {}", r["step"].get<int64_t>(), r["loss"].dump(), r["lr"].dump(),
                                r["grad_norm"].dump()));
  return out;
}

// The tiny recipe with 3 blocks (two are recomputed in backward, the last one's activations are
// still there), 2 threads and 2 micro batches a step.
const std::string kSizes =
    " --set model.n_layer=3 --set run.threads=2 --set run.global_batch_size=8 --set log.every=1";

}  // namespace

TEST_CASE("recompute: none, mlp and block train to the same losses and checkpoint bytes", "[cli][recompute]") {
  std::map<std::string, TempDir> dirs;
  for (const std::string choice : kChoices) {
    TempDir& dir = dirs[choice];
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
    const RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=4 --set model.recompute=" + choice + kSizes);
    INFO(choice << "\n" << r.output);
    REQUIRE(r.status == 0);
  }
  auto run_dir = [&](const std::string& choice) { return dirs.at(choice).path() / "runs" / "tiny"; };
  const fs::path none_ckpt = run_dir("none") / "checkpoints" / "step_00000004";
  const auto none_losses = loss_lines(run_dir("none") / "metrics.jsonl");
  REQUIRE(none_losses.size() == 4);
  for (const std::string choice : {"mlp", "block"}) {
    DYNAMIC_SECTION(choice) {
      CHECK(loss_lines(run_dir(choice) / "metrics.jsonl") == none_losses);
      const fs::path ckpt = run_dir(choice) / "checkpoints" / "step_00000004";
      for (const char* file : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"}) {
        INFO(file);
        CHECK(read_file(ckpt / file) == read_file(none_ckpt / file));
      }
      // The saved recipes differ in that one key, and in run.out_dir, the test's directory (so the
      // manifests differ in the recipe's size and checksum).
      auto recipe = [&](const std::string& of) {
        std::string text = read_file(run_dir(of) / "checkpoints" / "step_00000004" / "recipe.yaml");
        const std::string out_dir = dirs.at(of).path().string(), key = "recompute: \"" + of + "\"";
        REQUIRE(text.find(out_dir) != std::string::npos);
        REQUIRE(text.find(key) != std::string::npos);
        text.replace(text.find(out_dir), out_dir.size(), "DIR");
        text.replace(text.find(key), key.size(), "recompute: ?");
        return text;
      };
      CHECK(recipe(choice) == recipe("none"));
    }
  }
}

TEST_CASE("recompute: plan prints the activation bytes of each choice, which is what the trainer allocates",
          "[cli][recompute][memory]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult plan = run_lmtrain(dir, "plan tiny.yaml --set model.recompute=mlp" + kSizes);
  INFO(plan.output);
  REQUIRE(plan.status == 0);
  CHECK_THAT(plan.output, Catch::Matchers::Contains("(micro batch 4 x 16, model.recompute mlp)"));
  std::map<std::string, int64_t> planned;
  const std::regex line(R"(\n  (none|mlp|block) +activations +[0-9.]+ [KMG]?i?B +total +[0-9.]+ [KMG]?i?B +\(activations ([0-9,]+) bytes\)( +<- this recipe)?)");
  for (auto it = std::sregex_iterator(plan.output.begin(), plan.output.end(), line); it != std::sregex_iterator();
       ++it) {
    std::string digits = (*it)[2];
    digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
    planned[(*it)[1]] = std::stoll(digits);
    CHECK((*it)[3].matched == ((*it)[1] == "mlp"));
  }
  REQUIRE(planned.size() == 3);
  CHECK(planned["block"] < planned["mlp"]);
  CHECK(planned["mlp"] < planned["none"]);
  for (const std::string choice : kChoices) {
    DYNAMIC_SECTION(choice) {
      TempDir run;
      write_file(run.path() / "tiny.yaml", tiny_recipe(run));
      const RunResult r = run_lmtrain(run, "train tiny.yaml --set run.steps=1 --set model.recompute=" + choice + kSizes);
      INFO(r.output);
      REQUIRE(r.status == 0);
      const auto summary = nlohmann::json::parse(read_file(run.path() / "runs" / "tiny" / "summary.json"));
      CHECK(summary["activation_bytes"].get<int64_t>() == planned[choice]);
    }
  }
}
