// BPE training: counting pieces (multi-threaded) and learning merges incrementally.
//
// Merging a pair touches only the pieces that contain it, so each merge costs time in
// proportion to those pieces, not to the whole vocabulary of pieces: pair counts and a
// pair -> pieces index are kept up to date, and a max-heap with lazily skipped stale entries
// yields the next pair.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "core/error.h"
#include "core/file_io.h"
#include "data/bpe.h"
#include "data/parallel_for.h"
#include "data/pretokenize.h"
#include "core/utf8.h"

namespace lmt::data {

namespace {

constexpr size_t kMinCountChunkBytes = size_t{256} << 10;

using ViewCounts = std::unordered_map<std::string_view, int64_t>;

void add_view_counts(const ViewCounts& from, PieceCounts& counts) {
  for (const auto& [piece, count] : from) {
    const auto it = counts.find(piece);
    if (it != counts.end()) {
      it->second += count;
    } else {
      counts.emplace(std::string(piece), count);
    }
  }
}

}  // namespace

void check_input_file(const std::string& path) { check_regular_file(path, "input file"); }

void count_pieces(std::string_view text, int num_threads, PieceCounts& counts) {
  const int max_threads = resolve_num_threads(num_threads, text.size() / kMinCountChunkBytes);
  const size_t target_bytes = std::max(kMinCountChunkBytes, text.size() / (4 * static_cast<size_t>(max_threads)));
  const std::vector<std::string_view> chunks = split_at_safe_points(text, target_bytes);
  const int num_workers = resolve_num_threads(max_threads, chunks.size());
  std::vector<ViewCounts> worker_counts(num_workers);
  parallel_for(chunks.size(), num_workers, [&](size_t chunk, int worker) {
    ViewCounts& local = worker_counts[worker];
    for_each_gpt2_piece(chunks[chunk], [&](std::string_view piece) { ++local[piece]; });
  });
  for (const ViewCounts& local : worker_counts) add_view_counts(local, counts);
}

void count_file_pieces(const std::string& path, int num_threads, PieceCounts& counts,
                       const std::function<void(int64_t)>& on_progress, size_t max_block_bytes) {
  check_input_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("input file '{}' cannot be opened; check its permissions", path));
  // A small file is read in one go, without zero-filling a whole block for it.
  std::error_code ec;
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  const size_t max_block = std::max<size_t>(max_block_bytes, 1);
  const size_t block_bytes = ec ? max_block : static_cast<size_t>(std::min<uintmax_t>(file_size + 1, max_block));
  std::string buffer;
  int64_t done = 0;
  while (true) {
    const size_t old_size = buffer.size();
    buffer.resize(old_size + block_bytes);
    in.read(buffer.data() + old_size, static_cast<std::streamsize>(block_bytes));
    buffer.resize(old_size + static_cast<size_t>(in.gcount()));
    if (in.bad()) throw Error(fmt::format("read error in input file '{}' after {} bytes", path, done + buffer.size()));
    const bool at_end = in.eof();
    // Pieces must not be cut: count up to the last safe split point and keep the rest. Without
    // one (no suitable newline in the whole buffer) read on before counting.
    const size_t cut = at_end ? buffer.size() : last_safe_split_point(buffer);
    if (cut > 0) {
      count_pieces(std::string_view(buffer).substr(0, cut), num_threads, counts);
      buffer.erase(0, cut);
      done += static_cast<int64_t>(cut);
      if (on_progress) on_progress(done);
    }
    if (at_end) return;
  }
}

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(uint64_t pair) { return static_cast<int32_t>(pair >> 32); }
int32_t right_of(uint64_t pair) { return static_cast<int32_t>(pair & 0xFFFFFFFFu); }

class MergeLearner {
 public:
  explicit MergeLearner(const PieceCounts& counts);

  // Merges until there are `target_num_tokens` tokens; false if the pairs ran out first.
  // Calls on_merge(tokens learned so far) after each merge.
  bool run(int target_num_tokens, const std::function<void(int64_t)>& on_merge);

  std::vector<std::string>& tokens() { return tokens_; }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

 private:
  struct Word {
    std::vector<int32_t> ids;
    int64_t count = 0;
  };
  struct HeapEntry {
    int64_t count = 0;
    uint64_t pair = 0;
  };

