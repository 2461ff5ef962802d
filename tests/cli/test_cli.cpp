// End-to-end tests of the lmtrain binary (LMTRAIN_BINARY): each case runs it in a fresh temporary
// directory, captures stdout and stderr together and checks the exit status and the files written.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/strings.h"
#include "tests/cli/cli_util.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using namespace lmt::testing;

std::string recipe_path(const std::string& name) { return (source_dir() / "recipes" / name).string(); }




std::vector<double> training_losses(const std::vector<json>& records) {
  std::vector<double> losses;
  for (const auto& r : records)
    if (is_training_record(r)) losses.push_back(r.at("loss").get<double>());
  return losses;
}

// ~5 KB of text with a small, known alphabet.
std::string sample_text() {
  const std::vector<std::string> words = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"};
  std::string text;
  for (int i = 0; text.size() < 5000; ++i) {
    text += words[(i * 7 + i / 8) % words.size()];
    text += (i % 11 == 10) ? ".\n" : " ";
  }
  return text;
}

}  // namespace

// ---- plan -------------------------------------------------------------------------------------

TEST_CASE("cli plan: gpt2-124m has 124,439,808 parameters", "[cli][plan]") {
  TempDir dir;
  const RunResult r = run_lmtrain(dir, "plan " + quoted(recipe_path("gpt2-124m.yaml")));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("124,439,808"));
  CHECK_THAT(r.output, Contains("64 micro x 8 accum x 1 ranks = 512 sequences"));
}

TEST_CASE("cli plan: --world-size and WORLD_SIZE change the derived accumulation", "[cli][plan]") {
  TempDir dir;
  const RunResult flag = run_lmtrain(dir, "plan " + quoted(recipe_path("gpt2-124m.yaml")) + " --world-size 4");
  INFO(flag.output);
  CHECK(flag.status == 0);
  CHECK_THAT(flag.output, Contains("64 micro x 2 accum x 4 ranks = 512 sequences"));

  const RunResult env = run_lmtrain(dir, "plan " + quoted(recipe_path("gpt2-124m.yaml")), "WORLD_SIZE=2");
  INFO(env.output);
  CHECK(env.status == 0);
  CHECK_THAT(env.output, Contains("64 micro x 4 accum x 2 ranks"));

  const RunResult bad = run_lmtrain(dir, "plan " + quoted(recipe_path("gpt2-124m.yaml")), "WORLD_SIZE=abc");
  INFO(bad.output);
  CHECK(bad.status == 2);
  CHECK_THAT(bad.output, Contains("WORLD_SIZE"));
}

TEST_CASE("cli plan: --print-config output plans back to the same config", "[cli][plan]") {
  TempDir dir;
  const RunResult first = run_lmtrain(dir, "plan " + quoted(recipe_path("gpt2-124m.yaml")) + " --print-config");
  INFO(first.output);
  REQUIRE(first.status == 0);
  CHECK_THAT(first.output, Contains("n_layer: 12"));
  CHECK_THAT(first.output, Contains("grad_accum_steps: 8"));  // derived, now explicit
  write_file(dir.path() / "printed.yaml", first.output);

  const RunResult second = run_lmtrain(dir, "plan printed.yaml --print-config");
  INFO(second.output);
  CHECK(second.status == 0);
  CHECK(second.output == first.output);

  const RunResult plan = run_lmtrain(dir, "plan printed.yaml");
  CHECK(plan.status == 0);
  CHECK_THAT(plan.output, Contains("124,439,808"));
}

// ---- user errors: exit 2 with file, line and key ----------------------------------------------

