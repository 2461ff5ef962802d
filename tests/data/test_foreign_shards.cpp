#include <catch2/catch.hpp>

#include "data/token_file.h"
#include "tests/data/foreign_shard_writers.h"
#include "tests/test_util.h"

using namespace lmt::data;
using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("llm.c and nanoGPT token files read back exactly", "[data][formats]") {
  TempDir dir;
  std::vector<int32_t> tokens = {0, 1, 50256, 300, 65535 % 50257, 42};
  write_file(dir.file("a.bin"), llmc_bytes(tokens));
  write_file(dir.file("b.bin"), nanogpt_bytes(tokens));
  const TokenFile llmc = TokenFile::open(dir.file("a.bin"), lmt::ShardFormat::kLlmc, 50257);
  const TokenFile nano = TokenFile::open(dir.file("b.bin"), lmt::ShardFormat::kNanogpt, 50257);
  CHECK(llmc.read_all() == tokens);
  CHECK(nano.read_all() == tokens);
  CHECK(llmc.vocab_size() == 50257);
  CHECK(llmc.size() == tokens.size());
  std::vector<int32_t> middle(3);
  nano.read(2, 3, middle.data());
  CHECK(middle == std::vector<int32_t>{50256, 300, 65535 % 50257});
}

TEST_CASE("bad llm.c and nanoGPT files name the file and the problem", "[data][formats][errors]") {
  TempDir dir;
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  auto message = [&](const std::string& bytes, lmt::ShardFormat format, int64_t vocab = 10) {
    write_file(dir.file("x.bin"), bytes);
    return error_message([&] { TokenFile::open(dir.file("x.bin"), format, vocab); });
  };
  const std::string good = llmc_bytes(tokens);
  CHECK_THAT(message(llmc_bytes(tokens, 12345), lmt::ShardFormat::kLlmc), Contains("x.bin") && Contains("magic is 12345"));
  CHECK_THAT(message(llmc_bytes(tokens, 20240520, 2), lmt::ShardFormat::kLlmc), Contains("version 2"));
  CHECK_THAT(message(good.substr(0, good.size() - 2), lmt::ShardFormat::kLlmc), Contains("truncated"));
  CHECK_THAT(message(good.substr(0, 100), lmt::ShardFormat::kLlmc), Contains("shorter than its 1024-byte header"));
  CHECK_THAT(message(llmc_bytes({1, 2, 11}), lmt::ShardFormat::kLlmc), Contains("index 2 is 11") && Contains("model.vocab_size"));
  CHECK_THAT(message(nanogpt_bytes(tokens) + "x", lmt::ShardFormat::kNanogpt), Contains("odd size"));
  CHECK_THAT(message(good, lmt::ShardFormat::kNanogpt), Contains("data.format: llmc"));
  CHECK_THAT(message(nanogpt_bytes(tokens), lmt::ShardFormat::kNanogpt, 0), Contains("set model.vocab_size"));
  CHECK_THAT(message(good + "zz", lmt::ShardFormat::kLlmc), Contains("extra bytes"));
  CHECK_THAT(message("LMTSHARD" + std::string(8, '\0'), lmt::ShardFormat::kNanogpt), Contains("data.format: lmtrain"));
  // A format outside the three cannot reach TokenFile: the recipe refuses it.
  CHECK_THAT(error_message([&] { lmt::parse_recipe_text("data:\n  format: parquet\n", "r.yaml"); }),
             Contains("r.yaml:2:11: data.format: 'parquet' is not one of: lmtrain, llmc, nanogpt"));
  CHECK_THAT(error_message([&] { TokenFile::open(dir.file("missing.bin"), lmt::ShardFormat::kLlmc, 10); }),
             Contains("missing.bin") && Contains("does not exist"));
}