  // Heap order: higher count first, then the smaller (left bytes, right bytes).
  bool lower_priority(const HeapEntry& a, const HeapEntry& b) const;
  auto heap_order() const {
    return [this](const HeapEntry& a, const HeapEntry& b) { return lower_priority(a, b); };
  }
  void push(uint64_t pair, int64_t count);
  std::optional<uint64_t> pop_best();
  void merge(uint64_t pair);
  bool merge_in_word(Word& word, int32_t left, int32_t right, int32_t merged);

  std::vector<std::string> tokens_;
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words_;  // may hold repeats and stale words
  std::vector<HeapEntry> heap_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::unordered_map<uint64_t, int64_t> deltas_;  // scratch for merge()
  std::vector<int32_t> old_ids_;                  // scratch for merge()
};

MergeLearner::MergeLearner(const PieceCounts& counts) {
  for (int byte = 0; byte < 256; ++byte) tokens_.emplace_back(1, static_cast<char>(byte));
  for (const auto& [piece, count] : counts) {
    if (piece.size() < 2) continue;  // no pairs
    Word word{{}, count};
    for (char c : piece) word.ids.push_back(static_cast<unsigned char>(c));
    words_.push_back(std::move(word));
  }
  for (size_t w = 0; w < words_.size(); ++w) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.ids.size(); ++i) {
      const uint64_t pair = pair_key(word.ids[i], word.ids[i + 1]);
      pair_counts_[pair] += word.count;
      pair_words_[pair].push_back(static_cast<int32_t>(w));
    }
  }
  for (const auto& [pair, count] : pair_counts_) heap_.push_back({count, pair});
  std::make_heap(heap_.begin(), heap_.end(), heap_order());
}

bool MergeLearner::lower_priority(const HeapEntry& a, const HeapEntry& b) const {
  if (a.count != b.count) return a.count < b.count;
  // Ties go to the pair whose bytes sort first, never to hash-map order. std::string compares
  // bytes as unsigned char.
  const int left = tokens_[left_of(a.pair)].compare(tokens_[left_of(b.pair)]);
  if (left != 0) return left > 0;
  return tokens_[right_of(a.pair)].compare(tokens_[right_of(b.pair)]) > 0;
}

void MergeLearner::push(uint64_t pair, int64_t count) {
  heap_.push_back({count, pair});
  std::push_heap(heap_.begin(), heap_.end(), heap_order());
}

// An entry is current only if its count is the pair's count now; every change of a count
// pushes a new entry, so the current one is always in the heap.
std::optional<uint64_t> MergeLearner::pop_best() {
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), heap_order());
    const HeapEntry top = heap_.back();
    heap_.pop_back();
    const auto it = pair_counts_.find(top.pair);
    if (it != pair_counts_.end() && it->second == top.count) return top.pair;
  }
  return std::nullopt;
}

// Left to right, non-overlapping, like encoding. Returns whether anything changed.
bool MergeLearner::merge_in_word(Word& word, int32_t left, int32_t right, int32_t merged) {
  std::vector<int32_t>& ids = word.ids;
  size_t out = 0;
  for (size_t i = 0; i < ids.size();) {
    if (i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right) {
      ids[out++] = merged;
      i += 2;
    } else {
      ids[out++] = ids[i++];
    }
  }
  const bool changed = out != ids.size();
  ids.resize(out);
  return changed;
}

