#include "data/prepare.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/file_io.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace lmt::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kProgressMinBytes = 4 << 20;
constexpr size_t kEncodeChunkBytes = size_t{1} << 20;

// A one-line progress bar on stderr: "encoding  [#####     ] 12.6/25.2 MB  48.3 MB/s  ETA 0s".
// On a terminal it redraws in place; in a log file it prints a line per 10% instead of
// flooding the log with carriage returns.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total_bytes)
      : label_(std::move(label)), total_bytes_(total_bytes), start_(Clock::now()),
        is_terminal_(::isatty(fileno(stderr)) != 0) {}

  void update(int64_t done_bytes) {
    const auto now = Clock::now();
    const bool finished = done_bytes >= total_bytes_;
    if (is_terminal_) {
      if (!finished && now - last_draw_ < std::chrono::milliseconds(100)) return;
    } else {
      const int decile = static_cast<int>(10 * done_bytes / std::max<int64_t>(1, total_bytes_));
      if (decile <= last_decile_) return;
      last_decile_ = decile;
    }
    last_draw_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double megabytes_per_second = seconds > 0 ? done_bytes / 1e6 / seconds : 0.0;
    const double fraction = static_cast<double>(done_bytes) / std::max<int64_t>(1, total_bytes_);
    const int filled = static_cast<int>(fraction * 20);
    const double eta_seconds =
        megabytes_per_second > 0 ? (total_bytes_ - done_bytes) / 1e6 / megabytes_per_second : 0.0;
    fmt::print(stderr, "{}{} [{}{}] {:.1f}/{:.1f} MB  {:.1f} MB/s  ETA {:.0f}s{}",
               is_terminal_ ? "\r" : "", label_, std::string(filled, '#'),
               std::string(20 - filled, ' '), done_bytes / 1e6, total_bytes_ / 1e6,
               megabytes_per_second, eta_seconds, is_terminal_ && !finished ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_bytes_;
  Clock::time_point start_;
  Clock::time_point last_draw_{};
  int last_decile_ = -1;
  bool is_terminal_;
};

void validate(const PrepareOptions& options) {
  if (options.inputs.empty()) {
    throw Error("data prepare: no input files given; pass one or more text files");
  }
  for (const std::string& input : options.inputs) {
    std::error_code ec;
    const fs::file_status status = fs::status(input, ec);
    if (!fs::exists(status)) {
      throw Error(fmt::format("data prepare: input file '{}' does not exist; check the path", input));
    }
    if (fs::is_directory(status)) {
      throw Error(fmt::format("data prepare: input '{}' is a directory; pass the text files in it", input));
    }
  }
  if (options.tokenizer != "char" && options.tokenizer != "byte") {
    throw Error(fmt::format("data prepare: unknown tokenizer '{}'; use \"char\" or \"byte\"",
                            options.tokenizer));
  }
  if (options.out_dir.empty()) {
    throw Error("data prepare: no output directory given; pass one for train.bin, val.bin and tokenizer.json");
  }
  if (!(options.val_fraction >= 0.0 && options.val_fraction <= 0.5)) {
    throw Error(fmt::format("data prepare: val_fraction {} is outside [0, 0.5]; use e.g. 0.1 to "
                            "hold out the last 10% of the text", options.val_fraction));
  }
}

// Largest end <= limit that does not split a UTF-8 sequence, so chunked char encoding sees
// whole characters. (Text is already validated, so a lead byte is at most 3 bytes back.)
size_t chunk_end(std::string_view text, size_t limit) {
  if (limit >= text.size()) return text.size();
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return end;
}

// Temporary outputs that are removed unless released (every path out of prepare_data that
// does not reach the final renames).
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& path : paths) remove_quietly(path);
  }
};

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& options) {
  validate(options);

  std::string text;
  for (const std::string& input : options.inputs) {
    std::string bytes = read_file_bytes(input, "data prepare: input file");
    if (options.tokenizer == "char") {
      // Check each file on its own so the error names the file and an offset inside it.
      if (auto offset = find_invalid_utf8(bytes)) {
        throw Error(fmt::format(
            "data prepare: input file '{}' is not valid UTF-8 at byte offset {}; the char "
            "tokenizer needs UTF-8 text: convert it (e.g. `iconv -f latin1 -t utf-8`) or use "
            "`--tokenizer byte`", input, *offset));
      }
    }
    text += bytes;
  }
  if (text.empty()) {
    throw Error("data prepare: the input files are empty; nothing to tokenize");
  }

  const Tokenizer tokenizer = options.tokenizer == "char" ? Tokenizer::build_char(text) : Tokenizer::byte();

  std::vector<int32_t> tokens;
  tokens.reserve(text.size());
  const auto total_bytes = static_cast<int64_t>(text.size());
  std::optional<ProgressBar> progress;
  if (options.progress && total_bytes > kProgressMinBytes) progress.emplace("encoding", total_bytes);
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = chunk_end(text, begin + kEncodeChunkBytes);
    const std::vector<int32_t> chunk = tokenizer.encode(std::string_view(text).substr(begin, end - begin));
    tokens.insert(tokens.end(), chunk.begin(), chunk.end());
    begin = end;
    if (progress) progress->update(static_cast<int64_t>(begin));
  }

  const auto num_tokens = static_cast<int64_t>(tokens.size());
  const auto train_tokens = static_cast<int64_t>(std::floor(num_tokens * (1.0 - options.val_fraction)));
  if (train_tokens < 2) {
    throw Error(fmt::format("data prepare: the inputs give only {} training tokens; a language "
                            "model needs at least 2 (one input, one target) and far more in "
                            "practice; add text", train_tokens));
  }
  const std::span<const int32_t> all_tokens(tokens);

  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec || !fs::is_directory(options.out_dir)) {
    throw Error(fmt::format("data prepare: cannot create output directory '{}': {}", options.out_dir,
                            ec ? ec.message() : "a file with that name exists"));
  }
  const fs::path out_dir(options.out_dir);
  const std::vector<std::string> final_paths = {(out_dir / "train.bin").string(),
                                                (out_dir / "val.bin").string(),
                                                (out_dir / "tokenizer.json").string()};
  std::vector<std::string> temp_paths;
  for (const std::string& path : final_paths) temp_paths.push_back(path + ".tmp");

  // Each temporary file joins the cleanup list only once written: a file that fails midway is
  // removed by its writer, and a name we never created (say, a directory in the way) is not ours.
  TempFiles written;
  detail::write_shard_file(temp_paths[0], all_tokens.first(train_tokens), tokenizer.vocab_size());
  written.paths.push_back(temp_paths[0]);
  detail::write_shard_file(temp_paths[1], all_tokens.subspan(train_tokens), tokenizer.vocab_size());
  written.paths.push_back(temp_paths[1]);
  {
    OutputFile out(temp_paths[2]);
    out.write(tokenizer.to_json());
    out.finish();
  }
  written.paths.push_back(temp_paths[2]);
  // Publish only now that all three files are complete on disk.
  for (size_t i = 0; i < final_paths.size(); ++i) rename_file(temp_paths[i], final_paths[i]);
  written.paths.clear();

  PrepareSummary summary;
  summary.num_bytes = total_bytes;
  summary.train_tokens = train_tokens;
  summary.val_tokens = num_tokens - train_tokens;
  summary.vocab_size = tokenizer.vocab_size();
  summary.files_written = final_paths;
  return summary;
}

}  // namespace lmt::data
