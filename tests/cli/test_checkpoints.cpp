// Checkpoints through the CLI: exact resume, verification of every file, pruning.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

// step, loss, lr and grad norm of every training line (log.every=1), as text for exact equality.
std::vector<std::string> loss_lines(const fs::path& metrics) {
  std::vector<std::string> out;
  for (const auto& r : read_jsonl(metrics))
    if (is_training_record(r))
      out.push_back(fmt::format("{} {} {} {}", r["step"].get<int64_t>(), r["loss"].dump(),
                                r["lr"].dump(), r["grad_norm"].dump()));
  return out;
}

fs::path checkpoints(const TempDir& dir) { return dir.path() / "runs" / "tiny" / "checkpoints"; }

}  // namespace

TEST_CASE("checkpoints: 10 steps + resume + 10 steps equals 20 straight, bit for bit", "[cli][checkpoint]") {
  TempDir straight, split;
  write_file(straight.path() / "tiny.yaml", tiny_recipe(straight));
  write_file(split.path() / "tiny.yaml", tiny_recipe(split));
  // A constant learning rate, so the 10-step run follows the same schedule as the 20-step one.
  // 200 tokens make 12 windows per epoch: the 80 windows of 20 steps cross several epochs, and
  // the resume point (40 windows) falls inside one.
  const std::string common =
      "train tiny.yaml --set log.every=1 --set schedule.decay=constant --set data.synthetic.train_tokens=200";
  RunResult a = run_lmtrain(straight, common + " --set run.steps=20");
  INFO(a.output);
  REQUIRE(a.status == 0);
  RunResult b1 = run_lmtrain(split, common + " --set run.steps=10");
  REQUIRE(b1.status == 0);
  RunResult b2 = run_lmtrain(split, common + " --set run.steps=20 --resume auto");
  INFO(b2.output);
  REQUIRE(b2.status == 0);
  CHECK_THAT(b2.output, Contains("resumed from"));
  const auto expected = loss_lines(straight.path() / "runs" / "tiny" / "metrics.jsonl");
  CHECK(expected.size() == 20);
  CHECK(loss_lines(split.path() / "runs" / "tiny" / "metrics.jsonl") == expected);
  CHECK(read_file(checkpoints(split) / "step_00000020" / "model.safetensors") ==
        read_file(checkpoints(straight) / "step_00000020" / "model.safetensors"));
  CHECK(read_file(checkpoints(split) / "step_00000020" / "optimizer.safetensors") ==
        read_file(checkpoints(straight) / "step_00000020" / "optimizer.safetensors"));
}

TEST_CASE("checkpoints: 1, 2 and 3 threads give the same losses and checkpoint bytes", "[cli][checkpoint]") {
  // Large enough that the GEMMs, row loops and attention heads are split over the threads
  // (512 rows x 64 channels, 4 heads, vocab 100): which thread computes what must not change a bit.
  const std::string sizes =
      " --set run.steps=8 --set log.every=1 --set run.seq_len=64 --set model.max_seq_len=64"
      " --set run.micro_batch_size=8 --set model.n_layer=2 --set model.n_head=4"
      " --set model.n_embd=64 --set data.synthetic.vocab_size=100";
  std::vector<std::string> losses;
  std::vector<std::string> models;
  for (int threads : {1, 2, 3}) {
    TempDir dir;
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.threads=" + std::to_string(threads) + sizes);
    INFO("threads " << threads << "\n" << r.output);
    REQUIRE(r.status == 0);
    const auto lines = loss_lines(dir.path() / "runs" / "tiny" / "metrics.jsonl");
    REQUIRE(lines.size() == 8);
    losses.push_back(fmt::format("{}", fmt::join(lines, "\n")));
    models.push_back(read_file(checkpoints(dir) / "step_00000008" / "model.safetensors"));
  }
  CHECK(losses[1] == losses[0]);
  CHECK(losses[2] == losses[0]);
  CHECK(models[1] == models[0]);
  CHECK(models[2] == models[0]);
}

TEST_CASE("checkpoints: a stopped run resumes with a longer schedule and says what changed", "[cli][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=10").status == 0);
  RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=15 --resume latest");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("changed since that checkpoint: run.steps: 10 -> 15"));
  CHECK(read_file(checkpoints(dir) / "latest") == "step_00000015\n");
}