// Every merge makes a token with new bytes, and no pair is merged twice. Within a piece, a span
// whose two end boundaries survive until time t is split at t exactly as the span alone would
// be (merges crossing its ends would have removed those boundaries), and boundaries only ever
// disappear. So if the bytes s became one token at time r, a later adjacency u|v spelling s
// is impossible: that span alone is already one token. The BpeModel built from the result
// checks both properties again.
void MergeLearner::merge(uint64_t pair) {
  const int32_t left = left_of(pair), right = right_of(pair);
  const auto merged = static_cast<int32_t>(tokens_.size());
  tokens_.push_back(tokens_[left] + tokens_[right]);
  merges_.emplace_back(left, right);
  std::vector<int32_t> word_list = std::move(pair_words_[pair]);
  pair_words_.erase(pair);
  pair_counts_.erase(pair);
  std::sort(word_list.begin(), word_list.end());
  word_list.erase(std::unique(word_list.begin(), word_list.end()), word_list.end());
  deltas_.clear();
  for (const int32_t w : word_list) {
    Word& word = words_[w];
    old_ids_ = word.ids;
    if (!merge_in_word(word, left, right, merged)) continue;  // a stale index entry
    // Pieces are short, so recounting the whole piece is simpler than patching neighbours.
    for (size_t i = 0; i + 1 < old_ids_.size(); ++i) deltas_[pair_key(old_ids_[i], old_ids_[i + 1])] -= word.count;
    for (size_t i = 0; i + 1 < word.ids.size(); ++i) {
      const uint64_t new_pair = pair_key(word.ids[i], word.ids[i + 1]);
      deltas_[new_pair] += word.count;
      // Pairs without the merged token were already in this piece, so already indexed.
      if (word.ids[i] == merged || word.ids[i + 1] == merged) pair_words_[new_pair].push_back(w);
    }
  }
  for (const auto& [changed_pair, delta] : deltas_) {
    if (delta == 0 || changed_pair == pair) continue;
    int64_t& count = pair_counts_[changed_pair];
    count += delta;
    if (count > 0) {
      push(changed_pair, count);
    } else {
      pair_counts_.erase(changed_pair);
      pair_words_.erase(changed_pair);
    }
  }
}

bool MergeLearner::run(int target_num_tokens, const std::function<void(int64_t)>& on_merge) {
  while (static_cast<int>(tokens_.size()) < target_num_tokens) {
    const std::optional<uint64_t> best = pop_best();
    if (!best) return false;
    merge(*best);
    if (on_merge) on_merge(static_cast<int64_t>(tokens_.size()) - 256);
  }
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void check_bpe_train_options(const BpeTrainOptions& options) {
  std::unordered_set<std::string> seen;
  for (const std::string& name : options.special_tokens) {
    if (name.empty()) throw Error("BPE training: a special token name is empty");
    if (!is_valid_utf8(name)) throw Error("BPE training: special token names must be valid UTF-8");
    if (!seen.insert(name).second) throw Error(fmt::format("BPE training: special token '{}' is listed twice", name));
  }
  const int minimum = 256 + static_cast<int>(options.special_tokens.size());
  if (options.vocab_size < minimum) {
    throw Error(fmt::format("BPE vocab size {} is too small: the 256 byte tokens and {} special token(s) "
                            "alone need {}; ask for more (GPT-2 uses 50257)",
                            options.vocab_size, options.special_tokens.size(), minimum));
  }
}

BpeModel BpeModel::train(const PieceCounts& counts, const BpeTrainOptions& options, BpeTrainSummary* summary) {
  check_bpe_train_options(options);
  const auto start = std::chrono::steady_clock::now();
  const int target_num_tokens = options.vocab_size - static_cast<int>(options.special_tokens.size());
  const int64_t tokens_wanted = target_num_tokens - 256;
  const int64_t report_every = std::max<int64_t>(1, tokens_wanted / 100);
  int64_t last_reported = 0;
  const auto report = [&](int64_t learned) {
    if (options.progress && learned != last_reported) options.progress({BpeTrainProgress::Phase::kMerging, learned, tokens_wanted});
    last_reported = learned;
  };
  MergeLearner learner(counts);
  const bool complete = learner.run(target_num_tokens, [&](int64_t learned) {
    if (learned % report_every == 0) report(learned);
  });
  report(static_cast<int64_t>(learner.tokens().size()) - 256);  // the end, also when pairs ran out
  std::vector<std::string> tokens = std::move(learner.tokens());
  std::vector<SpecialToken> specials;
  for (const std::string& name : options.special_tokens) {
    specials.push_back({name, static_cast<int32_t>(tokens.size())});
    tokens.push_back(name);
  }
  BpeModel model(std::move(tokens), learner.merges(), std::move(specials), "trained");
  if (summary != nullptr) {
    summary->vocab_size = model.vocab_size();
    summary->num_merges = static_cast<int>(learner.merges().size());
    summary->num_distinct_pieces = static_cast<int64_t>(counts.size());
    summary->ran_out_of_pairs = !complete;
    summary->merge_seconds = seconds_since(start);
  }
  return model;
}

}  // namespace lmt::data
