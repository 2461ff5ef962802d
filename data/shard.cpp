#include "data/shard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/file_io.h"
#include "data/token_file.h"

namespace lmt::data {

namespace {

namespace fs = std::filesystem;

// Tokens are converted through a fixed buffer so that neither writing nor reading needs a
// second full-size copy of the data.
constexpr size_t kChunkTokens = size_t{1} << 20;

void put_u32(unsigned char* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}
void put_u64(unsigned char* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}
uint32_t get_u32(const unsigned char* in) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | in[i];
  return value;
}
uint64_t get_u64(const unsigned char* in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | in[i];
  return value;
}

// "4c 4d 54 53 ... ("LMTS...")": hex plus printable ASCII, so a user can tell a text file, an
// llm.c shard or an empty file apart at a glance.
std::string describe_first_bytes(const unsigned char* bytes, size_t num_bytes) {
  if (num_bytes == 0) return "the file is empty";
  const size_t shown = std::min<size_t>(num_bytes, 8);
  std::string hex, ascii;
  for (size_t i = 0; i < shown; ++i) {
    hex += fmt::format("{}{:02x}", i == 0 ? "" : " ", bytes[i]);
    ascii += (bytes[i] >= 0x20 && bytes[i] < 0x7F) ? static_cast<char>(bytes[i]) : '.';
  }
  return fmt::format("first bytes: {} (\"{}\")", hex, ascii);
}

void check_vocab_size(const std::string& path, int64_t vocab_size) {
  if (vocab_size < 1 || vocab_size > std::numeric_limits<int32_t>::max()) {
    throw Error(fmt::format("cannot write token shard '{}': vocab_size {} is outside [1, 2^31 - 1]",
                            path, vocab_size));
  }
}

}  // namespace

namespace detail {

void write_shard_file(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size) {
  check_vocab_size(path, vocab_size);
  // Validate before creating the file so a bad call leaves nothing behind.
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      throw Error(fmt::format("cannot write token shard '{}': token {} at index {} is outside "
                              "[0, vocab_size = {})", path, tokens[i], i, vocab_size));
    }
  }
  const uint32_t token_bytes = vocab_size <= 65536 ? 2 : 4;

  unsigned char header[kShardHeaderBytes] = {};
  std::memcpy(header, kShardMagic, sizeof(kShardMagic));
  put_u32(header + 8, kShardVersion);
  put_u32(header + 12, token_bytes);
  put_u64(header + 16, tokens.size());
  put_u64(header + 24, static_cast<uint64_t>(vocab_size));

  OutputFile out(path);
  out.write(header, sizeof(header));
  std::vector<unsigned char> buffer;
  for (size_t begin = 0; begin < tokens.size(); begin += kChunkTokens) {
    const size_t end = std::min(tokens.size(), begin + kChunkTokens);
    buffer.resize((end - begin) * token_bytes);
    unsigned char* cursor = buffer.data();
    for (size_t i = begin; i < end; ++i, cursor += token_bytes) {
      const auto value = static_cast<uint32_t>(tokens[i]);
      for (uint32_t b = 0; b < token_bytes; ++b) cursor[b] = static_cast<unsigned char>(value >> (8 * b));
    }
    out.write(buffer.data(), buffer.size());
  }
  out.finish();
}

}  // namespace detail

void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size) {
  const std::string temp_path = path + ".tmp";
  detail::write_shard_file(temp_path, tokens, vocab_size);
  try {
    rename_file(temp_path, path);
  } catch (...) {
    remove_quietly(temp_path);
    throw;
  }
}

void check_shard_file(const std::string& path, std::string_view what) {
  switch (file_kind(path, what)) {  // a symlink loop throws here
    case fs::file_type::not_found:
      throw Error(fmt::format("{} '{}' does not exist; check the path (globs such as data/train_*.bin "
                              "are allowed), or create shards with `lmtrain data prepare`", what, path));
    case fs::file_type::directory:
      throw Error(fmt::format("{} '{}' is a directory; pass the .bin file(s) inside it, e.g. '{}/*.bin'",
                              what, path, path));
    default:
      // A FIFO would block open() until a writer came; a device has no end.
      check_regular_file(path, what);
  }
}