TEST_CASE("cli: bad recipes exit 2 naming file, line and key path", "[cli][errors]") {
  TempDir dir;
  const std::string base = "run:\n  micro_batch_size: 4\ndata:\n  source: synthetic\n";
  SECTION("unknown key") {
    write_file(dir.path() / "typo.yaml", base + "modle:\n  n_layer: 2\n");
    const RunResult r = run_lmtrain(dir, "plan typo.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("error: "));
    CHECK_THAT(r.output, Contains("typo.yaml:5:1: unknown key 'modle'"));
    CHECK_THAT(r.output, Contains("did you mean 'model'"));
  }
  SECTION("out of range") {
    write_file(dir.path() / "negative.yaml", base + "model:\n  n_layer: -1\n");
    const RunResult r = run_lmtrain(dir, "plan negative.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("negative.yaml:6:12: model.n_layer: must be at least 1"));
  }
  SECTION("wrong type") {
    write_file(dir.path() / "word.yaml", base + "model:\n  n_layer: twelve\n");
    const RunResult r = run_lmtrain(dir, "train word.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("word.yaml:6:12: model.n_layer: expected an integer, got 'twelve'"));
  }
  SECTION("invalid YAML") {
    write_file(dir.path() / "broken.yaml", "run:\n  steps: [1, 2\n");
    const RunResult r = run_lmtrain(dir, "plan broken.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(std::regex_search(r.output, std::regex(R"(broken\.yaml:[0-9]+:[0-9]+: invalid YAML)")));
  }
}

TEST_CASE("cli: a missing recipe file exits 2", "[cli][errors]") {
  TempDir dir;
  for (const std::string cmd : {"plan", "train"}) {
    const RunResult r = run_lmtrain(dir, cmd + " does-not-exist.yaml");
    INFO(cmd << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("does-not-exist.yaml"));
  }
}

TEST_CASE("cli: a bad --set exits 2 with a suggestion", "[cli][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult r = run_lmtrain(dir, "plan tiny.yaml --set model.n_layr=3");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("unknown key 'model.n_layr'"));
  CHECK_THAT(r.output, Contains("did you mean"));
  CHECK_THAT(r.output, Contains("n_layer"));

  const RunResult value = run_lmtrain(dir, "plan tiny.yaml --set model.n_layer=abc");
  INFO(value.output);
  CHECK(value.status == 2);
  CHECK_THAT(value.output, Contains("expected an integer, got 'abc'"));
}

TEST_CASE("cli: a bad flag exits 2", "[cli][errors]") {
  TempDir dir;
  const RunResult bare = run_lmtrain(dir, "train --bogus");
  INFO(bare.output);
  CHECK(bare.status == 2);

  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult r = run_lmtrain(dir, "train tiny.yaml --bogus");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("--bogus"));
  CHECK_FALSE(fs::exists(dir.path() / "runs"));

  const RunResult sub = run_lmtrain(dir, "fly");
  CHECK(sub.status == 2);
  const RunResult none = run_lmtrain(dir, "");
  CHECK(none.status == 2);
}

// ---- doctor -----------------------------------------------------------------------------------

TEST_CASE("cli doctor: reports CPU cores and the GPU situation", "[cli][doctor]") {
  TempDir dir;
  const RunResult r = run_lmtrain(dir, "doctor");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("cpu cores"));
  CHECK_THAT(r.output, Contains("lmtrain "));
  // Either no driver / no CUDA in the build, or one "INDEX: NAME (sm_XY, N GiB)" entry per GPU.
  const std::regex gpus(R"(gpus +(no CUDA driver|CUDA support not compiled in|the CUDA driver reports no device|0: .+ \(sm_[0-9]+, [0-9.]+ GiB\)))");
  CHECK(std::regex_search(r.output, gpus));
}

TEST_CASE("cli doctor and train: LMTRAIN_CPU_ISA picks the GEMM kernel, a bad value is exit 2",
          "[cli][doctor]") {
  TempDir dir;
  const RunResult best = run_lmtrain(dir, "doctor");
  CHECK_THAT(best.output, Contains("cpu gemm") && Contains("micro-kernel"));
  const RunResult generic = run_lmtrain(dir, "doctor", "LMTRAIN_CPU_ISA=generic");
  INFO(generic.output);
  CHECK(generic.status == 0);
  CHECK_THAT(generic.output, Contains("cpu gemm     generic micro-kernel"));
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult bad = run_lmtrain(dir, "train tiny.yaml", "LMTRAIN_CPU_ISA=sse9");
  INFO(bad.output);
  CHECK(bad.status == 2);
  CHECK_THAT(bad.output, Contains("LMTRAIN_CPU_ISA='sse9'") && Contains("expected generic, avx2 or avx512"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "runs"));  // nothing written
  // The portable kernel trains too (a handful of steps).
  const RunResult portable = run_lmtrain(dir, "train tiny.yaml --set run.steps=5", "LMTRAIN_CPU_ISA=generic");
  INFO(portable.output);
  CHECK(portable.status == 0);
}

// ---- data prepare ----------------------------------------------------------------------------

TEST_CASE("cli data prepare: char tokenizer writes shards, tokenizer and summary", "[cli][data]") {
  TempDir dir;
  const std::string text = sample_text();
  write_file(dir.path() / "input.txt", text);
  const RunResult r = run_lmtrain(dir, "data prepare --input input.txt --tokenizer char --out prepared --quiet");
  INFO(r.output);
  REQUIRE(r.status == 0);
  for (const char* name : {"train_000000.bin", "val_000000.bin", "tokenizer.json", "prepare.json"}) {
    INFO(name);
    CHECK(fs::is_regular_file(dir.path() / "prepared" / name));
    CHECK(fs::file_size(dir.path() / "prepared" / name) > 0);
  }
  CHECK_NOTHROW(json::parse(read_file(dir.path() / "prepared" / "tokenizer.json")));
  std::vector<bool> seen(256, false);
  int distinct = 0;
  for (unsigned char c : text) {
    if (!seen[c]) ++distinct;
    seen[c] = true;
  }
  const auto train_tokens = static_cast<int64_t>(static_cast<double>(text.size()) * 0.9);
  CHECK_THAT(r.output, Contains(lmt::with_commas(train_tokens) + " train tokens"));
  CHECK_THAT(r.output, Contains("vocab " + std::to_string(distinct)));

  // plan takes the vocabulary from the prepared shard.
  write_file(dir.path() / "shards.yaml",
             "run:\n  micro_batch_size: 2\n  seq_len: 32\nmodel:\n  n_layer: 1\n  n_head: 2\n  n_embd: 16\n"
             "  max_seq_len: 32\ndata:\n  train: prepared/train_*.bin\n  val: prepared/val_*.bin\n");
  const RunResult plan = run_lmtrain(dir, "plan shards.yaml");
  INFO(plan.output);
  CHECK(plan.status == 0);
  CHECK_THAT(plan.output, Contains("vocab " + std::to_string(distinct) + " "));
  CHECK_THAT(plan.output, Contains("from the data"));
}

TEST_CASE("cli data prepare: a missing input exits 2 and creates nothing", "[cli][data][errors]") {
  TempDir dir;
  const RunResult r = run_lmtrain(dir, "data prepare --input missing.txt --tokenizer char --out prepared");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("missing.txt"));
  CHECK_FALSE(fs::exists(dir.path() / "prepared"));
}

TEST_CASE("cli data prepare: SIGKILL at any moment never leaves a shard that looks complete but is not",
          "[cli][data][kill]") {
  // ~24 MB of text in 24 shards of 1M byte tokens: the kills land while reading, encoding,
  // writing shards or publishing them.
  std::string text;
  for (int i = 0; text.size() < 24'000'000; ++i) text += fmt::format("line {} of the corpus, {}\n", i, i * 7919 % 10007);
  for (const char* delay : {"0.05", "0.1", "0.15", "0.2", "0.3", "0.4"}) {
    TempDir dir;
    write_file(dir.path() / "big.txt", text);
    const std::string args = "data prepare --input big.txt --tokenizer byte --shard-tokens 1000000 --out out --quiet";
    RunResult killed = run_lmtrain(dir, args, "", std::string("timeout --foreground -s KILL ") + delay);
    INFO("killed after " << delay << " s: " << killed.output);
    // Every shard name in out/ is a whole shard: header present and size = 64 + 2 x tokens.
    if (fs::exists(dir.path() / "out")) {
      for (const auto& entry : fs::directory_iterator(dir.path() / "out")) {
        const std::string name = entry.path().filename().string();
        if (!std::regex_match(name, std::regex(R"((train|val)_\d{6}\.bin)"))) continue;
        const std::string bytes = read_file(entry.path());
        REQUIRE(bytes.size() >= 64);
        CHECK(bytes.substr(0, 8) == "LMTSHARD");
        uint64_t tokens = 0;
        for (int b = 7; b >= 0; --b) tokens = (tokens << 8) | static_cast<unsigned char>(bytes[16 + b]);
        CHECK(bytes.size() == 64 + 2 * tokens);
      }
    }
    // A later run cleans up whatever the killed one left and completes.
    RunResult again = run_lmtrain(dir, args);
    INFO(again.output);
    REQUIRE(again.status == 0);
    CHECK_FALSE(fs::exists(dir.path() / "out" / ".prepare.partial"));
    CHECK(fs::exists(dir.path() / "out" / "prepare.json"));
    CHECK(fs::exists(dir.path() / "out" / "train_000021.bin"));
    CHECK_FALSE(fs::exists(dir.path() / "out" / "train_000022.bin"));
  }
}

// ---- train ------------------------------------------------------------------------------------

TEST_CASE("cli train: a tiny recipe trains and writes recipe, metrics and summary", "[cli][train]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult r = run_lmtrain(dir, "train tiny.yaml");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const fs::path run_dir = dir.path() / "runs" / "tiny";
  // The console ends with the summary line: "done: 30 steps in 0s | final loss ...".
  CHECK_THAT(r.output, Contains("done: 30 steps in "));

  // recipe.yaml is the resolved recipe, exactly what plan --print-config prints.
  REQUIRE(fs::is_regular_file(run_dir / "recipe.yaml"));
  const RunResult printed = run_lmtrain(dir, "plan tiny.yaml --print-config");
  REQUIRE(printed.status == 0);
  CHECK(read_file(run_dir / "recipe.yaml") == printed.output);

  REQUIRE(fs::is_regular_file(run_dir / "metrics.jsonl"));
  const std::vector<json> records = read_jsonl(run_dir / "metrics.jsonl");
  REQUIRE(records.size() >= 3);
  CHECK(records.front().value("event", "") == "start");

  std::vector<int64_t> steps;
  for (const auto& rec : records) {
    if (!is_training_record(rec)) continue;
    INFO(rec.dump());
    for (const char* key : {"step", "loss", "lr", "grad_norm", "ms", "tokens_per_s", "mfu"}) CHECK(rec.contains(key));
    CHECK(std::isfinite(rec.at("loss").get<double>()));
    CHECK(rec.at("lr").get<double>() >= 0);  // the schedule may end exactly at min_lr = 0
    CHECK(rec.at("lr").get<double>() <= 1.0e-2);
    CHECK(rec.at("grad_norm").get<double>() > 0);
    CHECK(rec.at("ms").get<double>() >= 0);
    CHECK(rec.at("tokens_per_s").get<double>() > 0);
    CHECK(rec.at("mfu").is_null());  // log.peak_tflops is 0: MFU unknown
    steps.push_back(rec.at("step").get<int64_t>());
  }
  CHECK(steps == std::vector<int64_t>{1, 10, 20, 30});

  int eval_lines = 0;
  for (const auto& rec : records) {
    if (!rec.contains("val_loss") || rec.contains("event")) continue;
    ++eval_lines;
    CHECK(rec.at("step").get<int64_t>() == 30);
    CHECK(std::isfinite(rec.at("val_loss").get<double>()));
  }
  CHECK(eval_lines == 1);

  const json& last = records.back();
  CHECK(last.value("event", "") == "end");
  CHECK(last.value("steps", -1) == 30);
  CHECK(last.value("interrupted", true) == false);

  const std::vector<double> losses = training_losses(records);
  REQUIRE(losses.size() == 4);
  CHECK(losses.back() < losses.front());

  REQUIRE(fs::is_regular_file(run_dir / "summary.json"));
  const json summary = json::parse(read_file(run_dir / "summary.json"));
  CHECK(summary.at("event") == "end");
  CHECK(summary.at("steps") == 30);
  CHECK(summary.at("loss").get<double>() == losses.back());
  CHECK(summary == last);
}

TEST_CASE("cli train: an existing run needs --overwrite, which reproduces it exactly", "[cli][train]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const fs::path metrics = dir.path() / "runs" / "tiny" / "metrics.jsonl";
  const RunResult first = run_lmtrain(dir, "train tiny.yaml");
  INFO(first.output);
  REQUIRE(first.status == 0);
  const std::string first_metrics = read_file(metrics);
  const std::vector<json> first_records = read_jsonl(metrics);

  const RunResult again = run_lmtrain(dir, "train tiny.yaml");
  INFO(again.output);
  CHECK(again.status == 2);
  CHECK_THAT(again.output, Contains("--overwrite"));
  CHECK(read_file(metrics) == first_metrics);  // the refused run left the old one alone

  const RunResult overwrite = run_lmtrain(dir, "train tiny.yaml --overwrite");
  INFO(overwrite.output);
  REQUIRE(overwrite.status == 0);
  const std::vector<json> second_records = read_jsonl(metrics);
  CHECK(second_records.size() == first_records.size());
  const std::vector<double> first_losses = training_losses(first_records);
  REQUIRE(first_losses.size() == 4);
  CHECK(training_losses(second_records) == first_losses);
  std::vector<double> first_norms, second_norms, first_val, second_val;
  for (const auto& rec : first_records) {
    if (is_training_record(rec)) first_norms.push_back(rec.at("grad_norm").get<double>());
    if (rec.contains("val_loss") && !rec["val_loss"].is_null()) first_val.push_back(rec.at("val_loss").get<double>());
  }
  for (const auto& rec : second_records) {
    if (is_training_record(rec)) second_norms.push_back(rec.at("grad_norm").get<double>());
    if (rec.contains("val_loss") && !rec["val_loss"].is_null()) second_val.push_back(rec.at("val_loss").get<double>());
  }
  CHECK(second_norms == first_norms);
  CHECK_FALSE(first_val.empty());
  CHECK(second_val == first_val);
}

TEST_CASE("cli train: bf16 on the CPU exits 2 before touching the run directory", "[cli][train][errors]") {
  TempDir dir;
  write_file(dir.path() / "bf16.yaml", tiny_recipe(dir, "bf16"));
  const RunResult r = run_lmtrain(dir, "train bf16.yaml");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("precision.dtype"));
  CHECK_THAT(r.output, Contains("bf16.yaml"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "tiny"));
}

