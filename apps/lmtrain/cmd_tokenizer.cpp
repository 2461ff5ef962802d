// lmtrain data tokenizer train --input FILE... --vocab-size N --out tok.json [--threads N] [--quiet]
// lmtrain data tokenizer encode --tokenizer tok.json [--threads N] TEXTFILE   (ids on stdout)
// lmtrain data tokenizer decode --tokenizer tok.json IDSFILE                  (text on stdout)
//
// --tokenizer takes an lmtrain tokenizer.json or GPT-2's vocab.json with merges.txt beside it.
// A file named "-" is standard input.
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"
#include "data/tokenizer.h"

namespace lmt::app {

namespace {

struct TrainFlags {
  std::vector<std::string> inputs;
  int vocab_size = 0;
  std::string out;
  int threads = 0;
  bool quiet = false;
};

struct CodecFlags {
  std::string tokenizer;
  std::string file;
  int threads = 0;
  bool quiet = false;
};

// Training progress on stderr. On a terminal one line redrawn in place; in a log a line per 10%.
class TrainProgress {
 public:
  TrainProgress() : start_(Clock::now()), is_terminal_(::isatty(fileno(stderr)) != 0) {}

  void operator()(const data::BpeTrainProgress& progress) {
    const bool counting = progress.phase == data::BpeTrainProgress::Phase::kCounting;
    const bool finished = progress.done >= progress.total;
    if (counting != was_counting_) last_decile_ = -1;
    was_counting_ = counting;
    if (!should_draw(progress, finished)) return;
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const std::string detail =
        counting ? fmt::format("{:.1f}/{:.1f} MB of text, {:.1f} MB/s", progress.done / 1e6, progress.total / 1e6,
                               seconds > 0 ? progress.done / 1e6 / seconds : 0.0)
                 : fmt::format("{}/{} tokens learned", progress.done, progress.total);
    pending_line_ = is_terminal_ && !finished;
    fmt::print(stderr, "{}{} {}{}", is_terminal_ ? "\r" : "", counting ? "counting" : "merging ", detail,
               pending_line_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }

  // Ends a line left open on the terminal (merging can stop short of its total).
  void finish() {
    if (pending_line_) fmt::print(stderr, "\n");
    pending_line_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;

  bool should_draw(const data::BpeTrainProgress& progress, bool finished) {
    const auto now = Clock::now();
    if (is_terminal_) {
      if (!finished && now - last_draw_ < std::chrono::milliseconds(100)) return false;
    } else {
      const int decile = static_cast<int>(10 * progress.done / std::max<int64_t>(1, progress.total));
      if (decile <= last_decile_) return false;
      last_decile_ = decile;
    }
    last_draw_ = now;
    return true;
  }

  Clock::time_point start_;
  Clock::time_point last_draw_{};
  int last_decile_ = -1;
  bool was_counting_ = true;
  bool pending_line_ = false;
  bool is_terminal_;
};

void check_threads(int threads) {
  if (threads < 0) throw Error(fmt::format("--threads {} is negative; pass 0 (all cores) or a positive count", threads));
}

// The output is written last, atomically; a missing folder would only fail after training.
void check_output_path(const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent)) {
    throw Error(fmt::format("data tokenizer train: the folder of --out '{}' does not exist; create it first", out));
  }
  if (fs::is_directory(out)) {
    throw Error(fmt::format("data tokenizer train: --out '{}' is a directory; pass a file name such as "
                            "'{}/tokenizer.json'", out, out));
  }
}

int run_train(const TrainFlags& flags) {
  check_threads(flags.threads);
  check_output_path(flags.out);
  data::BpeTrainOptions options;
  options.vocab_size = flags.vocab_size;
  options.num_threads = flags.threads;
  TrainProgress progress;
  if (!flags.quiet) options.progress = [&progress](const data::BpeTrainProgress& p) { progress(p); };
  data::BpeTrainSummary summary;
  const data::Tokenizer tokenizer = data::Tokenizer::train_bpe(flags.inputs, options, &summary);
  progress.finish();
  tokenizer.save(flags.out);
  const double seconds = summary.count_seconds + summary.merge_seconds;
  fmt::print("trained BPE tokenizer: vocab {} ({} merges, {} special token{}) from {} of text in {:.2f}s "
             "(counting {:.2f}s = {:.1f} MB/s, merging {:.2f}s)\n",
             summary.vocab_size, summary.num_merges, options.special_tokens.size(),
             options.special_tokens.size() == 1 ? "" : "s", human_bytes(static_cast<double>(summary.num_input_bytes)),
             seconds, summary.count_seconds,
             summary.count_seconds > 0 ? summary.num_input_bytes / 1e6 / summary.count_seconds : 0.0,
             summary.merge_seconds);
  if (summary.ran_out_of_pairs) {
    fmt::print("note: the text ran out of pairs to merge, so the vocabulary has {} tokens instead of the {} "
               "asked for; train on more text for a larger one\n", summary.vocab_size, flags.vocab_size);
  }
  fmt::print("  wrote {}\n", flags.out);
  return 0;
}

std::string read_input(const std::string& path, std::string_view what) {
  if (path != "-") return read_file_bytes(path, what);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

int run_encode(const CodecFlags& flags) {
  check_threads(flags.threads);
  const data::Tokenizer tokenizer = data::Tokenizer::load(flags.tokenizer);
  const std::string text = read_input(flags.file, "text file");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer.encode_parallel(text, flags.threads);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::memory_buffer out;
  for (size_t i = 0; i < ids.size(); ++i) fmt::format_to(std::back_inserter(out), "{}{}", i == 0 ? "" : " ", ids[i]);
  out.push_back('\n');
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);  // the summary on stderr comes after the ids, not inside them
  if (!flags.quiet) {
    fmt::print(stderr, "encoded {} into {} tokens ({:.3f} tokens/byte) in {:.3f}s = {:.1f} MB/s\n",
               human_bytes(static_cast<double>(text.size())), with_commas(static_cast<int64_t>(ids.size())),
               text.empty() ? 0.0 : static_cast<double>(ids.size()) / static_cast<double>(text.size()), seconds,
               seconds > 0 ? text.size() / 1e6 / seconds : 0.0);
  }
  return 0;
}

std::vector<int32_t> parse_ids(std::string_view text, const std::string& path) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (true) {
    pos = text.find_first_not_of(" \t\r\n,", pos);
    if (pos == std::string_view::npos) return ids;
    const size_t end = std::min(text.find_first_of(" \t\r\n,", pos), text.size());
    const std::string_view word = text.substr(pos, end - pos);
    int32_t id = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || ptr != word.data() + word.size()) {
      throw Error(fmt::format("data tokenizer decode: '{}' (id number {} in '{}') is not a token id; the file "
                              "must hold integers separated by spaces, commas or newlines",
                              word, ids.size(), path));
    }
    ids.push_back(id);
    pos = end;
  }
}

