// lmtrain eval: the same numbers as the trainer's own evaluation, on one or more sets.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("eval: a checkpoint's validation loss equals the trainer's at that step", "[cli][eval]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult train = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --set eval.every=10 --set checkpoint.every=10");
  INFO(train.output);
  REQUIRE(train.status == 0);
  double trained_at_10 = -1, trained_at_20 = -1;
  for (const auto& r : read_jsonl(dir.path() / "runs" / "tiny" / "metrics.jsonl")) {
    if (!r.contains("val_loss")) continue;
    if (r["step"] == 10) trained_at_10 = r["val_loss"].get<double>();
    if (r["step"] == 20) trained_at_20 = r["val_loss"].get<double>();
  }
  const fs::path root = dir.path() / "runs" / "tiny" / "checkpoints";
  for (auto [step, expected] : {std::pair{10, trained_at_10}, std::pair{20, trained_at_20}}) {
    RunResult r = run_lmtrain(dir, fmt::format("eval --checkpoint {} --json", quoted((root / fmt::format("step_{:08d}", step)).string())));
    INFO(r.output);
    REQUIRE(r.status == 0);
    const auto report = nlohmann::json::parse(r.output);
    CHECK(report["step"] == step);
    CHECK(report["sets"][0]["name"] == "val");
    CHECK(report["sets"][0]["loss"].get<double>() == expected);  // exactly: same code, same windows
  }
  // The root resolves through `latest`; text output shows loss and perplexity.
  RunResult text = run_lmtrain(dir, "eval --checkpoint " + quoted(root.string()));
  CHECK(text.status == 0);
  CHECK_THAT(text.output, Contains("(step 20)") && Contains("perplexity"));
}

TEST_CASE("eval: several shards by glob, and clear errors", "[cli][eval]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 400; ++i) text += fmt::format("line {} of a small corpus, with some words.\n", i % 37);
  write_file(dir.path() / "corpus.txt", text);
  REQUIRE(run_lmtrain(dir, "data prepare --input corpus.txt --tokenizer char --out prepared --quiet").status == 0);
  fs::copy_file(dir.path() / "prepared" / "val_000000.bin", dir.path() / "prepared" / "val2.bin");
  write_file(dir.path() / "shards.yaml",
             "run: {name: shards, out_dir: runs, steps: 5, seq_len: 16, micro_batch_size: 2, device: cpu, threads: 1}\n"
             "model: {n_layer: 1, n_head: 2, n_embd: 16, max_seq_len: 16}\n"
             "data: {source: shards, train: prepared/train_*.bin, val: prepared/val_*.bin}\n"
             "eval: {batches: 3, sets: {copy: prepared/val2.bin}}\n");
  RunResult train = run_lmtrain(dir, "train shards.yaml");
  INFO(train.output);
  REQUIRE(train.status == 0);
  CHECK_THAT(train.output, Contains("| copy loss"));
  double val_loss = -1, copy_loss = -2;
  for (const auto& rec : read_jsonl(dir.path() / "runs" / "shards" / "metrics.jsonl")) {
    if (!rec.contains("val_loss")) continue;
    (rec.contains("set") ? copy_loss : val_loss) = rec["val_loss"].get<double>();
  }
  CHECK(copy_loss == val_loss);  // eval.sets are logged under their names; same tokens here
  // Without --data, eval reports the run's val set and every eval.sets entry by name.
  RunResult own = run_lmtrain(dir, "eval --checkpoint runs/shards/checkpoints --json");
  INFO(own.output);
  REQUIRE(own.status == 0);
  const auto own_report = nlohmann::json::parse(own.output);
  REQUIRE(own_report["sets"].size() == 2);
  CHECK(own_report["sets"][0]["name"] == "val");
  CHECK(own_report["sets"][1]["name"] == "copy");
  CHECK(own_report["sets"][1]["loss"].get<double>() == copy_loss);
  RunResult r = run_lmtrain(dir, "eval --checkpoint runs/shards/checkpoints --data 'prepared/val*.bin' --json");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto report = nlohmann::json::parse(r.output);
  REQUIRE(report["sets"].size() == 2);
  CHECK(report["sets"][0]["loss"] == report["sets"][1]["loss"]);  // the same tokens twice

  RunResult missing = run_lmtrain(dir, "eval --checkpoint runs/shards/checkpoints --data 'nothing/*.bin'");
  CHECK(missing.status == 2);
  CHECK_THAT(missing.output, Contains("matches no files"));
  RunResult no_checkpoint = run_lmtrain(dir, "eval --checkpoint runs/none");
  CHECK(no_checkpoint.status == 2);
  CHECK_THAT(no_checkpoint.output, Contains("runs/none"));
}
