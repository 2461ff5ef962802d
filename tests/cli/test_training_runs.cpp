// End-to-end training runs through the real binary: the quickstart must approach its entropy
// floor, and shakespeare-char must learn real text (skipped when the data set is absent).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// The first training record's loss from metrics.jsonl.
double first_training_loss(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto rec = nlohmann::json::parse(line);
    if (rec.contains("loss") && rec.contains("lr")) return rec["loss"].get<double>();
  }
  FAIL("no training record in " << metrics);
  return 0;
}

}  // namespace

TEST_CASE("e2e: the quickstart recipe trains to near its entropy floor", "[e2e]") {
  TempDir dir;
  RunResult out = run_lmtrain(
      dir, "train " + quoted((source_dir() / "recipes" / "quickstart.yaml").string()) +
               " --set run.out_dir=runs");
  INFO(out.output);
  REQUIRE(out.status == 0);
  fs::path run_dir = dir.path() / "runs" / "quickstart";
  auto summary = read_json(run_dir / "summary.json");
  const double floor = summary["loss_floor"].get<double>();
  const double val = summary["val_loss"].get<double>();
  const double first = first_training_loss(run_dir / "metrics.jsonl");
  // Uniform guessing over 24 tokens costs ln 24 = 3.18; the floor is ~0.83 nats.
  CHECK(first > 2.5);
  CHECK(val < floor + 0.1);
  CHECK(val >= floor - 0.02);  // nothing beats the floor by more than sampling noise
}

namespace {

// The corpus beside the checkout (../shared/data) or at $LMTRAIN_TINYSHAKESPEARE; empty, with a
// visible SKIPPED line, when it is not there.
fs::path tinyshakespeare() {
  const char* env = std::getenv("LMTRAIN_TINYSHAKESPEARE");
  fs::path text = env ? fs::path(env) : source_dir() / ".." / "shared" / "data" / "tinyshakespeare.txt";
  if (fs::exists(text)) return text;
  WARN("SKIPPED: " << text.string() << " not found (set LMTRAIN_TINYSHAKESPEARE to the file to run this test)");
  return {};
}

}  // namespace

namespace {

// Prepares tinyshakespeare as characters in dir and trains recipes/shakespeare-char.yaml with
// the given --set options; returns the run's summary.json.
nlohmann::json train_shakespeare_char(TempDir& dir, const fs::path& text, const std::string& sets) {
  RunResult prep = run_lmtrain(dir, "data prepare --input " + quoted(text.string()) +
                                        " --tokenizer char --out data/shakespeare_char --quiet");
  INFO(prep.output);
  REQUIRE(prep.status == 0);
  RunResult out = run_lmtrain(
      dir, "train " + quoted((source_dir() / "recipes" / "shakespeare-char.yaml").string()) +
               " --set run.out_dir=runs " + sets);
  INFO(out.output);
  REQUIRE(out.status == 0);
  return read_json(dir.path() / "runs" / "shakespeare-char" / "summary.json");
}

}  // namespace

TEST_CASE("e2e: shakespeare-char learns tinyshakespeare", "[e2e]") {
  const fs::path text = tinyshakespeare();
  if (text.empty()) return;
  TempDir dir;
  // 300 of the recipe's 2000 steps (the full run is the next test).
  auto summary = train_shakespeare_char(dir, text, "--set run.steps=300 --set eval.batches=50");
  // ln 65 = 4.17 at the start; character frequencies alone give ~3.3; 300 steps reach 2.35.
  CHECK(summary["val_loss"].get<double>() < 2.6);
}

TEST_CASE("e2e: the shakespeare-char recipe's 2000 steps reach val loss <= 1.88", "[e2e]") {
  // The recipe as shipped (only the evaluation cadence changed: one evaluation at the end, on
  // the recipe's 200 batches). It ends at 1.765 on an AVX-512 machine; nanoGPT quotes 1.88.
  const fs::path text = tinyshakespeare();
  if (text.empty()) return;
  TempDir dir;
  auto summary = train_shakespeare_char(dir, text, "--set eval.every=2000 --set log.every=500");
  CHECK(summary["steps"].get<int>() == 2000);
  CHECK(summary["val_loss"].get<double>() <= 1.88);
}

TEST_CASE("e2e: BPE tokenizer (vocab 512) on tinyshakespeare: train it, prepare, and train a model", "[e2e][bpe]") {
  const fs::path text = tinyshakespeare();
  if (text.empty()) return;
  TempDir dir;
  RunResult tok = run_lmtrain(dir, "data tokenizer train --input " + quoted(text.string()) +
                                       " --vocab-size 512 --out tok512.json --quiet");
  INFO(tok.output);
  REQUIRE(tok.status == 0);
  RunResult prep = run_lmtrain(dir, "data prepare --input " + quoted(text.string()) +
                                        " --tokenizer tok512.json --out data/shakespeare_bpe --quiet");
  INFO(prep.output);
  REQUIRE(prep.status == 0);
  CHECK_THAT(prep.output, Contains("vocab 512") && Contains("preceded by <|endoftext|>"));
  // 150 of the recipe's 2000 steps: ln 512 = 6.24 at the start, ~4.3 after 150 steps.
  RunResult out = run_lmtrain(
      dir, "train " + quoted((source_dir() / "recipes" / "shakespeare-bpe.yaml").string()) +
               " --set run.out_dir=runs --set run.steps=150 --set eval.batches=20");
  INFO(out.output);
  REQUIRE(out.status == 0);
  CHECK_THAT(out.output, Contains("vocab 512"));
  auto summary = read_json(dir.path() / "runs" / "shakespeare-bpe" / "summary.json");
  CHECK(summary["val_loss"].get<double>() < 5.0);
}
