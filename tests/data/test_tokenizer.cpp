#include <catch2/catch.hpp>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "tests/test_util.h"

using lmt::data::Tokenizer;
using namespace lmt::testing;
using Catch::Matchers::Contains;

TEST_CASE("char tokenizer: vocabulary is the sorted distinct characters", "[data][tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::build_char("hello world\n");
  CHECK(tokenizer.kind() == "char");
  CHECK(tokenizer.vocab_size() == 9);  // \n space d e h l o r w
  CHECK(tokenizer.code_points() == std::vector<char32_t>{'\n', ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'});
  CHECK(tokenizer.encode("hello") == std::vector<int32_t>{4, 3, 5, 5, 6});
  const std::vector<int32_t> ids = tokenizer.encode("world hello\n");
  CHECK(tokenizer.decode(ids) == "world hello\n");
}

TEST_CASE("char tokenizer: non-ASCII round trip", "[data][tokenizer]") {
  const std::string text = "héllo wörld — 日本語 🎉 é\n";
  const Tokenizer tokenizer = Tokenizer::build_char(text);
  // h é l o space w ö r d — 日 本 語 🎉 \n
  CHECK(tokenizer.vocab_size() == 15);
  const auto& code_points = tokenizer.code_points();
  CHECK(std::is_sorted(code_points.begin(), code_points.end()));
  CHECK(code_points.back() == U'🎉');
  const std::vector<int32_t> ids = tokenizer.encode(text);
  CHECK(ids.size() == 22);  // characters, not bytes
  CHECK(tokenizer.decode(ids) == text);
}

TEST_CASE("char tokenizer: invalid UTF-8 names the byte offset and suggests byte", "[data][tokenizer]") {
  const std::string message = error_message([] { Tokenizer::build_char("ab\xC3(cd"); });
  CHECK_THAT(message, Contains("byte offset 2") && Contains("--tokenizer byte") && Contains("0xC3"));

  CHECK(lmt::data::find_invalid_utf8("plain ascii") == std::nullopt);
  CHECK(lmt::data::find_invalid_utf8("日本 🎉") == std::nullopt);
  CHECK(lmt::data::find_invalid_utf8("x\xC0\xAF") == 1u);            // overlong '/'
  CHECK(lmt::data::find_invalid_utf8("\xED\xA0\x80") == 0u);         // UTF-16 surrogate
  CHECK(lmt::data::find_invalid_utf8("\xF4\x90\x80\x80") == 0u);     // above U+10FFFF
  CHECK(lmt::data::find_invalid_utf8("abc\xE6\x97") == 3u);          // truncated at the end
  CHECK(lmt::data::find_invalid_utf8("abc\x80") == 3u);              // stray continuation

  const Tokenizer tokenizer = Tokenizer::build_char("abc");
  CHECK_THAT(error_message([&] { tokenizer.encode("a\xFF"); }), Contains("byte offset 1"));
  CHECK_THAT(error_message([] { Tokenizer::build_char(""); }), Contains("empty"));
}

TEST_CASE("char tokenizer: unknown characters and ids are errors", "[data][tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::build_char("abc");
  CHECK_THAT(error_message([&] { tokenizer.encode("abxc"); }),
             Contains("U+0078 'x'") && Contains("byte offset 2"));
  const std::vector<int32_t> bad = {0, 3};
  CHECK_THAT(error_message([&] { tokenizer.decode(bad); }), Contains("token id 3 at position 1"));
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(tokenizer.decode(negative), lmt::Error);
}

TEST_CASE("byte tokenizer: any bytes round trip", "[data][tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::byte();
  CHECK(tokenizer.kind() == "byte");
  CHECK(tokenizer.vocab_size() == 256);
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  bytes += "héllo \xC3( invalid";
  const std::vector<int32_t> ids = tokenizer.encode(bytes);
  REQUIRE(ids.size() == bytes.size());
  CHECK(ids[0] == 0);
  CHECK(ids[255] == 255);
  CHECK(tokenizer.decode(ids) == bytes);
  const std::vector<int32_t> bad = {256};
  CHECK_THROWS_AS(tokenizer.decode(bad), lmt::Error);
}

TEST_CASE("tokenizer save and load", "[data][tokenizer]") {
  TempDir dir;
  SECTION("char, including control and non-ASCII characters") {
    const std::string text = std::string("a\0b\n\t\"\\", 8) + "é日🎉";
    const Tokenizer original = Tokenizer::build_char(text);
    const std::string path = dir.file("tokenizer.json");
    original.save(path);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    const Tokenizer loaded = Tokenizer::load(path);
    CHECK(loaded.kind() == "char");
    CHECK(loaded.code_points() == original.code_points());
    CHECK(loaded.encode(text) == original.encode(text));
    CHECK_THAT(read_file(path), Contains("\"format\": \"lmtrain-tokenizer\""));
  }
  SECTION("byte") {
    const std::string path = dir.file("byte.json");
    Tokenizer::byte().save(path);
    const Tokenizer loaded = Tokenizer::load(path);
    CHECK(loaded.kind() == "byte");
    CHECK(loaded.vocab_size() == 256);
  }
  SECTION("errors name the file") {
    const std::string missing = dir.file("missing.json");
    CHECK_THAT(error_message([&] { Tokenizer::load(missing); }), Contains(missing) && Contains("does not exist"));

    const std::string bad_json = dir.file("bad.json");
    write_file(bad_json, "{\"format\": ");
    CHECK_THAT(error_message([&] { Tokenizer::load(bad_json); }), Contains(bad_json) && Contains("not valid JSON"));

    const std::string wrong_format = dir.file("other.json");
    write_file(wrong_format, R"({"format": "something-else", "version": 1})");
    CHECK_THAT(error_message([&] { Tokenizer::load(wrong_format); }),
               Contains(wrong_format) && Contains("not an lmtrain tokenizer"));

    const std::string wrong_version = dir.file("v2.json");
    write_file(wrong_version, R"({"format": "lmtrain-tokenizer", "version": 2, "kind": "byte"})");
    CHECK_THAT(error_message([&] { Tokenizer::load(wrong_version); }), Contains(wrong_version) && Contains("version 2"));

    const std::string wrong_kind = dir.file("bpe.json");
    write_file(wrong_kind, R"({"format": "lmtrain-tokenizer", "version": 1, "kind": "bpe"})");
    CHECK_THAT(error_message([&] { Tokenizer::load(wrong_kind); }), Contains(wrong_kind) && Contains("\"bpe\""));

    const std::string duplicate = dir.file("dup.json");
    write_file(duplicate, R"({"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab": ["a", "b", "a"]})");
    CHECK_THAT(error_message([&] { Tokenizer::load(duplicate); }), Contains(duplicate) && Contains("twice"));

    const std::string multi = dir.file("multi.json");
    write_file(multi, R"({"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab": ["a", "bc"]})");
    CHECK_THAT(error_message([&] { Tokenizer::load(multi); }), Contains(multi) && Contains("entry 1"));
  }
}

TEST_CASE("tokenizer files: a vocab_size that is not the vocabulary's is an error, for every kind",
          "[data][tokenizer]") {
  const std::string byte = R"({"format": "lmtrain-tokenizer", "version": 1, "kind": "byte", "vocab_size": 300})";
  CHECK_THAT(lmt::testing::error_message([&] { lmt::data::Tokenizer::from_json(byte, "b.json"); }),
             Contains("b.json") && Contains("says vocab_size 300, but its vocabulary has 256 tokens"));
  const std::string good = R"({"format": "lmtrain-tokenizer", "version": 1, "kind": "byte", "vocab_size": 256})";
  CHECK(lmt::data::Tokenizer::from_json(good, "b.json").vocab_size() == 256);
  lmt::data::BpeTrainOptions options;
  options.vocab_size = 270;
  options.num_threads = 1;
  nlohmann::json bpe = nlohmann::json::parse(
      lmt::data::Tokenizer::train_bpe_on_text("abababab cdcdcd abcd", options).to_json());
  bpe["vocab_size"] = 9999;
  CHECK_THAT(lmt::testing::error_message([&] { lmt::data::Tokenizer::from_json(bpe.dump(), "bpe.json"); }),
             Contains("says vocab_size 9999"));
}