TEST_CASE("checkpoints: damaged or mismatched checkpoints are refused before anything is touched", "[cli][checkpoint][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=10").status == 0);
  const fs::path model = checkpoints(dir) / "step_00000010" / "model.safetensors";
  const std::string original = read_file(model);

  SECTION("a flipped byte fails the checksum") {
    std::string bad = original;
    bad[bad.size() / 2] ^= 0x40;
    write_file(model, bad);
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("model.safetensors") && Contains("checksum"));
  }
  SECTION("a truncated file is named with its size") {
    write_file(model, original.substr(0, original.size() - 100));
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("model.safetensors") && Contains("truncated"));
  }
  SECTION("a different model shape lists the differing keys") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --set model.n_embd=64 --resume auto");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("model.n_embd: checkpoint 32 vs recipe 64"));
  }
  SECTION("different training data cannot continue the data stream") {
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --set data.synthetic.train_tokens=5000 --resume auto");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("different training data") && Contains("tokens: 4096 then, 5000 now"));
  }
  SECTION("--resume latest without a latest file") {
    fs::remove(checkpoints(dir) / "latest");
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume latest");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("latest") && Contains("does not exist"));
  }
  // Every refusal leaves the metrics of the first run as they were.
  const auto records = read_jsonl(dir.path() / "runs" / "tiny" / "metrics.jsonl");
  CHECK(records.back()["event"] == "end");
  CHECK(records.back()["steps"] == 10);
}

TEST_CASE("checkpoints: --resume auto starts fresh when there is nothing to resume", "[cli][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=5 --resume auto");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(read_file(checkpoints(dir) / "latest") == "step_00000005\n");
}

TEST_CASE("checkpoints: keep_last prunes older ones after the new one is complete", "[cli][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --set checkpoint.every=5 --set checkpoint.keep_last=2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(checkpoints(dir))) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"latest", "step_00000015", "step_00000020"});
}

TEST_CASE("checkpoints: keep_every spares milestones from keep_last pruning", "[cli][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=30 --set checkpoint.every=5 "
                                 "--set checkpoint.keep_last=1 --set checkpoint.keep_every=10");
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(checkpoints(dir))) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"latest", "step_00000010", "step_00000020", "step_00000030"});
}

TEST_CASE("checkpoints: SIGKILL at any moment leaves a checkpoint that resumes", "[cli][checkpoint][kill]") {
  // Saving every step of a tiny model keeps the process inside save_checkpoint most of the time,
  // so the kills land mid-write (in a data file, the manifest, the rename or `latest`).
  for (const char* delay : {"0.3", "0.45", "0.6", "0.75", "0.9"}) {
    TempDir dir;
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
    RunResult killed = run_lmtrain(
        dir, "train tiny.yaml --set run.steps=1000000 --set checkpoint.every=1 --set checkpoint.keep_last=2", "",
        std::string("timeout --foreground -s KILL ") + delay);
    INFO("killed after " << delay << " s: " << killed.output);
    REQUIRE(killed.status != 0);
    // Continue a few steps past whatever survived (or start fresh if nothing did).
    int64_t survived = 0;
    if (fs::exists(checkpoints(dir) / "latest"))
      survived = std::stoll(read_file(checkpoints(dir) / "latest").substr(5));
    RunResult resumed = run_lmtrain(
        dir, fmt::format("train tiny.yaml --set run.steps={} --resume auto --overwrite", survived + 3));
    INFO(resumed.output);
    CHECK(resumed.status == 0);
    if (survived > 0) CHECK_THAT(resumed.output, Contains(fmt::format("at step {}", survived)));
    CHECK(read_file(checkpoints(dir) / "latest") == fmt::format("step_{:08d}\n", survived + 3));
    for (const auto& entry : fs::directory_iterator(checkpoints(dir)))
      CHECK(entry.path().filename().string().find(".partial") == std::string::npos);
  }
}

