#include <catch2/catch.hpp>

#include "data/token_file.h"
#include "tests/data/foreign_shard_writers.h"
#include "tests/data/test_helpers.h"

using namespace lmt::data;
using namespace lmt::data::testing;
using Catch::Matchers::Contains;

TEST_CASE("llm.c and nanoGPT token files read back exactly", "[data][formats]") {
  TempDir dir;
  std::vector<int32_t> tokens = {0, 1, 50256, 300, 65535 % 50257, 42};
  write_text_file(dir.file("a.bin"), llmc_bytes(tokens));
  write_text_file(dir.file("b.bin"), nanogpt_bytes(tokens));
  const TokenFile llmc = TokenFile::open(dir.file("a.bin"), "llmc", 50257);
  const TokenFile nano = TokenFile::open(dir.file("b.bin"), "nanogpt", 50257);
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
  auto message = [&](const std::string& bytes, const std::string& format, int64_t vocab = 10) {
    write_text_file(dir.file("x.bin"), bytes);
    return error_message([&] { TokenFile::open(dir.file("x.bin"), format, vocab); });
  };
  const std::string good = llmc_bytes(tokens);
  CHECK_THAT(message(llmc_bytes(tokens, 12345), "llmc"), Contains("x.bin") && Contains("magic is 12345"));
  CHECK_THAT(message(llmc_bytes(tokens, 20240520, 2), "llmc"), Contains("version 2"));
  CHECK_THAT(message(good.substr(0, good.size() - 2), "llmc"), Contains("truncated"));
  CHECK_THAT(message(good.substr(0, 100), "llmc"), Contains("shorter than its 1024-byte header"));
  CHECK_THAT(message(llmc_bytes({1, 2, 11}), "llmc"), Contains("index 2 is 11") && Contains("model.vocab_size"));
  CHECK_THAT(message(nanogpt_bytes(tokens) + "x", "nanogpt"), Contains("odd size"));
  CHECK_THAT(message(good, "nanogpt"), Contains("data.format: llmc"));
  CHECK_THAT(message(nanogpt_bytes(tokens), "nanogpt", 0), Contains("set model.vocab_size"));
  CHECK_THAT(message(good + "zz", "llmc"), Contains("extra bytes"));
  CHECK_THAT(message("LMTSHARD" + std::string(8, '\0'), "nanogpt"), Contains("data.format: lmtrain"));
  CHECK_THAT(message(nanogpt_bytes(tokens), "parquet"), Contains("unknown token file format 'parquet'"));
  CHECK_THAT(error_message([&] { TokenFile::open(dir.file("missing.bin"), "llmc", 10); }),
             Contains("missing.bin") && Contains("does not exist"));
}