ShardInfo read_shard_header(const std::string& path) {
  const std::string recreate = "re-create it with `lmtrain data prepare`";
  check_shard_file(path, "token shard");
  std::error_code ec;
  const uintmax_t file_bytes = fs::file_size(path, ec);
  if (ec) throw Error(fmt::format("cannot read the size of token shard '{}': {}", path, ec.message()));

  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw Error(fmt::format("token shard '{}' cannot be opened: {}; check its permissions", path,
                            std::strerror(errno)));
  }
  struct Closer {
    std::FILE* file;
    ~Closer() { std::fclose(file); }
  } closer{file};

  unsigned char header[kShardHeaderBytes] = {};
  const size_t header_read = std::fread(header, 1, sizeof(header), file);
  // Check the magic first: for a file that is not a shard at all, "not a shard" is the useful
  // message, not "too short".
  if (header_read < sizeof(kShardMagic) || std::memcmp(header, kShardMagic, sizeof(kShardMagic)) != 0) {
    std::string hint;
    if (header_read >= 4 && get_u32(header) == 20240520) {
      hint = " It looks like an llm.c shard (magic 20240520), a different format.";
    }
    throw Error(fmt::format("'{}' is not an lmtrain token shard: it does not start with \"LMTSHARD\" "
                            "({}).{} Create shards with `lmtrain data prepare`",
                            path, describe_first_bytes(header, header_read), hint));
  }
  if (header_read < sizeof(header)) {
    throw Error(fmt::format("token shard '{}' is {} bytes, shorter than its {}-byte header "
                            "(truncated?); {}", path, file_bytes, kShardHeaderBytes, recreate));
  }
  const uint32_t version = get_u32(header + 8);
  const uint32_t token_bytes = get_u32(header + 12);
  const uint64_t num_tokens = get_u64(header + 16);
  const uint64_t vocab_size = get_u64(header + 24);
  if (version != kShardVersion) {
    throw Error(fmt::format("token shard '{}' has format version {}; this lmtrain reads version {}; "
                            "{} or use a matching lmtrain", path, version, kShardVersion, recreate));
  }
  if (token_bytes != 2 && token_bytes != 4) {
    throw Error(fmt::format("token shard '{}' has a corrupt header: token_bytes is {} (must be 2 "
                            "or 4); {}", path, token_bytes, recreate));
  }
  if (vocab_size < 1 || vocab_size > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    throw Error(fmt::format("token shard '{}' has a corrupt header: vocab_size is {} (must be in "
                            "[1, 2^31 - 1]); {}", path, vocab_size, recreate));
  }
  // Compare in a form that cannot overflow: a corrupt num_tokens can be anything.
  const uint64_t payload_bytes = file_bytes - kShardHeaderBytes;
  if (num_tokens > payload_bytes / token_bytes || payload_bytes != num_tokens * token_bytes) {
    const bool shorter = num_tokens > payload_bytes / token_bytes;
    const std::string expected =
        num_tokens > (std::numeric_limits<uint64_t>::max() - kShardHeaderBytes) / token_bytes
            ? std::string("more than 2^64")
            : fmt::format("{}", kShardHeaderBytes + num_tokens * token_bytes);
    throw Error(fmt::format("token shard '{}' should be {} bytes (64-byte header + {} tokens x {} "
                            "bytes) but is {} bytes ({}); {}", path, expected, num_tokens,
                            token_bytes, file_bytes,
                            shorter ? "truncated?" : "extra bytes after the tokens", recreate));
  }

  ShardInfo info;
  info.path = path;
  info.version = version;
  info.token_bytes = token_bytes;
  info.num_tokens = num_tokens;
  info.vocab_size = static_cast<int64_t>(vocab_size);
  return info;
}

Shard read_shard(const std::string& path) {
  const TokenFile file = TokenFile::open(path, ShardFormat::kLmtrain, 0);
  return Shard{file.read_all(), file.vocab_size(), path};
}

}  // namespace lmt::data