TEST_CASE("checkpoints: SIGTERM mid-run, then resume, ends exactly like an uninterrupted run", "[cli][checkpoint][signals]") {
  // With a growing sequence length and a token-counted LR schedule, so the resumed run must
  // recover both positions from the step alone. The run must outlast the 1 s before SIGTERM:
  // 20000 steps of the tiny model take about 5 s here (0.25 ms each).
  const std::string args =
      "train tiny.yaml --set run.steps=20000 --set log.every=5000 --set seq_len_schedule.type=fixed_linear "
      "--set seq_len_schedule.min_seq_len=8 --set seq_len_schedule.total_steps=16000 "
      "--set seq_len_schedule.step_multiple=4 --set schedule.unit=tokens --set schedule.warmup_steps=100";
  TempDir straight, stopped;
  write_file(straight.path() / "tiny.yaml", tiny_recipe(straight));
  write_file(stopped.path() / "tiny.yaml", tiny_recipe(stopped));
  RunResult a = run_lmtrain(straight, args);
  INFO(a.output);
  REQUIRE(a.status == 0);
  RunResult b1 = run_lmtrain(stopped, args, "", "timeout --foreground --preserve-status -s TERM 1");
  INFO(b1.output);
  REQUIRE(b1.status == 0);  // preemption: checkpoint and exit 0
  REQUIRE_THAT(b1.output, Contains("stopped by signal"));
  RunResult b2 = run_lmtrain(stopped, args + " --resume auto");
  INFO(b2.output);
  REQUIRE(b2.status == 0);
  const auto summary_a = nlohmann::json::parse(read_file(straight.path() / "runs" / "tiny" / "summary.json"));
  const auto summary_b = nlohmann::json::parse(read_file(stopped.path() / "runs" / "tiny" / "summary.json"));
  CHECK(summary_b["loss"] == summary_a["loss"]);
  CHECK(summary_b["val_loss"] == summary_a["val_loss"]);
  CHECK(read_file(checkpoints(stopped) / "step_00020000" / "model.safetensors") ==
        read_file(checkpoints(straight) / "step_00020000" / "model.safetensors"));
}

TEST_CASE("seq_len_schedule: a fixed_linear run from 16 to 64 shows the growing T", "[cli][seq_len]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult r = run_lmtrain(dir,
                            "train tiny.yaml --set run.seq_len=64 --set model.max_seq_len=64 --set run.steps=12 "
                            "--set log.every=1 --set seq_len_schedule.type=fixed_linear "
                            "--set seq_len_schedule.min_seq_len=16 --set seq_len_schedule.total_steps=10");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("| T 16 |") && Contains("| T 40 |") && Contains("| T 64 |"));
  std::vector<int64_t> lengths;
  int64_t tokens = 0;
  for (const auto& rec : read_jsonl(dir.path() / "runs" / "tiny" / "metrics.jsonl"))
    if (is_training_record(rec)) {
      lengths.push_back(rec["seq_len"].get<int64_t>());
      tokens += 4 * lengths.back();
      CHECK(rec["tokens"].get<int64_t>() == tokens);  // tokens count the current T
    }
  CHECK(lengths == std::vector<int64_t>{16, 24, 24, 32, 40, 40, 48, 48, 56, 64, 64, 64});
}

TEST_CASE("checkpoints: a failed write (disk full) is an error and keeps the previous checkpoint", "[cli][checkpoint][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=10").status == 0);
  // A 40 KiB file-size limit (with SIGXFSZ ignored, writes fail with EFBIG) stands in for a full
  // disk: the optimizer file of the next checkpoint cannot be written.
  RunResult full = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto", "",
                               "bash -c 'trap \"\" XFSZ; ulimit -f 40; exec \"$@\"' limited");
  INFO(full.output);
  CHECK(full.status == 2);
  CHECK_THAT(full.output, Contains("failed") && Contains("step_00000020"));
  CHECK(read_file(checkpoints(dir) / "latest") == "step_00000010\n");
  CHECK_FALSE(fs::exists(checkpoints(dir) / "step_00000020"));
  CHECK_FALSE(fs::exists(checkpoints(dir) / "step_00000020.partial"));
  // With room again, the run resumes from the previous checkpoint and completes.
  RunResult again = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
  INFO(again.output);
  CHECK(again.status == 0);
  CHECK_THAT(again.output, Contains("at step 10"));
  CHECK(read_file(checkpoints(dir) / "latest") == "step_00000020\n");
}
