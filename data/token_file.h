// A token file opened for training: memory-mapped, validated once at open, read window by window.
//
// Formats (the recipe's data.format):
//   lmtrain  our shards (data/shard.h): the header records the token width and vocabulary size.
//   llmc     llm.c's shards: 256 little-endian int32 (magic 20240520, version 1, number of
//            tokens, rest zero), then uint16 tokens.
//   nanogpt  nanoGPT's train.bin / val.bin: headerless uint16 tokens (numpy's tofile).
// llmc and nanogpt do not record the vocabulary size, so the caller passes it (model.vocab_size)
// and every id is checked against it. In-memory token arrays (the synthetic corpus) are wrapped
// in the same type so that the sampler does not care where tokens live.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/recipe.h"  // ShardFormat

namespace lmt::data {

inline constexpr int32_t kLlmcMagic = 20240520;

class TokenFile {
 public:
  // Maps `path` and checks everything before returning: magic, version, header fields, that the
  // size matches the header, and that every id is below the vocabulary size (vocab_size: 0 =
  // from the header; required for llmc and nanogpt). The id scan is spread over `threads`
  // threads (0 = all cores). Every problem is an lmt::Error naming the file.
  static TokenFile open(const std::string& path, ShardFormat format, int64_t vocab_size,
                        int threads = 0);
  // Wraps tokens held in memory; `name` stands in for a path in messages.
  static TokenFile from_tokens(std::string name, std::vector<int32_t> tokens, int64_t vocab_size);

  const std::string& path() const { return path_; }
  uint64_t size() const { return num_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }

  // Copies tokens [begin, begin + count) as int32 ids. Requires begin + count <= size().
  void read(uint64_t begin, size_t count, int32_t* out) const;
  std::vector<int32_t> read_all() const;

  struct Storage;  // defined in token_file.cpp

 private:
  std::shared_ptr<const Storage> storage_;  // the mapping or the in-memory array
  const unsigned char* tokens_ = nullptr;   // first token byte
  int token_bytes_ = 2;
  uint64_t num_tokens_ = 0;
  int64_t vocab_size_ = 0;
  std::string path_;
};

}  // namespace lmt::data
