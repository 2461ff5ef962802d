#include "data/prepare.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "lmt_build_info.h"

namespace lmt::data {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kProgressMinBytes = 4 << 20;
// Documents are encoded in batches of about this much text: enough to keep every thread busy,
// small enough that the batch's tokens stay a minor share of memory.
constexpr size_t kBatchBytes = size_t{16} << 20;
constexpr const char* kTempDirName = ".prepare.partial";

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
    const int filled = std::min(20, static_cast<int>(fraction * 20));
    const double eta_seconds =
        megabytes_per_second > 0 ? (total_bytes_ - done_bytes) / 1e6 / megabytes_per_second : 0.0;
    fmt::print(stderr, "{}{} [{}{}] {:.1f}/{:.1f} MB  {:.1f} MB/s  ETA {:.0f}s{}",
               is_terminal_ ? "\r" : "", label_, std::string(filled, '#'),
               std::string(20 - filled, ' '), done_bytes / 1e6, total_bytes_ / 1e6,
               megabytes_per_second, eta_seconds, is_terminal_ && !finished ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  int64_t total_bytes_;
  Clock::time_point start_;
  Clock::time_point last_draw_{};
  int last_decile_ = -1;
  bool is_terminal_;
};

bool is_jsonl(const std::string& path) { return fs::path(path).extension() == ".jsonl"; }

void validate(const PrepareOptions& options) {
  if (options.inputs.empty()) throw Error("data prepare: no input files given; pass one or more text files");
  const bool named_tokenizer = options.tokenizer == "char" || options.tokenizer == "byte";
  if (!named_tokenizer && !fs::is_regular_file(options.tokenizer))
    throw Error(fmt::format("data prepare: --tokenizer '{}' is neither \"char\", \"byte\" nor an existing "
                            "tokenizer file (tok.json from `lmtrain data tokenizer train`, or GPT-2's "
                            "vocab.json with merges.txt beside it)", options.tokenizer));
  if (options.out_dir.empty()) throw Error("data prepare: no output directory given (--out)");
  if (!(options.val_fraction >= 0.0 && options.val_fraction <= 0.5))
    throw Error(fmt::format("data prepare: --val-fraction {} is outside [0, 0.5]; use e.g. 0.1 to "
                            "hold out 10% for validation", options.val_fraction));
  if (options.split != "auto" && options.split != "documents" && options.split != "tail")
    throw Error(fmt::format("data prepare: --split '{}' must be auto, documents or tail", options.split));
  if (options.shard_tokens < 2)
    throw Error(fmt::format("data prepare: --shard-tokens {} must be at least 2 (100000000 is typical)",
                            options.shard_tokens));
  if (options.threads < 0) throw Error(fmt::format("data prepare: --threads {} must be >= 0", options.threads));
}

// Every input file, globs expanded, each checked to exist and to be a file.
std::vector<std::string> input_files(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    for (std::string& path : expand_glob(pattern, "data prepare: --input")) {
      std::error_code ec;
      const fs::file_status status = fs::status(path, ec);
      if (!fs::exists(status))
        throw Error(fmt::format("data prepare: input file '{}' does not exist; check the path", path));
      if (fs::is_directory(status))
        throw Error(fmt::format("data prepare: input '{}' is a directory; pass the files in it, e.g. '{}/*.txt'",
                                path, path));
      files.push_back(std::move(path));
    }
  }
  return files;
}

// One input file split into documents (views into `bytes` or into `owned` for JSON lines).
struct FileDocuments {
  std::string bytes;
  std::vector<std::string> owned;
  std::vector<std::string_view> docs;
};

FileDocuments read_documents(const std::string& path, const PrepareOptions& options) {
  FileDocuments out;
  out.bytes = read_file_bytes(path, "data prepare: input file");
  const std::string_view text(out.bytes);
  if (is_jsonl(path)) {
    size_t line_number = 0;
    for (size_t begin = 0; begin < text.size();) {
      size_t end = text.find('\n', begin);
      if (end == std::string_view::npos) end = text.size();
      ++line_number;
      const std::string_view line = text.substr(begin, end - begin);
      begin = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(fmt::format("data prepare: {}:{}: not valid JSON ({}); a .jsonl file holds one JSON "
                                "object per line", path, line_number, e.what()));
      }
      if (!record.is_object() || !record.contains(options.json_key) || !record[options.json_key].is_string())
        throw Error(fmt::format("data prepare: {}:{}: no string field \"{}\"; pass the name of the text "
                                "field with --json-key", path, line_number, options.json_key));
      out.owned.push_back(record[options.json_key].get<std::string>());
    }
    for (const auto& doc : out.owned)
      if (!doc.empty()) out.docs.push_back(doc);
    return out;
  }
  if (options.doc_separator.empty()) {
    if (!text.empty()) out.docs.push_back(text);
    return out;
  }
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find(options.doc_separator, begin);
    if (end == std::string_view::npos) end = text.size();
    if (end > begin) out.docs.push_back(text.substr(begin, end - begin));
    begin = end + options.doc_separator.size();
  }
  return out;
}

