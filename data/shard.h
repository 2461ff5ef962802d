// lmtrain token shards: one file of token ids, written by `lmtrain data prepare`.
//
// Layout (all integers little-endian):
//   offset  size  field
//        0     8  magic        "LMTSHARD" (no terminator)
//        8     4  version      uint32, currently 1
//       12     4  token_bytes  uint32, 2 or 4 (2 whenever vocab_size <= 65536)
//       16     8  num_tokens   uint64
//       24     8  vocab_size   uint64; every token id is < vocab_size
//       32    32  reserved     zero bytes (readers ignore them, so later versions can use them)
//       64     .  tokens       num_tokens unsigned integers of token_bytes each
// The file size is exactly 64 + num_tokens * token_bytes; a shorter file is truncated.
// Unlike llm.c's and nanoGPT's files the header records the vocabulary size, so a shard paired
// with the wrong model is caught before training instead of as an out-of-range embedding index.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lmt::data {

inline constexpr char kShardMagic[8] = {'L', 'M', 'T', 'S', 'H', 'A', 'R', 'D'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

// Writes `tokens` to path + ".tmp", syncs and renames it to `path`, so an interrupted write
// never leaves a file that looks complete. Throws lmt::Error for a token outside
// [0, vocab_size), a vocab_size outside [1, 2^31 - 1], or an I/O failure.
void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size);

// A shard loaded into memory.
struct Shard {
  std::vector<int32_t> tokens;
  int64_t vocab_size = 0;
  std::string path;
};

// A shard's header, validated (magic, version, token width, vocab size, file size matches).
struct ShardInfo {
  std::string path;
  uint32_t version = 0;
  uint32_t token_bytes = 0;
  uint64_t num_tokens = 0;
  int64_t vocab_size = 0;
};
ShardInfo read_shard_header(const std::string& path);

// Throws lmt::Error unless `path` is a regular file that a shard reader may open: missing (with
// the hint to run `lmtrain data prepare`), a directory (pass the .bin files inside it), a
// symlink loop, a device, FIFO or socket each named. `what` is the file's role ("token shard").
void check_shard_file(const std::string& path, std::string_view what);

// Reads and fully validates a shard (header fields, exact size, every id < vocab_size).
// Every problem is an lmt::Error naming `path`.
Shard read_shard(const std::string& path);

namespace detail {
// write_shard without the rename: writes exactly `path` (synced). For callers that publish
// several files together (prepare_data renames train, val and tokenizer only when all exist).
void write_shard_file(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size);
}  // namespace detail

}  // namespace lmt::data
