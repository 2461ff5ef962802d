// Training on token files from llm.c and nanoGPT, written byte by byte as those projects do.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <vector>

#include "tests/cli/cli_util.h"
#include "tests/data/foreign_shard_writers.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("train: llm.c and nanoGPT token files train like our own shards", "[cli][formats]") {
  // A learnable stream over 50 ids: a fixed cycle of length 7 with a step of 3.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 20000; ++i) tokens.push_back((i % 7) * 3 + (i / 7) % 2);
  for (const std::string format : {"llmc", "nanogpt"}) {
    TempDir dir;
    const std::string bytes = format == "llmc" ? lmt::testing::llmc_bytes(tokens)
                                               : lmt::testing::nanogpt_bytes(tokens);
    write_file(dir.path() / "train.bin", bytes);
    write_file(dir.path() / "val.bin", bytes);
    write_file(dir.path() / "r.yaml",
               "run: {name: f, out_dir: runs, steps: 40, seq_len: 32, micro_batch_size: 4, device: cpu, threads: 1}\n"
               "model: {n_layer: 1, n_head: 2, n_embd: 32, max_seq_len: 32, vocab_size: 50}\n"
               "data: {source: shards, format: " + format + ", train: train.bin, val: val.bin}\n"
               "optimizer: {lr: 1.0e-2}\n"
               "eval: {batches: 2}\n"
               "log: {every: 1}\n");
    RunResult r = run_lmtrain(dir, "train r.yaml");
    INFO(format << ": " << r.output);
    REQUIRE(r.status == 0);
    std::vector<double> losses;
    for (const auto& rec : read_jsonl(dir.path() / "runs" / "f" / "metrics.jsonl"))
      if (is_training_record(rec)) losses.push_back(rec["loss"].get<double>());
    REQUIRE(losses.size() == 40);
    CHECK(losses.back() < 0.5 * losses.front());
    // Without model.vocab_size the recipe is refused: these files do not record it.
    RunResult no_vocab = run_lmtrain(dir, "train r.yaml --set model.vocab_size=0 --overwrite");
    CHECK(no_vocab.status == 2);
    CHECK_THAT(no_vocab.output, Contains("model.vocab_size"));
  }
}

TEST_CASE("train: a corrupt shard among many stops the run before it starts, naming the file",
          "[cli][formats][errors]") {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 3000; ++i) tokens.push_back(i % 50);
  const std::vector<int32_t> few(tokens.begin(), tokens.begin() + 20);  // < seq_len + 1
  std::vector<int32_t> bad_id = tokens;
  bad_id[2500] = 50;  // = model.vocab_size
  using lmt::testing::llmc_bytes;
  using lmt::testing::nanogpt_bytes;
  struct Case {
    std::string format, bytes, expected;
  };
  const std::string good_llmc = llmc_bytes(tokens);
  const std::vector<Case> cases = {
      {"llmc", llmc_bytes(tokens, 12345), "magic is 12345"},
      {"llmc", llmc_bytes(tokens, 20240520, 2), "version 2"},
      {"llmc", good_llmc.substr(0, good_llmc.size() - 10), "truncated"},
      {"llmc", good_llmc + "zz", "extra bytes"},
      {"llmc", llmc_bytes(bad_id), "index 2500 is 50"},
      {"llmc", llmc_bytes(few), "has 20 tokens but one training sequence needs 33"},
      {"nanogpt", nanogpt_bytes(tokens) + "x", "odd size"},
      {"nanogpt", nanogpt_bytes(bad_id), "index 2500 is 50"},
      {"nanogpt", good_llmc, "data.format: llmc"},
      {"lmtrain", "LMTSHARD\x02", "shorter than its 64-byte header"},
      {"lmtrain", "just some text", "not an lmtrain token shard"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    const std::string good = c.format == "nanogpt" ? nanogpt_bytes(tokens) : llmc_bytes(tokens);
    std::filesystem::create_directories(dir.path() / "shards");
    if (c.format != "lmtrain") {
      write_file(dir.path() / "shards" / "train_000.bin", good);
      write_file(dir.path() / "shards" / "train_002.bin", good);
    }
    write_file(dir.path() / "shards" / "train_001.bin", c.bytes);
    write_file(dir.path() / "r.yaml",
               "run: {name: f, out_dir: runs, steps: 2, seq_len: 32, micro_batch_size: 2, device: cpu, threads: 1}\n"
               "model: {n_layer: 1, n_head: 2, n_embd: 16, max_seq_len: 32, vocab_size: 50}\n"
               "data: {source: shards, format: " + c.format + ", train: 'shards/train_*.bin'}\n");
    RunResult r = run_lmtrain(dir, "train r.yaml");
    INFO(c.format << " / " << c.expected << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("data.train") && Contains("train_001.bin") && Contains(c.expected));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "runs"));
  }
}

