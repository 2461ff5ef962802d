// Training on token files from llm.c and nanoGPT, written byte by byte as those projects do.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <vector>

#include "tests/cli/cli_util.h"
#include "tests/data/foreign_shard_writers.h"

using namespace lmt::test;
using Catch::Matchers::Contains;

TEST_CASE("train: llm.c and nanoGPT token files train like our own shards", "[cli][formats]") {
  // A learnable stream over 50 ids: a fixed cycle of length 7 with a step of 3.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 20000; ++i) tokens.push_back((i % 7) * 3 + (i / 7) % 2);
  for (const std::string format : {"llmc", "nanogpt"}) {
    TempDir dir;
    const std::string bytes = format == "llmc" ? lmt::data::testing::llmc_bytes(tokens)
                                               : lmt::data::testing::nanogpt_bytes(tokens);
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
