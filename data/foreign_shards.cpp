#include "data/foreign_shards.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/file_io.h"

namespace lmt::data {
namespace {

constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);

int32_t get_i32(const char* bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes);
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24));
}

void decode_uint16(const std::string& path, const char* bytes, size_t num_tokens,
                   int64_t vocab_size, const std::string& format, Shard& shard) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes);
  shard.tokens.resize(num_tokens);
  for (size_t i = 0; i < num_tokens; ++i) {
    const int32_t id = static_cast<int32_t>(data[2 * i] | (data[2 * i + 1] << 8));
    if (id >= vocab_size)
      throw Error(fmt::format("{} shard '{}': token at index {} is {} but model.vocab_size is {}; set "
                              "model.vocab_size to the tokenizer's size (50257 for GPT-2)",
                              format, path, i, id, vocab_size));
    shard.tokens[i] = id;
  }
  shard.vocab_size = vocab_size;
  shard.path = path;
}

}  // namespace

Shard read_token_file(const std::string& path, const std::string& format, int64_t vocab_size) {
  if (format == "lmtrain") return read_shard(path);
  if (vocab_size <= 0)
    throw Error(fmt::format("{} shard '{}': the file does not record a vocabulary size; set "
                            "model.vocab_size (50257 for GPT-2 tokens)", format, path));
  Shard shard;
  if (format == "llmc") {
    const std::string bytes = read_file_bytes(path, "llm.c shard");
    if (bytes.size() < kLlmcHeaderBytes)
      throw Error(fmt::format("llm.c shard '{}' is {} bytes, shorter than its 1024-byte header (truncated?)",
                              path, bytes.size()));
    const int32_t magic = get_i32(bytes.data()), version = get_i32(bytes.data() + 4);
    const int64_t num_tokens = get_i32(bytes.data() + 8);
    if (magic != kLlmcMagic) {
      const bool ours = bytes.size() >= 8 && bytes.compare(0, 8, "LMTSHARD") == 0;
      throw Error(fmt::format("'{}' is not an llm.c shard: magic is {} (expected {}){}", path, magic,
                              kLlmcMagic, ours ? "; it is an lmtrain shard: set data.format: lmtrain" : ""));
    }
    if (version != 1)
      throw Error(fmt::format("llm.c shard '{}' has version {}; lmtrain reads version 1 (uint16 tokens)", path, version));
    if (num_tokens < 0 || bytes.size() != kLlmcHeaderBytes + 2 * static_cast<size_t>(num_tokens))
      throw Error(fmt::format("llm.c shard '{}' should be {} bytes (1024-byte header + {} tokens x 2) but is {} "
                              "(truncated?)", path, kLlmcHeaderBytes + 2 * std::max<int64_t>(0, num_tokens),
                              num_tokens, bytes.size()));
    decode_uint16(path, bytes.data() + kLlmcHeaderBytes, static_cast<size_t>(num_tokens), vocab_size, format, shard);
    return shard;
  }
  if (format == "nanogpt") {
    const std::string bytes = read_file_bytes(path, "nanoGPT token file");
    if (bytes.size() % 2 != 0)
      throw Error(fmt::format("nanoGPT token file '{}' has an odd size ({} bytes); it should hold uint16 "
                              "tokens (truncated?)", path, bytes.size()));
    if (bytes.size() >= 4 && get_i32(bytes.data()) == kLlmcMagic)
      throw Error(fmt::format("'{}' starts with llm.c's magic 20240520: set data.format: llmc", path));
    decode_uint16(path, bytes.data(), bytes.size() / 2, vocab_size, format, shard);
    return shard;
  }
  throw Error(fmt::format("unknown token file format '{}' (expected lmtrain, llmc or nanogpt)", format));
}

}  // namespace lmt::data
