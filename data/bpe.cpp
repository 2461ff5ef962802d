// BpeModel: table checks, encoding and decoding. Training is in bpe_train.cpp; the GPT-2 files
// and the JSON form are in bpe_io.cpp.
#include "data/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <queue>

#include "core/error.h"
#include "data/parallel_for.h"
#include "data/pretokenize.h"

namespace lmt::data {

namespace {

// Pieces up to this long are memoized during one encode call; longer ones are rare and would
// only fill the cache.
constexpr size_t kMaxCachedPieceBytes = 64;
constexpr size_t kMaxCachedPieces = size_t{1} << 17;
// Up to this many bytes a piece is merged by rescanning it for the best pair (GPT-2's loop,
// quadratic but fast when short); longer pieces use a heap so a pathological megabyte-long
// piece (minified code, a run of one character) stays O(n log n).
constexpr size_t kMaxScannedPieceBytes = 48;
// encode_parallel gives each thread at least this much text.
constexpr size_t kMinParallelChunkBytes = size_t{64} << 10;

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string quoted(std::string_view bytes) { return fmt::format("\"{}\"", bytes_to_gpt2_text(bytes)); }

}  // namespace

BpeModel::BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges,
                   std::vector<SpecialToken> special_tokens, const std::string& source)
    : tokens_(std::move(tokens)), special_tokens_(std::move(special_tokens)) {
  const TokenIndex index = index_tokens(source);
  add_merges(merges, index, source);
  check_every_token_reachable(source);
}

BpeModel::TokenIndex BpeModel::index_tokens(const std::string& source) {
  if (tokens_.size() > static_cast<size_t>(INT32_MAX)) {
    throw Error(fmt::format("BPE tokenizer '{}' has {} tokens; ids must fit in int32", source, tokens_.size()));
  }
  const auto num_tokens = static_cast<int32_t>(tokens_.size());
  mark_special_tokens(source);
  TokenIndex index;
  byte_ids_.fill(-1);
  for (int32_t id = 0; id < num_tokens; ++id) {
    if (is_special_[id]) continue;
    const std::string& bytes = tokens_[id];
    if (bytes.empty()) throw Error(fmt::format("BPE tokenizer '{}': token {} is empty", source, id));
    const auto [it, inserted] = index.emplace(bytes, id);
    if (!inserted) {
      throw Error(fmt::format("BPE tokenizer '{}': tokens {} and {} are both {}; token bytes must be unique",
                              source, it->second, id, quoted(bytes)));
    }
    if (bytes.size() == 1) byte_ids_[static_cast<unsigned char>(bytes[0])] = id;
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (byte_ids_[byte] < 0) {
      throw Error(fmt::format("BPE tokenizer '{}' has no token for byte 0x{:02X}; a byte-level BPE needs "
                              "all 256 bytes as tokens", source, byte));
    }
  }
  return index;
}

void BpeModel::mark_special_tokens(const std::string& source) {
  is_special_.assign(tokens_.size(), false);
  for (size_t i = 0; i < special_tokens_.size(); ++i) {
    const SpecialToken& special = special_tokens_[i];
    if (special.id < 0 || special.id >= vocab_size()) {
      throw Error(fmt::format("BPE tokenizer '{}': special token {} has id {}, outside [0, {})", source,
                              quoted(special.name), special.id, vocab_size()));
    }
    if (special.name.empty() || tokens_[special.id] != special.name) {
      throw Error(fmt::format("BPE tokenizer '{}': special token {} has id {}, but token {} is {}", source,
                              quoted(special.name), special.id, special.id, quoted(tokens_[special.id])));
    }
    for (size_t j = 0; j < i; ++j) {
      if (special_tokens_[j].id == special.id || special_tokens_[j].name == special.name) {
        throw Error(fmt::format("BPE tokenizer '{}': special tokens {} (id {}) and {} (id {}) share a name or an id",
                                source, quoted(special_tokens_[j].name), special_tokens_[j].id,
                                quoted(special.name), special.id));
      }
    }
    is_special_[special.id] = true;
  }
}

