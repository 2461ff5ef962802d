// Red-team defects of issue 16 through the CLI: each bad input is refused with exit 2 and a
// message naming what to fix, and nothing is written (or replaced) on the way.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <tuple>
#include <vector>

#include "core/checksum.h"
#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

fs::path checkpoints(const TempDir& dir) { return dir.path() / "runs" / "tiny" / "checkpoints"; }

// Rewrites a file of a checkpoint and fixes its manifest entry, as a hostile user would.
void rewrite_checkpoint_file(const fs::path& step_dir, const std::string& name, const std::string& bytes) {
  write_file(step_dir / name, bytes);
  nlohmann::json manifest = nlohmann::json::parse(read_file(step_dir / "manifest.json"));
  manifest["files"][name] = {{"bytes", bytes.size()}, {"crc32c", lmt::crc32c_file((step_dir / name).string())}};
  write_file(step_dir / "manifest.json", manifest.dump(2));
}

}  // namespace

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

TEST_CASE("hostile: every field of trainer_state.json and the manifest is type- and range-checked",
          "[cli][hostile][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=10").status == 0);
  const fs::path step = checkpoints(dir) / "step_00000010";
  const std::string original_state = read_file(step / "trainer_state.json");
  const std::string original_manifest = read_file(step / "manifest.json");
  const std::string metrics = read_file(dir.path() / "runs" / "tiny" / "metrics.jsonl");
  struct Case {
    const char* pointer;  // JSON pointer into trainer_state.json
    nlohmann::json value;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"/data/epoch", -1, "data.epoch must be an integer from 0 to"},
      {"/step", -5, "step must be an integer from 0 to"},
      {"/step", int64_t{1000000000000000000}, "step must be an integer from 0 to"},
      {"/optimizer/step", -100, "optimizer.step must be an integer from 0 to 10"},
      {"/optimizer/step", 11, "optimizer.step must be an integer from 0 to 10"},
      {"/tokens_seen", int64_t{1000000000000000000}, "tokens_seen must be an integer from 0 to"},
      {"/data/tokens", int64_t{1000000000000000000}, "data.tokens must be an integer from 1 to"},
      {"/data/shard", 1, "data.shard must be an integer from 0 to 0"},
      {"/world_size", 0, "world_size must be an integer from 1"},
      {"/data/epoch", "three", "data.epoch must be an integer"},
      {"/step", 2.5, "step must be an integer"},
      {"/model/n_embd", "32", "model.n_embd must be an integer"},
      {"/data", nullptr, "data.sampler is missing"},
      {"/loss_scaler", nlohmann::json::object({{"scale", 2.0}}), "loss_scaler.hysteresis_left is missing"},
      {"/seed", nlohmann::json::array(), "seed must be an integer"},
  };
  for (const Case& c : cases) {
    nlohmann::json state = nlohmann::json::parse(original_state);
    state[nlohmann::json::json_pointer(c.pointer)] = c.value;
    rewrite_checkpoint_file(step, "trainer_state.json", state.dump(2));
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
    INFO(c.pointer << " = " << c.value.dump() << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("trainer_state.json") && Contains(c.expect));
    CHECK_FALSE(Catch::Matchers::Contains("json.exception").match(r.output));
  }
  {  // the manifest
    write_file(step / "trainer_state.json", original_state);
    for (const auto& [pointer, value, expect] :
         std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
             {"/format_version", "1", "format_version must be an integer"},
             {"/files/model.safetensors/bytes", "many", "files.model.safetensors.bytes must be an integer"},
             {"/files/model.safetensors/crc32c", 5, "files.model.safetensors.crc32c must be a string"},
             {"/files", 3, "files must be an object"}}) {
      nlohmann::json manifest = nlohmann::json::parse(original_manifest);
      manifest[nlohmann::json::json_pointer(pointer)] = value;
      write_file(step / "manifest.json", manifest.dump(2));
      RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
      INFO(pointer << ": " << r.output);
      CHECK(r.status == 2);
      CHECK_THAT(r.output, Contains("manifest.json") && Contains(expect));
    }
    write_file(step / "manifest.json", "[1, 2");
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("manifest.json") && Contains("not valid JSON"));
  }
  // Nothing was appended to the run's metrics by any refusal.
  CHECK(read_file(dir.path() / "runs" / "tiny" / "metrics.jsonl") == metrics);
}

