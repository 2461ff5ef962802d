#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/checksum.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

TEST_CASE("crc32c matches the standard check value and chains", "[core][checksum]") {
  const std::string text = "123456789";
  CHECK(lmt::crc32c(text.data(), text.size()) == 0xE3069283u);  // the CRC-32C check value
  CHECK(lmt::crc32c("", 0) == 0u);
  // Chaining over pieces equals one pass, for every split point (covers the 8-byte path).
  const std::string long_text = "The quick brown fox jumps over the lazy dog, twice over.";
  const uint32_t whole = lmt::crc32c(long_text.data(), long_text.size());
  for (size_t split = 0; split <= long_text.size(); ++split) {
    uint32_t crc = lmt::crc32c(long_text.data(), split);
    crc = lmt::crc32c(long_text.data() + split, long_text.size() - split, crc);
    REQUIRE(crc == whole);
  }
}

TEST_CASE("safetensors files round-trip and reject damage", "[core][safetensors]") {
  const fs::path path = fs::temp_directory_path() / ("lmtrain-st-" + std::to_string(::getpid()) + ".safetensors");
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f};
  std::vector<int32_t> b = {7, -8, 9};
  lmt::write_safetensors(path.string(),
                         {{"a", "F32", {2, 3}, a.data(), a.size() * sizeof(float)},
                          {"b", "I32", {3}, b.data(), b.size() * sizeof(int32_t)}},
                         {{"note", "test"}});
  auto file = lmt::read_safetensors(path.string());
  CHECK(file.metadata.at("note") == "test");
  CHECK(file.at("a").shape == std::vector<int64_t>{2, 3});
  CHECK(file.at("a").as_f32() == a);
  CHECK(file.at("b").as_i32() == b);
  CHECK_THROWS_AS(file.at("c"), lmt::Error);
  // The header is padded so the data starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  unsigned char length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  CHECK(length[0] % 8 == 0);
  in.close();
  // A truncated file is refused with its name.
  fs::resize_file(path, fs::file_size(path) - 4);
  try {
    lmt::read_safetensors(path.string());
    FAIL("a truncated file was accepted");
  } catch (const lmt::Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains(path.string()));
  }
  // A mismatch between bytes and shape is refused when writing.
  CHECK_THROWS_AS(lmt::write_safetensors(path.string(), {{"x", "F32", {4}, a.data(), 3 * sizeof(float)}}, {}),
                  lmt::Error);
  fs::remove(path);
}

// Found by fuzz/fuzz_safetensors.cpp (UBSan: memcpy from a null pointer): an empty tensor's
// conversions copied zero bytes from an empty vector's data(), which may be null.
TEST_CASE("safetensors: empty tensors read and convert to empty vectors", "[core][safetensors][fuzz]") {
  const fs::path path = fs::temp_directory_path() / ("lmtrain-st-empty-" + std::to_string(::getpid()) + ".safetensors");
  const std::string header = R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("i":{"dtype":"I32","shape":[2,0],"data_offsets":[0,0]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  std::ofstream(path, std::ios::binary) << bytes << header;
  const auto file = lmt::read_safetensors(path.string());
  CHECK(file.at("e").to_f32().empty());
  CHECK(file.at("e").as_f32().empty());
  CHECK(file.at("i").as_i32().empty());
  fs::remove(path);
}

// Found by fuzz/fuzz_safetensors.cpp: a header that is JSON but not an object (here the number
// 999...9 of the reproducer), or metadata that is not strings, let nlohmann::json's exceptions
// escape; a negative or oversized dimension made numel() wrap around.
TEST_CASE("safetensors: headers of the wrong JSON shape are errors naming the file", "[core][safetensors][fuzz]") {
  const fs::path path = fs::temp_directory_path() / ("lmtrain-st-bad-" + std::to_string(::getpid()) + ".safetensors");
  auto message = [&](const std::string& header, const std::string& data = "") {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes << header << data;
    try {
      lmt::read_safetensors(path.string());
    } catch (const lmt::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(message("99999999999999999999"), Contains(path.string()) && Contains("not a JSON object"));
  CHECK_THAT(message("[1, 2]"), Contains("not a JSON object"));
  CHECK_THAT(message(R"({"__metadata__": {"step": 3}})"), Contains("__metadata__ key 'step'"));
  CHECK_THAT(message(R"({"__metadata__": [1]})"), Contains("__metadata__ is not an object"));
  CHECK_THAT(message(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "abcd"),
             Contains("tensor 'w' has shape [-1]"));
  // 2^62 * 4 elements of 4 bytes wrap around to 0 bytes in 64 bits.
  CHECK_THAT(message(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})"),
             Contains("larger than the file"));
  fs::remove(path);
}

// Checkpoints are written by SafetensorsWriter a piece at a time and read back through the
// index a range at a time; the header's length is bounded before it is allocated.
TEST_CASE("safetensors: a file written in pieces reads back whole and by ranges; a huge header is refused",
          "[core][safetensors]") {
  const fs::path path = fs::temp_directory_path() / ("lmtrain-st-pieces-" + std::to_string(::getpid()) + ".safetensors");
  std::vector<float> a(10), b(7);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) + 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  {
    lmt::SafetensorsWriter writer(path.string(), {{"a", "F32", {2, 5}, nullptr, 40}, {"b", "F32", {7}, nullptr, 28}},
                                  {{"k", "v"}});
    std::vector<float> both(a);
    both.insert(both.end(), b.begin(), b.end());
    for (size_t i = 0; i < both.size(); i += 3) writer.write(both.data() + i, std::min<size_t>(3, both.size() - i) * 4);
    CHECK_THROWS_WITH(writer.write(both.data(), 4), Catch::Matchers::Contains("more bytes of tensor data"));
    writer.finish();
  }
  const auto whole = lmt::read_safetensors(path.string());
  CHECK(whole.at("a").as_f32() == a);
  CHECK(whole.at("b").as_f32() == b);
  const lmt::SafeTensorsIndex index = lmt::read_safetensors_index(path.string());
  CHECK(index.metadata.at("k") == "v");
  float two[2];
  lmt::read_safetensors_bytes(index, "b", 3 * 4, 8, two);
  CHECK(two[0] == b[3]);
  CHECK(two[1] == b[4]);
  CHECK_THROWS_WITH(index.at("c"), Catch::Matchers::Contains("no tensor named 'c'"));
  // A writer that does not get all its bytes fails and leaves no file.
  {
    lmt::SafetensorsWriter short_writer(path.string(), {{"a", "F32", {2, 5}, nullptr, 40}}, {});
    short_writer.write(a.data(), 36);
    CHECK_THROWS_WITH(short_writer.finish(), Catch::Matchers::Contains("36 bytes of tensor data written"));
  }
  CHECK_FALSE(fs::exists(path));
  // A header length over 100 MiB, in a (sparse) file long enough to hold it.
  {
    std::string bytes(8, '\0');
    const uint64_t length = (uint64_t{100} << 20) + 8;
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
    std::ofstream(path, std::ios::binary) << bytes;
  }
  fs::resize_file(path, (uint64_t{101} << 20));
  CHECK_THROWS_WITH(lmt::read_safetensors(path.string()),
                    Catch::Matchers::Contains(path.string()) && Catch::Matchers::Contains("over the 104857600 bytes"));
  fs::remove(path);
}