void BpeModel::add_merges(const std::vector<std::pair<int32_t, int32_t>>& merges, const TokenIndex& index,
                          const std::string& source) {
  const auto is_ordinary = [&](int32_t id) { return id >= 0 && id < vocab_size() && !is_special_[id]; };
  merges_.reserve(merges.size());
  merge_ids_.reserve(merges.size());
  merge_of_pair_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merges[rank];
    if (!is_ordinary(left) || !is_ordinary(right)) {
      throw Error(fmt::format("BPE tokenizer '{}': merge {} ({}, {}) refers to an id that is outside "
                              "[0, {}) or a special token", source, rank, left, right, vocab_size()));
    }
    const std::string merged = tokens_[left] + tokens_[right];
    const auto found = index.find(merged);
    if (found == index.end()) {
      throw Error(fmt::format("BPE tokenizer '{}': merge {} ({} + {}) gives {}, which is not a token",
                              source, rank, quoted(tokens_[left]), quoted(tokens_[right]), quoted(merged)));
    }
    const Merge merge{static_cast<int32_t>(rank), found->second};
    const auto [it, inserted] = merge_of_pair_.emplace(pair_key(left, right), merge);
    if (!inserted) {
      throw Error(fmt::format("BPE tokenizer '{}': merge {} ({} + {}) repeats merge {}", source, rank,
                              quoted(tokens_[left]), quoted(tokens_[right]), it->second.rank));
    }
    merges_.emplace_back(left, right);
    merge_ids_.push_back(found->second);
  }
}

void BpeModel::check_every_token_reachable(const std::string& source) const {
  std::vector<bool> produced(tokens_.size(), false);
  for (int32_t id : merge_ids_) produced[id] = true;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!is_special_[id] && tokens_[id].size() > 1 && !produced[id]) {
      throw Error(fmt::format("BPE tokenizer '{}': token {} ({}) is longer than one byte but no merge "
                              "produces it, so encoding could never give it", source, id, quoted(tokens_[id])));
    }
  }
}

std::optional<BpeModel::Merge> BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merge_of_pair_.find(pair_key(left, right));
  if (it == merge_of_pair_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::special_id(std::string_view name) const {
  for (const SpecialToken& special : special_tokens_) {
    if (special.name == name) return special.id;
  }
  return std::nullopt;
}

// Piece -> ids for one encode call. Keys are views into the text being encoded, so a cache
// never outlives the call; that also keeps encode() const and thread-safe.
class BpeModel::PieceCache {
 public:
  std::optional<std::span<const int32_t>> find(std::string_view piece) const {
    const auto it = index_.find(piece);
    if (it == index_.end()) return std::nullopt;
    return std::span<const int32_t>(ids_).subspan(it->second.first, it->second.second);
  }
  void insert(std::string_view piece, std::span<const int32_t> ids) {
    if (index_.size() >= kMaxCachedPieces) return;  // the first pieces seen are the frequent ones
    index_.emplace(piece, std::make_pair(ids_.size(), ids.size()));
    ids_.insert(ids_.end(), ids.begin(), ids.end());
  }

 private:
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> index_;  // offset, length in ids_
  std::vector<int32_t> ids_;
};

std::vector<int32_t> BpeModel::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  PieceCache cache;
  encode_into(text, cache, ids);
  return ids;
}

void BpeModel::encode_into(std::string_view text, PieceCache& cache, std::vector<int32_t>& ids) const {
  ids.reserve(ids.size() + text.size() / 3 + 16);
  std::vector<int32_t> parts;
  for_each_gpt2_piece(text, [&](std::string_view piece) { encode_piece(piece, cache, parts, ids); });
}

void BpeModel::encode_piece(std::string_view piece, PieceCache& cache, std::vector<int32_t>& parts,
                            std::vector<int32_t>& ids) const {
  if (piece.size() == 1) {
    ids.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  if (cacheable) {
    if (const auto hit = cache.find(piece)) {
      ids.insert(ids.end(), hit->begin(), hit->end());
      return;
    }
  }
  parts.clear();
  for (char c : piece) parts.push_back(byte_ids_[static_cast<unsigned char>(c)]);
  if (piece.size() <= kMaxScannedPieceBytes) {
    merge_by_scanning(parts);
  } else {
    merge_with_heap(parts);
  }
  ids.insert(ids.end(), parts.begin(), parts.end());
  if (cacheable) cache.insert(piece, parts);
}

// GPT-2's bpe(): find the adjacent pair with the lowest rank, merge all its occurrences left to
// right (non-overlapping), repeat until no adjacent pair has a merge.
void BpeModel::merge_by_scanning(std::vector<int32_t>& parts) const {
  while (parts.size() >= 2) {
    int32_t best_rank = INT32_MAX;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto it = merge_of_pair_.find(pair_key(parts[i], parts[i + 1]));
      if (it != merge_of_pair_.end() && it->second.rank < best_rank) best_rank = it->second.rank;
    }
    if (best_rank == INT32_MAX) return;
    const auto [left, right] = merges_[best_rank];
    size_t out = 0;
    for (size_t i = 0; i < parts.size();) {
      if (i + 1 < parts.size() && parts[i] == left && parts[i + 1] == right) {
        parts[out++] = merge_ids_[best_rank];
        i += 2;
      } else {
        parts[out++] = parts[i++];
      }
    }
    parts.resize(out);
  }
}