int run_decode(const CodecFlags& flags) {
  const data::Tokenizer tokenizer = data::Tokenizer::load(flags.tokenizer);
  const std::vector<int32_t> ids = parse_ids(read_input(flags.file, "token id file"), flags.file);
  const std::string text = tokenizer.decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

CLI::App* add_codec_command(CLI::App& tokenizer, const std::string& name, const std::string& help,
                            const std::string& file_help, CodecFlags& flags) {
  auto* command = tokenizer.add_subcommand(name, help);
  command->add_option("--tokenizer", flags.tokenizer, "tokenizer.json, or GPT-2's vocab.json with merges.txt beside it")
      ->required();
  command->add_option("file", flags.file, file_help)->required();
  return command;
}

}  // namespace

Action add_tokenizer_command(CLI::App& data) {
  auto* tokenizer = data.add_subcommand("tokenizer", "train a BPE tokenizer, encode and decode with one");
  tokenizer->require_subcommand(1);

  auto train_flags = std::make_shared<TrainFlags>();
  auto* train = tokenizer->add_subcommand("train", "learn a byte-level BPE tokenizer (GPT-2 style) from text files");
  train->add_option("--input", train_flags->inputs, "text file(s), read one after the other")->required();
  train->add_option("--vocab-size", train_flags->vocab_size,
                    "tokens in all: 256 bytes + merges + 1 special (<|endoftext|>); GPT-2 has 50257")
      ->required();
  train->add_option("--out", train_flags->out, "tokenizer file to write, e.g. tokenizer.json")->required();
  train->add_option("--threads", train_flags->threads, "threads for counting (default 0: all cores); same result for any");
  train->add_flag("--quiet", train_flags->quiet, "no progress on stderr");

  auto encode_flags = std::make_shared<CodecFlags>();
  auto* encode = add_codec_command(*tokenizer, "encode", "print the token ids of a text file, separated by spaces",
                                   "text file, or - for standard input", *encode_flags);
  encode->add_option("--threads", encode_flags->threads, "threads (default 0: all cores); same result for any");
  encode->add_flag("--quiet", encode_flags->quiet, "no summary (size, tokens, speed) on stderr");
  auto decode_flags = std::make_shared<CodecFlags>();
  auto* decode = add_codec_command(*tokenizer, "decode", "print the text of token ids (as `encode` prints them)",
                                   "file of token ids, or - for standard input", *decode_flags);

  return [=] {
    if (train->parsed()) return run_train(*train_flags);
    if (encode->parsed()) return run_encode(*encode_flags);
    if (decode->parsed()) return run_decode(*decode_flags);
    return kUserErrorExitCode;
  };
}

}  // namespace lmt::app
