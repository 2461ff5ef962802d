#include <catch2/catch.hpp>
#include <filesystem>

#include "data/shard.h"
#include "tests/test_util.h"

using namespace lmt::data;
using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

// Overwrites bytes of a file in place (to corrupt a valid shard one field at a time).
void patch_file(const std::string& path, size_t offset, const std::string& bytes) {
  std::string contents = read_file(path);
  contents.replace(offset, bytes.size(), bytes);
  write_file(path, contents);
}

std::string le32(uint32_t value) {
  std::string bytes(4, '\0');
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

}  // namespace

TEST_CASE("shard round trip with 2-byte tokens", "[data][shard]") {
  TempDir dir;
  const std::string path = dir.file("train.bin");
  for (const int64_t vocab_size : {int64_t{65}, int64_t{65536}}) {
    const std::vector<int32_t> tokens = {0, 1, 64, 7, 0, static_cast<int32_t>(vocab_size - 1)};
    write_shard(path, tokens, vocab_size);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    CHECK(std::filesystem::file_size(path) == 64 + 2 * tokens.size());
    const Shard shard = read_shard(path);
    CHECK(shard.tokens == tokens);
    CHECK(shard.vocab_size == vocab_size);
    CHECK(shard.path == path);
  }
  // The header is the documented little-endian layout.
  const std::string bytes = read_file(path);
  CHECK(bytes.substr(0, 8) == "LMTSHARD");
  CHECK(bytes.substr(8, 4) == le32(1));
  CHECK(bytes.substr(12, 4) == le32(2));
  CHECK(bytes.substr(16, 8) == le32(6) + std::string(4, '\0'));
  CHECK(bytes.substr(24, 8) == le32(65536) + std::string(4, '\0'));
  CHECK(bytes.substr(32, 32) == std::string(32, '\0'));
  CHECK(bytes.substr(64 + 2 * 5, 2) == "\xFF\xFF");
}

TEST_CASE("shard round trip with 4-byte tokens", "[data][shard]") {
  TempDir dir;
  const std::string path = dir.file("big_vocab.bin");
  const std::vector<int32_t> tokens = {0, 65535, 65536, 70000, 99999, 12345};
  write_shard(path, tokens, 100000);
  CHECK(std::filesystem::file_size(path) == 64 + 4 * tokens.size());
  const Shard shard = read_shard(path);
  CHECK(shard.tokens == tokens);
  CHECK(shard.vocab_size == 100000);
}

TEST_CASE("shard round trip: empty and larger than one chunk", "[data][shard]") {
  TempDir dir;
  const std::string empty_path = dir.file("empty.bin");
  write_shard(empty_path, {}, 10);
  CHECK(read_shard(empty_path).tokens.empty());

  const std::string large_path = dir.file("large.bin");
  std::vector<int32_t> tokens(3'000'000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 2654435761u) % 50257);
  write_shard(large_path, tokens, 50257);
  CHECK(read_shard(large_path).tokens == tokens);
}

TEST_CASE("write_shard rejects out-of-range tokens and leaves no file", "[data][shard]") {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  const std::vector<int32_t> tokens = {1, 2, 10};
  CHECK_THAT(error_message([&] { write_shard(path, tokens, 10); }), Contains(path) && Contains("index 2"));
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_THROWS_AS(write_shard(path, tokens, 0), lmt::Error);
}

TEST_CASE("corrupt shards give errors naming the file", "[data][shard]") {
  TempDir dir;
  const std::string path = dir.file("shard.bin");
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  write_shard(path, tokens, 10);

  SECTION("missing file") {
    const std::string missing = dir.file("nope.bin");
    CHECK_THAT(error_message([&] { read_shard(missing); }), Contains(missing) && Contains("does not exist"));
  }
  SECTION("a directory") {
    CHECK_THAT(error_message([&] { read_shard(dir.path().string()); }), Contains("directory"));
  }
  SECTION("bad magic") {
    write_file(path, "First Citizen:\nBefore we proceed any further, hear me speak.\n");
    const std::string message = error_message([&] { read_shard(path); });
    CHECK_THAT(message, Contains(path) && Contains("not an lmtrain token shard") && Contains("\"First Ci\""));
  }
  SECTION("empty file") {
    write_file(path, "");
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("empty"));
  }
  SECTION("llm.c shard") {
    write_file(path, le32(20240520) + le32(1) + std::string(1016, '\0'));
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("llm.c"));
  }
  SECTION("header cut short") {
    write_file(path, "LMTSHARD\x01\0\0\0");
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("truncated"));
  }
  SECTION("truncated tokens") {
    std::filesystem::resize_file(path, 64 + 2 * tokens.size() - 1);
    const std::string message = error_message([&] { read_shard(path); });
    CHECK_THAT(message, Contains(path) && Contains("truncated") && Contains("should be 80 bytes") &&
                            Contains("is 79 bytes"));
  }
  SECTION("extra bytes") {
    write_file(path, read_file(path) + "xx");
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("extra bytes"));
  }
  SECTION("absurd token count") {
    patch_file(path, 16, std::string(8, '\xFF'));
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("truncated"));
  }
  SECTION("wrong version") {
    patch_file(path, 8, le32(2));
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("version 2"));
  }
  SECTION("bad token width") {
    patch_file(path, 12, le32(3));
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("token_bytes is 3"));
  }
  SECTION("token >= vocab_size") {
    patch_file(path, 24, le32(6));  // claims vocab 6, but token 5 holds 9
    CHECK_THAT(error_message([&] { read_shard(path); }),
               Contains(path) && Contains("index 5 is 9") && Contains("vocabulary size is 6"));
  }
  SECTION("zero vocab_size") {
    patch_file(path, 24, le32(0));
    CHECK_THAT(error_message([&] { read_shard(path); }), Contains(path) && Contains("vocab_size is 0"));
  }
}
