#include "data/token_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "data/shard.h"

namespace lmt::data {

namespace {

// A shard that shrinks while it is mapped (truncated, or rewritten in place) turns the next read
// of a vanished page into SIGBUS. The mapped regions are recorded here so that the handler can
// name the file and end the process with exit 2 instead of a bare "Bus error". Slots are
// claimed with atomics and read by the handler without locks; the path strings belong to the
// mappings and stay alive while their slot is set.
struct MappedRegion {
  std::atomic<const char*> begin{nullptr};
  std::atomic<const char*> end{nullptr};
  std::atomic<const char*> path{nullptr};
};
std::array<MappedRegion, 4096> g_regions;

void write_stderr(const char* text) {
  size_t n = std::strlen(text);
  while (n > 0) {
    const ssize_t done = ::write(STDERR_FILENO, text, n);
    if (done <= 0) return;
    text += done;
    n -= static_cast<size_t>(done);
  }
}

void on_sigbus(int signal, siginfo_t* info, void*) {
  const char* address = static_cast<const char*>(info->si_addr);
  for (const MappedRegion& r : g_regions) {
    const char* begin = r.begin.load();
    if (begin != nullptr && address >= begin && address < r.end.load()) {
      write_stderr("error: token shard '");
      write_stderr(r.path.load());
      write_stderr("' became shorter while it was being read (truncated or rewritten in place); restore it and "
                   "resume from the last checkpoint with --resume auto. Write new shards to new files.\n");
      ::_exit(2);
    }
  }
  std::signal(signal, SIG_DFL);  // not a shard: the default action (a crash with a core)
  ::raise(signal);
}

void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, nullptr);
  });
}

}  // namespace

struct TokenFile::Storage {
  void* map = nullptr;
  size_t map_bytes = 0;
  std::vector<int32_t> owned;
  std::string path;
  MappedRegion* region = nullptr;  // its slot in g_regions, if one was free
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (region != nullptr) {
      region->begin = nullptr;
      region->end = nullptr;
      region->path = nullptr;
    }
    if (map != nullptr) ::munmap(map, map_bytes);
  }
  void record_region() {
    install_sigbus_handler();
    for (MappedRegion& r : g_regions) {
      const char* expected = nullptr;
      if (r.path.compare_exchange_strong(expected, path.c_str())) {
        r.end = static_cast<const char*>(map) + map_bytes;
        r.begin = static_cast<const char*>(map);
        region = &r;
        return;
      }
    }
  }
};

namespace {

constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);

int32_t get_i32(const unsigned char* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24));
}

uint32_t token_at(const unsigned char* tokens, int token_bytes, uint64_t i) {
  const unsigned char* p = tokens + i * static_cast<uint64_t>(token_bytes);
  if (token_bytes == 2) return static_cast<uint32_t>(p[0] | (p[1] << 8));
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// The largest id in [begin, end); a branch-free loop the compiler vectorizes.
uint32_t max_token(const unsigned char* tokens, int token_bytes, uint64_t begin, uint64_t end) {
  uint32_t best = 0;
  if (token_bytes == 2) {
    for (uint64_t i = begin; i < end; ++i) {
      uint16_t v;
      std::memcpy(&v, tokens + 2 * i, 2);  // little-endian host (x86-64, aarch64)
      best = std::max<uint32_t>(best, v);
    }
  } else {
    for (uint64_t i = begin; i < end; ++i) {
      uint32_t v;
      std::memcpy(&v, tokens + 4 * i, 4);
      best = std::max(best, v);
    }
  }
  return best;
}

// Index of the first id >= vocab_size, or num_tokens if every id is valid. Splits the scan over
// threads; each computes the maximum of its range, and only a range whose maximum is too large
// is searched again for the exact index.
uint64_t first_bad_token(const unsigned char* tokens, int token_bytes, uint64_t num_tokens,
                         uint64_t vocab_size, int threads) {
  if (token_bytes == 2 && vocab_size > 0xFFFF) return num_tokens;
  const int num_threads = std::max<int>(
      1, std::min<uint64_t>(threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency()),
                            num_tokens / (1u << 20) + 1));
  std::vector<uint32_t> maxima(num_threads, 0);
  auto range = [&](int t) {
    return std::pair<uint64_t, uint64_t>(num_tokens * t / num_threads, num_tokens * (t + 1) / num_threads);
  };
  std::vector<std::thread> workers;
  for (int t = 1; t < num_threads; ++t)
    workers.emplace_back([&, t] { maxima[t] = max_token(tokens, token_bytes, range(t).first, range(t).second); });
  maxima[0] = max_token(tokens, token_bytes, range(0).first, range(0).second);
  for (auto& w : workers) w.join();
  for (int t = 0; t < num_threads; ++t) {
    if (maxima[t] < vocab_size) continue;
    for (uint64_t i = range(t).first; i < range(t).second; ++i)
      if (token_at(tokens, token_bytes, i) >= vocab_size) return i;
  }
  return num_tokens;
}