TEST_CASE("cli train: --set run.steps=0 exits 2 naming the override", "[cli][train][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=0");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("--set run.steps=0: run.steps: must be at least 1 (got 0)"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "tiny"));
}

TEST_CASE("cli train: WORLD_SIZE above 1 without a launcher or job id is refused with exit 2", "[cli][train][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const RunResult r = run_lmtrain(dir, "train tiny.yaml", "WORLD_SIZE=2 RANK=0");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("WORLD_SIZE=2"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "tiny"));
}

TEST_CASE("cli train: SIGINT, SIGTERM and SIGUSR1 stop after the current step with a checkpoint", "[cli][train][signals]") {
  // Ctrl-C keeps the shell's 130; a scheduler's preemption signals exit 0 so the job can requeue.
  for (auto [signal_name, expected_status] :
       {std::pair{"INT", 130}, std::pair{"TERM", 0}, std::pair{"USR1", 0}}) {
    TempDir dir;
    write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
    // A run far too long to finish; `timeout` delivers the signal once (--foreground: not to
    // the process group as well) after a second and returns lmtrain's own exit status.
    const RunResult r = run_lmtrain(
        dir, "train tiny.yaml --set run.steps=10000000 --set log.every=100000", "",
        std::string("timeout --foreground --preserve-status -s ") + signal_name + " 1");
    INFO(r.output);
    CHECK(r.status == expected_status);
    CHECK_THAT(r.output, Contains("stopped by signal"));
    const json summary = json::parse(read_file(dir.path() / "runs" / "tiny" / "summary.json"));
    CHECK(summary["interrupted"].get<bool>());
    CHECK(summary["steps"].get<int64_t>() > 0);
    CHECK(summary["steps"].get<int64_t>() < 10000000);
    const std::string latest = read_file(dir.path() / "runs" / "tiny" / "checkpoints" / "latest");
    CHECK(latest == fmt::format("step_{:08d}\n", summary["steps"].get<int64_t>()));
  }
}

