// Token files written by other tools, read into the same Shard as lmtrain's own format:
//   llmc     llm.c's shards: a 256 x int32 little-endian header (magic 20240520, version 1,
//            number of tokens, rest zero), then uint16 tokens.
//   nanogpt  nanoGPT's train.bin / val.bin: headerless uint16 tokens (numpy's tofile).
// Neither records the vocabulary size, so the caller passes it (model.vocab_size) and every id
// is checked against it.
#pragma once
#include <cstdint>
#include <string>

#include "data/shard.h"

namespace lmt::data {

inline constexpr int32_t kLlmcMagic = 20240520;

// format: "lmtrain" (vocab_size may be 0: the header has it), "llmc" or "nanogpt".
// Every problem is an lmt::Error naming the file.
Shard read_token_file(const std::string& path, const std::string& format, int64_t vocab_size);

}  // namespace lmt::data
