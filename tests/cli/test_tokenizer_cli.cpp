// `lmtrain data tokenizer train|encode|decode` end to end.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

std::string corpus() {
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += "To be, or not to be, that is the question " + std::to_string(i % 17) + ":\n";
    text += "Whether 'tis nobler in the mind to suffer\n\n";
  }
  return text;
}

}  // namespace

TEST_CASE("cli data tokenizer: train, encode and decode round trip", "[cli][data][tokenizer]") {
  TempDir dir;
  const std::string text = corpus();
  write_file(dir.path() / "input.txt", text);
  const RunResult train = run_lmtrain(dir, "data tokenizer train --input input.txt input.txt --vocab-size 300 "
                                           "--out tok.json --threads 2 --quiet");
  INFO(train.output);
  REQUIRE(train.status == 0);
  CHECK_THAT(train.output, Contains("vocab 300 (") && Contains("merges, 1 special token)") && Contains("wrote tok.json"));
  const nlohmann::json json = nlohmann::json::parse(read_file(dir.path() / "tok.json"));
  CHECK(json["kind"] == "bpe");
  CHECK(json["vocab_size"] == 300);
  CHECK(json["special_tokens"]["<|endoftext|>"] == 299);

  const RunResult encode = run_lmtrain(dir, "data tokenizer encode --tokenizer tok.json --quiet input.txt > ids.txt");
  INFO(encode.output);
  REQUIRE(encode.status == 0);
  const RunResult decode = run_lmtrain(dir, "data tokenizer decode --tokenizer tok.json ids.txt > decoded.txt");
  INFO(decode.output);
  REQUIRE(decode.status == 0);
  CHECK(read_file(dir.path() / "decoded.txt") == text);
  const RunResult stdin_encode = run_lmtrain(dir, "data tokenizer encode --tokenizer tok.json - < input.txt");
  CHECK_THAT(stdin_encode.output, Contains(read_file(dir.path() / "ids.txt")) && Contains("tokens/byte"));
}

TEST_CASE("cli data tokenizer: bad flags and inputs exit 2 with a clear message", "[cli][data][tokenizer][errors]") {
  TempDir dir;
  write_file(dir.path() / "input.txt", corpus());
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    const RunResult r = run_lmtrain(dir, args);
    INFO(args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(message));
  };
  expect_error("data tokenizer train --input input.txt --vocab-size 100 --out tok.json", "vocab size 100 is too small");
  expect_error("data tokenizer train --input missing.txt --vocab-size 300 --out tok.json", "missing.txt' does not exist");
  expect_error("data tokenizer train --input input.txt --vocab-size 300 --out nowhere/tok.json", "does not exist");
  expect_error("data tokenizer train --input input.txt --vocab-size 300 --out tok.json --threads -1", "negative");
  expect_error("data tokenizer train --input input.txt --out tok.json", "--vocab-size");
  CHECK_FALSE(fs::exists(dir.path() / "tok.json"));

  REQUIRE(run_lmtrain(dir, "data tokenizer train --input input.txt --vocab-size 300 --out tok.json --quiet").status == 0);
  write_file(dir.path() / "bad_ids.txt", "1 2 x3");
  expect_error("data tokenizer decode --tokenizer tok.json bad_ids.txt", "'x3' (id number 2 in 'bad_ids.txt') is not a token id");
  write_file(dir.path() / "far_ids.txt", "1 300");
  expect_error("data tokenizer decode --tokenizer tok.json far_ids.txt", "token id 300 at position 1");
  expect_error("data tokenizer encode --tokenizer missing.json input.txt", "missing.json");
}