// Accumulates one split's tokens and writes a shard whenever shard_tokens are buffered.
class ShardSetWriter {
 public:
  ShardSetWriter(std::string prefix, fs::path temp_dir, int64_t shard_tokens, int64_t vocab_size)
      : prefix_(std::move(prefix)), temp_dir_(std::move(temp_dir)), shard_tokens_(shard_tokens),
        vocab_size_(vocab_size) {}

  void append(std::span<const int32_t> tokens) {
    while (!tokens.empty()) {
      const size_t room = static_cast<size_t>(shard_tokens_) - buffer_.size();
      const size_t take = std::min(room, tokens.size());
      buffer_.insert(buffer_.end(), tokens.begin(), tokens.begin() + static_cast<long>(take));
      tokens = tokens.subspan(take);
      if (buffer_.size() == static_cast<size_t>(shard_tokens_)) flush();
    }
  }
  void finish() {
    if (!buffer_.empty()) flush();
  }
  int64_t tokens() const { return total_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  void flush() {
    const std::string name = fmt::format("{}_{:06d}.bin", prefix_, names_.size());
    detail::write_shard_file((temp_dir_ / name).string(), buffer_, vocab_size_);
    names_.push_back(name);
    total_ += static_cast<int64_t>(buffer_.size());
    buffer_.clear();
  }

  std::string prefix_;
  fs::path temp_dir_;
  int64_t shard_tokens_;
  int64_t vocab_size_;
  std::vector<int32_t> buffer_;
  std::vector<std::string> names_;
  int64_t total_ = 0;
};

// Removes the temporary folder unless the outputs were published.
struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

Tokenizer make_tokenizer(const PrepareOptions& options, const std::vector<std::string>& files) {
  if (options.tokenizer == "byte") return Tokenizer::byte();
  if (options.tokenizer != "char") return Tokenizer::load(options.tokenizer);
  // char: the vocabulary is every character of the inputs, so they are read once up front.
  std::string text;
  for (const std::string& file : files) {
    const FileDocuments docs = read_documents(file, options);
    for (std::string_view doc : docs.docs) {
      // Each document on its own, so the error names the file and an offset inside it.
      if (auto offset = find_invalid_utf8(doc)) {
        const std::string where =
            is_jsonl(file) ? fmt::format("a document's text at byte {}", *offset)
                           : fmt::format("byte offset {}", *offset + static_cast<size_t>(doc.data() - docs.bytes.data()));
        throw Error(fmt::format("data prepare: input file '{}' is not valid UTF-8 at {}; the char tokenizer "
                                "needs UTF-8 text: convert it (e.g. `iconv -f latin1 -t utf-8`) or use "
                                "`--tokenizer byte`", file, where));
      }
      text.append(doc);
    }
  }
  if (text.empty()) throw Error("data prepare: the input files are empty; nothing to tokenize");
  return Tokenizer::build_char(text);
}

// Encodes a batch of documents on `threads` threads: one large document is split by the
// tokenizer itself; several are handed out one per thread.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tokenizer, std::span<const std::string_view> docs,
                                               int threads) {
  if (docs.size() == 1) return {tokenizer.encode_parallel(docs[0], threads)};
  return tokenizer.encode_batch(docs, threads);
}

// Whether document `index` goes to validation: exactly floor(n * ppm / 1e6) of the first n
// documents do, spread evenly (integer arithmetic, so no rounding surprises).
bool is_val_document(int64_t index, int64_t val_ppm) {
  return ((index + 1) * val_ppm) / 1'000'000 > (index * val_ppm) / 1'000'000;
}

