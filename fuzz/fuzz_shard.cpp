// Token files as training opens them (data.format lmtrain, llmc or nanogpt): TokenFile::open,
// then reads at both ends; lmtrain shards also through read_shard_header and read_shard (data
// prepare's checks). The first byte picks the format (byte % 3) and the vocabulary size the
// recipe passes (byte / 3 % 4: 0 = from the header, 65, 50257, 100000); the rest is the file.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "data/shard.h"
#include "data/token_file.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  constexpr lmt::ShardFormat kFormats[] = {lmt::ShardFormat::kLmtrain, lmt::ShardFormat::kLlmc,
                                           lmt::ShardFormat::kNanogpt};
  constexpr int64_t kVocabSizes[] = {0, 65, 50257, 100000};
  const lmt::ShardFormat format = kFormats[data[0] % 3];
  const int64_t vocab_size = kVocabSizes[data[0] / 3 % 4];
  const auto path = lmt::fuzz::scratch_dir() / "shard.bin";
  lmt::fuzz::write_bytes(path, lmt::fuzz::as_text(data + 1, size - 1));
  try {
    const auto file = lmt::data::TokenFile::open(path.string(), format, vocab_size, 1);
    std::vector<int32_t> tokens(std::min<uint64_t>(file.size(), 64));
    file.read(0, tokens.size(), tokens.data());
    file.read(file.size() - tokens.size(), tokens.size(), tokens.data());
    for (int32_t id : tokens) lmt::fuzz::require(id >= 0 && id < file.vocab_size(), "token ids below vocab_size");
  } catch (const lmt::Error&) {
  }
  if (format == lmt::ShardFormat::kLmtrain) {
    try {
      lmt::data::read_shard_header(path.string());
      const lmt::data::Shard shard = lmt::data::read_shard(path.string());
      for (int32_t id : shard.tokens) lmt::fuzz::require(id >= 0 && id < shard.vocab_size, "read_shard ids");
    } catch (const lmt::Error&) {
    }
  }
  return 0;
}
