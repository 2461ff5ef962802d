// lmtrain export, hf:DIR sources, eval --task hellaswag and model.init_from at the command line:
// a char run exports and reads back with the same greedy text, and every bad input is exit 2
// naming the flag, file or key, with no output directory left behind.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("export: a char run exported and read back as hf:DIR generates the same text and scores the same",
          "[cli][export]") {
  TempDir dir;
  train_char_model(dir);
  const RunResult exported = run_lmtrain(dir, "export --checkpoint runs/char/checkpoints --out hf");
  INFO(exported.output);
  REQUIRE(exported.status == 0);
  CHECK_THAT(exported.output, Contains("config.json, model.safetensors, lmtrain_tokenizer.json") &&
                                  Contains("the run's tokenizer is char, not byte-level BPE"));
  const std::string args = " --prompt 'ROMEO:' --max-new-tokens 40 --temperature 0";
  const RunResult a = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints" + args);
  const RunResult b = run_lmtrain(dir, "generate --checkpoint hf:hf" + args);
  REQUIRE(a.status == 0);
  REQUIRE(b.status == 0);
  CHECK(a.output == b.output);
  // eval takes hf:DIR too, with the shards given.
  const RunResult la = run_lmtrain(dir, "eval --checkpoint runs/char/checkpoints --data 'prepared/val_*.bin' --seq-len 32 --batches 2 --json");
  const RunResult lb = run_lmtrain(dir, "eval --checkpoint hf:hf --data 'prepared/val_*.bin' --seq-len 32 --batches 2 --json");
  REQUIRE(la.status == 0);
  REQUIRE(lb.status == 0);
  const auto loss_of = [](const RunResult& r) { return nlohmann::json::parse(r.output)["sets"][0]["loss"].get<double>(); };
  CHECK(loss_of(la) == loss_of(lb));
  write_file(dir.path() / "hs.jsonl",
             "{\"ctx\": \"ROMEO: line\", \"endings\": [\"1 of the play.\", \"JULIET\", \"an answer.\"], \"label\": 0}\n"
             "{\"ctx\": \"JULIET: an\", \"endings\": [\"of the\", \"answer.\"], \"label\": 1}\n");
  const RunResult ha = run_lmtrain(dir, "eval --checkpoint runs/char/checkpoints --task hellaswag --data hs.jsonl --json");
  const RunResult hb = run_lmtrain(dir, "eval --checkpoint hf:hf --task hellaswag --data hs.jsonl --json");
  INFO(ha.output << hb.output);
  REQUIRE(ha.status == 0);
  REQUIRE(hb.status == 0);
  const auto scores = [](const RunResult& r) { return nlohmann::json::parse(r.output)["scores"]; };
  CHECK(scores(ha) == scores(hb));
  CHECK(nlohmann::json::parse(ha.output)["examples"] == 2);
}

TEST_CASE("export, hf:DIR, hellaswag and init_from: bad input is exit 2 naming the flag, file or key",
          "[cli][export]") {
  TempDir dir;
  train_char_model(dir);
  struct Case {
    std::string args, message;
  };
  fs::create_directories(dir.path() / "taken");
  write_file(dir.path() / "hs.jsonl", "{\"ctx\": \"ROMEO\", \"endings\": [\"a\"], \"label\": 0}\n");
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  for (const Case& c : std::vector<Case>{
           {"export --checkpoint runs/char/checkpoints --out taken", "--out 'taken' already exists"},
           {"export --checkpoint nowhere --out fresh", "nowhere"},
           {"export --checkpoint runs/char/checkpoints --format onnx --out fresh", "--format"},
           {"generate --checkpoint hf:nowhere --prompt-ids 1", "'nowhere' does not exist"},
           {"generate --checkpoint hf:runs/char/checkpoints --prompt-ids 1", "has no config.json"},
           {"eval --checkpoint hf:nowhere --data x.bin", "'nowhere' does not exist"},
           {"eval --checkpoint runs/char/checkpoints --task hellaswag --data hs.jsonl", "hs.jsonl:1: \"endings\""},
           {"eval --checkpoint runs/char/checkpoints --task hellaswag", "one --data FILE.jsonl"},
           {"eval --checkpoint runs/char/checkpoints --task trivia --data hs.jsonl", "--task"},
           {"eval --checkpoint runs/char/checkpoints --limit 3", "--task hellaswag only"},
           {"train tiny.yaml --set model.init_from=nowhere", "model.init_from nowhere"},
           {"train tiny.yaml --set model.init_from=runs/char/checkpoints", "vocab_size is 8 for this run"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args);
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message));
  }
  CHECK_FALSE(fs::exists(dir.path() / "fresh"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "tiny"));
  // A Hugging Face model has no validation set of its own.
  REQUIRE(run_lmtrain(dir, "export --checkpoint runs/char/checkpoints --out hf").status == 0);
  const RunResult no_data = run_lmtrain(dir, "eval --checkpoint hf:hf");
  CHECK(no_data.status == 2);
  CHECK_THAT(no_data.output, Contains("pass --data SHARD"));
}