TEST_CASE("cli: devices, FIFOs and directories as inputs are exit 2 at once, not a hang", "[cli][errors]") {
  TempDir dir;
  REQUIRE(::mkfifo((dir.path() / "fifo").c_str(), 0600) == 0);
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"plan /dev/zero", "recipe '/dev/zero' is not a regular file"},
           {"plan fifo", "recipe 'fifo' is not a regular file"},
           {"plan .", "recipe '.' is a directory"},
           {"data prepare --input fifo --out prepared", "'fifo' is not a regular file"},
           {"data prepare --input /dev/zero --out prepared", "'/dev/zero' is not a regular file"},
           {"data tokenizer train --input fifo --vocab-size 300 --out tok.json", "'fifo' is not a regular file"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args, "", "timeout 20");
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);  // timeout(1) would give 124
    CHECK_THAT(r.output, Contains(c.message));
  }
  CHECK_FALSE(fs::exists(dir.path() / "prepared"));
}

TEST_CASE("cli: messages for a flag below its range, a value used as a section and deep YAML say what is wrong",
          "[cli][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "deep.yaml", "a: " + std::string(5000, '[') + std::string(5000, ']') + "\n");
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"bench tiny.yaml --steps 0", "--steps: must be at least 1 (got 0)"},
           {"plan tiny.yaml --world-size x", "'x' is not an integer"},
           {"plan tiny.yaml --set run.steps.x=5", "'run.steps' is a value, not a section: set it as run.steps=..."},
           {"plan deep.yaml", "invalid YAML: nested too deeply"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args);
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message));
    CHECK(r.output.size() < 400);  // no 309-digit numbers
  }
}