// Maps a whole file read-only. An empty file gets no mapping (mmap rejects length 0).
std::shared_ptr<TokenFile::Storage> map_file(const std::string& path, const char* what) {
  check_shard_file(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error(fmt::format("{} '{}' cannot be opened: {}; check its permissions", what, path,
                            std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(fmt::format("{} '{}': cannot read its size: {}", what, path, std::strerror(err)));
  }
  auto storage = std::make_shared<TokenFile::Storage>();
  storage->map_bytes = static_cast<size_t>(st.st_size);
  if (storage->map_bytes > 0) {
    void* map = ::mmap(nullptr, storage->map_bytes, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (map == MAP_FAILED)
      throw Error(fmt::format("{} '{}' cannot be memory-mapped: {}", what, path, std::strerror(err)));
    storage->map = map;
    storage->path = path;
    storage->record_region();
  } else {
    ::close(fd);
  }
  return storage;
}

const unsigned char* bytes_of(const TokenFile::Storage& s) {
  return static_cast<const unsigned char*>(s.map);
}

}  // namespace

TokenFile TokenFile::open(const std::string& path, ShardFormat format, int64_t vocab_size,
                          int threads) {
  TokenFile file;
  file.path_ = path;
  std::string what;
  std::string hint;
  if (format == ShardFormat::kLmtrain) {
    what = "token shard";
    hint = "re-create it with `lmtrain data prepare`";
    const ShardInfo info = read_shard_header(path);  // checks magic, version, fields and size
    if (vocab_size > 0 && info.vocab_size > vocab_size)
      throw Error(fmt::format("token shard '{}' has vocab size {}, larger than model.vocab_size {}; "
                              "raise model.vocab_size or set it to 0 (from the data)",
                              path, info.vocab_size, vocab_size));
    file.storage_ = map_file(path, "token shard");
    file.tokens_ = bytes_of(*file.storage_) + kShardHeaderBytes;
    file.token_bytes_ = static_cast<int>(info.token_bytes);
    file.num_tokens_ = info.num_tokens;
    file.vocab_size_ = info.vocab_size;
  } else {
    const bool llmc = format == ShardFormat::kLlmc;
    what = llmc ? "llm.c shard" : "nanoGPT token file";
    hint = "set model.vocab_size to the tokenizer's size (50257 for GPT-2)";
    if (vocab_size <= 0)
      throw Error(fmt::format("{} '{}': the file does not record a vocabulary size; set "
                              "model.vocab_size (50257 for GPT-2 tokens)", what, path));
    file.storage_ = map_file(path, what.c_str());
    const unsigned char* bytes = bytes_of(*file.storage_);
    const size_t size = file.storage_->map_bytes;
    if (llmc) {
      if (size < kLlmcHeaderBytes) {
        const bool ours = size >= 8 && std::memcmp(bytes, "LMTSHARD", 8) == 0;
        throw Error(fmt::format("llm.c shard '{}' is {} bytes, shorter than its 1024-byte header ({})",
                                path, size, ours ? "it is an lmtrain shard: set data.format: lmtrain"
                                                 : "truncated?"));
      }
      const int32_t magic = get_i32(bytes), version = get_i32(bytes + 4);
      const int64_t num_tokens = get_i32(bytes + 8);
      if (magic != kLlmcMagic) {
        const bool ours = std::memcmp(bytes, "LMTSHARD", 8) == 0;
        throw Error(fmt::format("'{}' is not an llm.c shard: magic is {} (expected {}){}", path, magic,
                                kLlmcMagic, ours ? "; it is an lmtrain shard: set data.format: lmtrain" : ""));
      }
      if (version != 1)
        throw Error(fmt::format("llm.c shard '{}' has version {}; lmtrain reads version 1 (uint16 tokens)",
                                path, version));
      if (num_tokens < 0 || size != kLlmcHeaderBytes + 2 * static_cast<uint64_t>(num_tokens))
        throw Error(fmt::format("llm.c shard '{}' should be {} bytes (1024-byte header + {} tokens x 2) "
                                "but is {} ({})", path, kLlmcHeaderBytes + 2 * std::max<int64_t>(0, num_tokens),
                                num_tokens, size,
                                size < kLlmcHeaderBytes + 2 * static_cast<uint64_t>(std::max<int64_t>(0, num_tokens))
                                    ? "truncated?" : "extra bytes after the tokens"));
      file.tokens_ = bytes + kLlmcHeaderBytes;
      file.num_tokens_ = static_cast<uint64_t>(num_tokens);
    } else {
      if (size % 2 != 0)
        throw Error(fmt::format("nanoGPT token file '{}' has an odd size ({} bytes); it should hold "
                                "uint16 tokens (truncated?)", path, size));
      if (size >= 4 && get_i32(bytes) == kLlmcMagic)
        throw Error(fmt::format("'{}' starts with llm.c's magic 20240520: set data.format: llmc", path));
      if (size >= 8 && std::memcmp(bytes, "LMTSHARD", 8) == 0)
        throw Error(fmt::format("'{}' is an lmtrain shard: set data.format: lmtrain", path));
      file.tokens_ = bytes;
      file.num_tokens_ = size / 2;
    }
    file.token_bytes_ = 2;
    file.vocab_size_ = vocab_size;
  }
  const uint64_t bad = first_bad_token(file.tokens_, file.token_bytes_, file.num_tokens_,
                                       static_cast<uint64_t>(file.vocab_size_), threads);
  if (bad < file.num_tokens_)
    throw Error(fmt::format("{} '{}' is corrupt or from another tokenizer: the token at index {} is {} "
                            "but the vocabulary size is {} (ids must be below it); {}",
                            what, path, bad, token_at(file.tokens_, file.token_bytes_, bad),
                            file.vocab_size_, hint));
  return file;
}

TokenFile TokenFile::from_tokens(std::string name, std::vector<int32_t> tokens, int64_t vocab_size) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      throw Error(fmt::format("{}: token {} at index {} is outside [0, {})", name, tokens[i], i, vocab_size));
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(tokens);
  TokenFile file;
  file.path_ = std::move(name);
  file.tokens_ = reinterpret_cast<const unsigned char*>(storage->owned.data());
  file.token_bytes_ = 4;
  file.num_tokens_ = storage->owned.size();
  file.vocab_size_ = vocab_size;
  file.storage_ = std::move(storage);
  return file;
}

void TokenFile::read(uint64_t begin, size_t count, int32_t* out) const {
  if (begin > num_tokens_ || count > num_tokens_ - begin)
    throw Error(fmt::format("TokenFile::read: tokens [{}, {}) are outside '{}' ({} tokens)", begin,
                            begin + count, path_, num_tokens_));
  if (count == 0) return;  // an empty file has no mapping, and `out` may be null (empty vector)
  if (token_bytes_ == 4) {
    std::memcpy(out, tokens_ + begin * 4, count * 4);
    return;
  }
  const unsigned char* p = tokens_ + begin * 2;
  for (size_t i = 0; i < count; ++i) {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    out[i] = v;
  }
}

std::vector<int32_t> TokenFile::read_all() const {
  std::vector<int32_t> tokens(num_tokens_);
  read(0, tokens.size(), tokens.data());
  return tokens;
}

}  // namespace lmt::data