// Moves the finished outputs from the temporary folder into out_dir, then removes shards of an
// earlier run that this run did not replace (a glob must not pick them up).
void publish(const fs::path& temp_dir, const fs::path& out_dir, const std::vector<std::string>& names) {
  for (const std::string& name : names) rename_file((temp_dir / name).string(), (out_dir / name).string());
  const std::regex ours(R"((train|val)_\d{6}\.bin)");
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, ours) && std::find(names.begin(), names.end(), name) == names.end())
      fs::remove(entry.path());
  }
  sync_directory(out_dir.string());
}

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& options) {
  validate(options);
  const auto start = Clock::now();
  const std::vector<std::string> files = input_files(options.inputs);
  // Before a tokenizer is trained: an output folder that cannot be written is known now.
  check_directory_creatable(options.out_dir, "data prepare: output directory");
  const Tokenizer tokenizer = make_tokenizer(options, files);
  const std::optional<int32_t> eot = tokenizer.eot_id();

  int64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += static_cast<int64_t>(fs::file_size(f));
  const bool single_text = files.size() == 1 && !is_jsonl(files[0]) && options.doc_separator.empty();
  const std::string split = options.split != "auto" ? options.split : single_text ? "tail" : "documents";

  create_directories_checked(options.out_dir, "data prepare: output directory");
  const fs::path out_dir(options.out_dir);
  TempDir temp{out_dir / kTempDirName};
  std::error_code ec;
  fs::remove_all(temp.path, ec);  // left by a run that was killed
  create_directories_checked(temp.path.string(), "data prepare: the scratch folder in the output directory");

  const int64_t vocab_size = tokenizer.vocab_size();
  ShardSetWriter train("train", temp.path, options.shard_tokens, vocab_size);
  ShardSetWriter val("val", temp.path, options.shard_tokens, vocab_size);
  std::vector<int32_t> tail_tokens;  // split == tail: everything, divided at the end
  const auto val_ppm = static_cast<int64_t>(std::llround(options.val_fraction * 1e6));

  PrepareSummary summary;
  summary.split = split;
  summary.end_of_text = eot.has_value();
  std::optional<ProgressBar> progress;
  if (options.progress && total_bytes > kProgressMinBytes) progress.emplace("encoding", total_bytes);
  int64_t done_bytes = 0;
  for (const std::string& file : files) {
    const FileDocuments docs = read_documents(file, options);
    for (size_t first = 0; first < docs.docs.size();) {
      size_t last = first, batch_bytes = 0;
      while (last < docs.docs.size() && (last == first || batch_bytes < kBatchBytes)) batch_bytes += docs.docs[last++].size();
      const auto batch = std::span(docs.docs).subspan(first, last - first);
      const auto encoded = encode_batch(tokenizer, batch, options.threads);
      for (const auto& tokens : encoded) {
        std::vector<int32_t> with_eot;
        std::span<const int32_t> doc_tokens(tokens);
        if (eot) {
          with_eot.reserve(tokens.size() + 1);
          with_eot.push_back(*eot);
          with_eot.insert(with_eot.end(), tokens.begin(), tokens.end());
          doc_tokens = with_eot;
        }
        if (split == "tail") {
          tail_tokens.insert(tail_tokens.end(), doc_tokens.begin(), doc_tokens.end());
        } else if (is_val_document(summary.documents, val_ppm)) {
          val.append(doc_tokens);
          ++summary.val_documents;
        } else {
          train.append(doc_tokens);
        }
        ++summary.documents;
      }
      first = last;
    }
    done_bytes += static_cast<int64_t>(docs.bytes.size());
    if (progress) progress->update(done_bytes);
  }
  if (summary.documents == 0) throw Error("data prepare: the input files are empty; nothing to tokenize");
  if (split == "tail") {
    const auto n = static_cast<int64_t>(tail_tokens.size());
    // As nanoGPT's shakespeare_char: the first int(n * 0.9) tokens train.
    const auto train_count = static_cast<int64_t>(std::floor(static_cast<double>(n) * (1.0 - options.val_fraction)));
    train.append(std::span(tail_tokens).first(static_cast<size_t>(train_count)));
    val.append(std::span(tail_tokens).subspan(static_cast<size_t>(train_count)));
  }
  train.finish();
  val.finish();
  if (train.tokens() < 2)
    throw Error(fmt::format("data prepare: the inputs give only {} training tokens; a language model needs "
                            "at least 2 (one input, one target) and far more in practice; add text",
                            train.tokens()));

  std::vector<std::string> names = train.names();
  names.insert(names.end(), val.names().begin(), val.names().end());
  tokenizer.save((temp.path / "tokenizer.json").string());
  names.push_back("tokenizer.json");
  summary.num_bytes = total_bytes;
  summary.train_tokens = train.tokens();
  summary.val_tokens = val.tokens();
  summary.vocab_size = tokenizer.vocab_size();
  for (const auto& n : train.names()) summary.train_shards.push_back((out_dir / n).string());
  for (const auto& n : val.names()) summary.val_shards.push_back((out_dir / n).string());
  const nlohmann::json record = {
      {"format", "lmtrain-prepare"},
      {"lmtrain_version", LMTRAIN_VERSION},
      {"inputs", files},
      {"tokenizer", {{"option", options.tokenizer}, {"kind", tokenizer.kind()}, {"vocab_size", tokenizer.vocab_size()}}},
      {"end_of_text", eot ? nlohmann::json(*eot) : nlohmann::json()},
      {"split", split},
      {"val_fraction", options.val_fraction},
      {"documents", summary.documents},
      {"val_documents", summary.val_documents},
      {"input_bytes", total_bytes},
      {"train", {{"tokens", train.tokens()}, {"shards", train.names()}}},
      {"val", {{"tokens", val.tokens()}, {"shards", val.names()}}}};
  write_file_atomic((temp.path / "prepare.json").string(), record.dump(1) + "\n");
  names.push_back("prepare.json");
  publish(temp.path, out_dir, names);
  for (const auto& n : names) summary.files_written.push_back((out_dir / n).string());
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace lmt::data