// The same result as merge_by_scanning in O(n log n): parts form a linked list, and a min-heap
// holds (rank, position) of every adjacent pair that has a merge, stale entries skipped when
// popped. All entries of the lowest rank are taken out first and applied in position order,
// which is GPT-2's left-to-right pass. No pair created during that pass can have the same rank:
// it contains the merged token, which differs from both sides of the merge.
void BpeModel::merge_with_heap(std::vector<int32_t>& parts) const {
  const auto n = static_cast<int32_t>(parts.size());
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  using Candidate = std::pair<int32_t, int32_t>;  // (rank, position of the left part)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merge_of_pair_.find(pair_key(parts[pos], parts[next[pos]]));
    if (it != merge_of_pair_.end()) heap.emplace(it->second.rank, pos);
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<int32_t> positions;
  while (!heap.empty()) {
    const int32_t rank = heap.top().first;
    positions.clear();
    while (!heap.empty() && heap.top().first == rank) {
      positions.push_back(heap.top().second);
      heap.pop();
    }
    const auto [left, right] = merges_[rank];
    for (const int32_t pos : positions) {
      const int32_t after = next[pos];
      if (parts[pos] != left || after < 0 || parts[after] != right) continue;  // stale
      parts[pos] = merge_ids_[rank];
      parts[after] = -1;
      next[pos] = next[after];
      if (next[pos] >= 0) prev[next[pos]] = pos;
      push(prev[pos]);
      push(pos);
    }
  }
  std::erase(parts, -1);
}

std::vector<std::vector<int32_t>> BpeModel::encode_batch(std::span<const std::string_view> texts,
                                                         int num_threads) const {
  std::vector<std::vector<int32_t>> ids(texts.size());
  const int num_workers = resolve_num_threads(num_threads, texts.size());
  // Cache keys point into the texts, which outlive this call.
  std::vector<PieceCache> caches(num_workers);
  parallel_for(texts.size(), num_workers,
               [&](size_t i, int worker) { encode_into(texts[i], caches[worker], ids[i]); });
  return ids;
}

std::vector<int32_t> BpeModel::encode_parallel(std::string_view text, int num_threads) const {
  const int max_threads = resolve_num_threads(num_threads, text.size() / kMinParallelChunkBytes);
  if (max_threads <= 1) return encode(text);
  // A few chunks per thread even out the work when some chunks encode slower than others.
  const size_t target_bytes = std::max(kMinParallelChunkBytes, text.size() / (4 * static_cast<size_t>(max_threads)));
  const std::vector<std::string_view> chunks = split_at_safe_points(text, target_bytes);
  std::vector<std::vector<int32_t>> chunk_ids(chunks.size());
  const int num_workers = resolve_num_threads(max_threads, chunks.size());
  // One cache per thread, kept across its chunks: all keys point into `text`, alive until we return.
  std::vector<PieceCache> caches(num_workers);
  parallel_for(chunks.size(), num_workers,
               [&](size_t chunk, int worker) { encode_into(chunks[chunk], caches[worker], chunk_ids[chunk]); });
  size_t total = 0;
  for (const auto& part : chunk_ids) total += part.size();
  std::vector<int32_t> ids;
  ids.reserve(total);
  for (const auto& part : chunk_ids) ids.insert(ids.end(), part.begin(), part.end());
  return ids;
}

std::string BpeModel::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      throw Error(fmt::format("token id {} at position {} is outside the bpe tokenizer's vocabulary "
                              "[0, {}); the tokens come from a different tokenizer or model",
                              id, i, vocab_size()));
    }
    text += tokens_[id];
  }
  return text;
}

}  // namespace lmt::data