TEST_CASE("train: shards named by a glob train as one dataset", "[cli][formats]") {
  TempDir dir;
  std::vector<int32_t> tokens;
  for (int i = 0; i < 20000; ++i) tokens.push_back((i % 7) * 3 + (i / 7) % 2);
  std::filesystem::create_directories(dir.path() / "shards");
  for (int s = 0; s < 4; ++s) {
    const std::vector<int32_t> part(tokens.begin() + s * 5000, tokens.begin() + (s + 1) * 5000);
    write_file(dir.path() / "shards" / fmt::format("train_{:03d}.bin", s), lmt::testing::llmc_bytes(part));
  }
  write_file(dir.path() / "shards" / "val_000.bin", lmt::testing::llmc_bytes(tokens));
  write_file(dir.path() / "r.yaml",
             "run: {name: g, out_dir: runs, steps: 40, seq_len: 32, micro_batch_size: 4, device: cpu, threads: 1}\n"
             "model: {n_layer: 1, n_head: 2, n_embd: 32, max_seq_len: 32, vocab_size: 50}\n"
             "data: {source: shards, format: llmc, train: 'shards/train_*.bin', val: 'shards/val_*.bin'}\n"
             "optimizer: {lr: 1.0e-2}\n"
             "eval: {batches: 2}\n"
             "log: {every: 1}\n");
  RunResult r = run_lmtrain(dir, "train r.yaml");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("data.train (4 files, 20,000 tokens)"));
  std::vector<double> losses;
  for (const auto& rec : read_jsonl(dir.path() / "runs" / "g" / "metrics.jsonl"))
    if (is_training_record(rec)) losses.push_back(rec["loss"].get<double>());
  REQUIRE(losses.size() == 40);
  CHECK(losses.back() < 0.5 * losses.front());
}

TEST_CASE("train: a shard truncated while training ends the run with exit 2 naming it, not a bus error",
          "[cli][formats][errors]") {
  TempDir dir;
  prepare_char_data(dir, 400);
  write_file(dir.path() / "char.yaml",
             "run: {name: char, out_dir: runs, steps: 1000000, seq_len: 32, micro_batch_size: 4, device: cpu, threads: 1}\n"
             "model: {n_layer: 1, n_head: 2, n_embd: 32, max_seq_len: 32}\n"
             "log: {every: 1}\n"
             "data: {source: shards, train: prepared/train_*.bin}\n");
  // Train in the background; once steps are logged, cut the training shard to nothing.
  const RunResult r = run_shell(
      dir, "{ " + quoted(lmtrain_binary()) + " train char.yaml > train.log 2>&1 & pid=$!; "
           "for i in $(seq 300); do grep -q '\"loss\"' runs/char/metrics.jsonl 2>/dev/null && break; sleep 0.1; done; "
           "for f in prepared/train_*.bin; do truncate -s 0 \"$f\"; done; "
           "( sleep 60; kill -9 $pid 2>/dev/null ) & killer=$!; wait $pid; rc=$?; kill $killer 2>/dev/null; "
           "echo \"rc=$rc\"; cat train.log; }");
  INFO(r.output);
  CHECK_THAT(r.output, Contains("rc=2"));
  CHECK_THAT(r.output, Contains("prepared/train_") && Contains("became shorter while it was being read"));
}