TEST_CASE("hostile: latest may only name a step directory beside it", "[cli][hostile][checkpoint]") {
  TempDir dir, other;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(other.path() / "tiny.yaml", tiny_recipe(other));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=4").status == 0);
  REQUIRE(run_lmtrain(other, "train tiny.yaml --set run.steps=6").status == 0);
  const fs::path victim = checkpoints(other) / "step_00000006";
  const std::string victim_model = read_file(victim / "model.safetensors");
  const std::vector<std::string> targets = {
      victim.string(), "../../../" + other.path().filename().string() + "/runs/tiny/checkpoints/step_00000006",
      "step_00000004/..", "step_x", ""};
  for (const std::string& target : targets) {
    write_file(checkpoints(dir) / "latest", target + "\n");
    RunResult r = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume latest");
    INFO(target << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("not a step_NNNNNNNN directory name"));
  }
  CHECK(read_file(victim / "model.safetensors") == victim_model);
  CHECK(read_file(checkpoints(other) / "latest") == "step_00000006\n");
}

TEST_CASE("hostile: a missing latest names the newest checkpoint instead of going round in circles",
          "[cli][hostile][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=4").status == 0);
  fs::remove(checkpoints(dir) / "latest");
  const std::string newest = (checkpoints(dir) / "step_00000004").string();
  RunResult automatic = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume auto");
  INFO(automatic.output);
  CHECK(automatic.status == 2);
  CHECK_THAT(automatic.output, Contains("no 'latest'") && Contains("--resume " + newest));
  CHECK_FALSE(Catch::Matchers::Contains("resume it with --resume auto").match(automatic.output));
  RunResult latest = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume latest");
  INFO(latest.output);
  CHECK(latest.status == 2);
  CHECK_THAT(latest.output, Contains("does not exist") && Contains("--resume " + newest));
  // The advice works.
  RunResult resumed = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume " + newest);
  INFO(resumed.output);
  CHECK(resumed.status == 0);
}

TEST_CASE("hostile: --resume auto on a finished run leaves it as it was", "[cli][hostile][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=5").status == 0);
  const fs::path run = dir.path() / "runs" / "tiny";
  const std::string summary = read_file(run / "summary.json");
  const std::string metrics = read_file(run / "metrics.jsonl");
  REQUIRE(nlohmann::json::parse(summary)["loss"].get<double>() > 0.0);
  for (const char* steps : {"5", "3"}) {
    RunResult r = run_lmtrain(dir, std::string("train tiny.yaml --resume auto --set run.steps=") + steps);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains("is already complete") && Contains("at step 5"));
    CHECK(read_file(run / "summary.json") == summary);
    CHECK(read_file(run / "metrics.jsonl") == metrics);
  }
}

TEST_CASE("hostile: a checkpoint save past ulimit -f is an error naming the file, with nothing left behind",
          "[cli][hostile][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=10").status == 0);
  // No trap: SIGXFSZ's default action would kill the process (exit 153) mid-save.
  RunResult full = run_lmtrain(dir, "train tiny.yaml --set run.steps=20 --resume auto", "",
                               "bash -c 'ulimit -f 40; exec \"$@\"' limited");
  INFO(full.output);
  CHECK(full.status == 2);
  CHECK_THAT(full.output, Contains("step_00000020") && Contains(".safetensors"));
  CHECK(read_file(checkpoints(dir) / "latest") == "step_00000010\n");
  for (const auto& entry : fs::directory_iterator(checkpoints(dir)))
    CHECK(entry.path().filename().string().find("step_00000020") == std::string::npos);
}

TEST_CASE("hostile: thread, worker and grace counts have bounds", "[cli][hostile][launch]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult threads = run_lmtrain(dir, "train tiny.yaml --set run.threads=100000");
  INFO(threads.output);
  CHECK(threads.status == 2);
  CHECK_THAT(threads.output, Contains("run.threads: must be at most 1024 (got 100000)"));
  RunResult nproc = run_lmtrain(dir, "launch --nproc-per-node 100000 -- train tiny.yaml");
  INFO(nproc.output);
  CHECK(nproc.status == 2);
  CHECK_THAT(nproc.output, Contains("--nproc-per-node 100000 must be at least 1 and at most 1024"));
  for (const char* slots : {"100000", "2000000000"}) {
    write_file(dir.path() / "hosts", fmt::format("127.0.0.1 slots={}\n", slots));
    RunResult r = run_lmtrain(dir, "launch --hostfile hosts -- train tiny.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("hosts:1") && Contains("it must be at least 1 and at most 1024"));
  }
  for (const char* grace : {"nan", "-1", "1e308", "inf", "ten"}) {
    RunResult r = run_lmtrain(dir, std::string("launch --grace ") + grace + " -- train tiny.yaml");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("--grace must be"));
  }
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
}

TEST_CASE("hostile: outputs that cannot be created, directories given as files and symlink loops are exit 2",
          "[cli][hostile]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "afile", "not a directory\n");
  write_file(dir.path() / "text.txt", std::string(2000, 'a') + "\n");
  fs::create_directory(dir.path() / "hostdir");
  struct Case {
    std::string args, message;
  };
  // Root may write into a read-only directory, but nobody may create directories in /proc.
  for (const Case& c : std::vector<Case>{
           {"launch --hostfile hostdir -- train tiny.yaml", "--hostfile 'hostdir' is a directory"},
           {"launch --log-dir afile/logs -- train tiny.yaml",
            "--log-dir 'afile/logs' cannot be created: 'afile' exists and is not a directory"},
           {"launch --log-dir /proc/lmtrain-logs -- train tiny.yaml", "--log-dir '/proc/lmtrain-logs' cannot be created"},
           {"train tiny.yaml --set run.out_dir=afile/runs",
            "run directory 'afile/runs/tiny' cannot be created: 'afile' exists and is not a directory"},
           {"train tiny.yaml --set run.out_dir=/proc/lmtrain-runs", "run directory '/proc/lmtrain-runs/tiny' cannot be created"},
           {"train tiny.yaml --set checkpoint.dir=afile/ck",
            "checkpoint directory 'afile/ck' cannot be created: 'afile' exists and is not a directory"},
           {"data prepare --input text.txt --tokenizer char --out afile/prepared",
            "output directory 'afile/prepared' cannot be created: 'afile' exists and is not a directory"},
           {"data prepare --input text.txt --tokenizer char --out /proc", "'/proc/.prepare.partial' cannot be created"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args, "", "timeout 60");
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message));
  }
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
  CHECK(read_file(dir.path() / "afile") == "not a directory\n");

  // A .lmtrain_env that is a directory is named, not read as one.
  fs::create_directory(dir.path() / ".lmtrain_env");
  const RunResult env = run_lmtrain(dir, "launch -- train tiny.yaml", "", "timeout 60");
  INFO(env.output);
  CHECK(env.status == 2);
  CHECK_THAT(env.output, Contains("environment file '.lmtrain_env' is a directory"));
  fs::remove(dir.path() / ".lmtrain_env");

  // Symlink loops where a checkpoint, its pointer or a file of it is expected.
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=4").status == 0);
  const fs::path ck = checkpoints(dir);
  fs::create_symlink("loop_b", ck / "loop_a");
  fs::create_symlink("loop_a", ck / "loop_b");
  const std::string loop = (ck / "loop_a").string();
  for (const Case& c : std::vector<Case>{
           {"train tiny.yaml --set run.steps=8 --resume " + loop, "loop_a/manifest.json' cannot be reached"},
           {"eval --checkpoint " + loop, "loop_a/manifest.json' cannot be reached"},
           {"generate --checkpoint " + loop + " --prompt-ids 1 --max-new-tokens 2", "loop_a/manifest.json' cannot be reached"},
           {"export --checkpoint " + (ck / "step_00000004").string() + " --format hf --out " + loop,
            "--out '" + loop + "' cannot be reached"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args, "", "timeout 60");
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message) && Contains("symbolic links"));
  }
  fs::remove(ck / "latest");
  fs::create_symlink("loop_a", ck / "latest");
  const RunResult latest = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume auto");
  INFO(latest.output);
  CHECK(latest.status == 2);
  CHECK_THAT(latest.output, Contains("checkpoint pointer '" + (ck / "latest").string() + "' cannot be reached"));
  fs::remove(ck / "latest");
  write_file(ck / "latest", "step_00000004\n");
  const fs::path step = ck / "step_00000004";
  fs::rename(step / "optimizer.safetensors", step / "optimizer.real");
  fs::create_symlink("loop_o", step / "optimizer.safetensors");
  fs::create_symlink("optimizer.safetensors", step / "loop_o");
  const RunResult file = run_lmtrain(dir, "train tiny.yaml --set run.steps=8 --resume auto");
  INFO(file.output);
  CHECK(file.status == 2);
  CHECK_THAT(file.output, Contains("optimizer.safetensors' cannot be reached"));
}
