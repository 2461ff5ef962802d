// GPT-2's pre-tokenizer, hand-written: splits text into the pieces that the regex
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matches, one after the other. BPE merges never cross a piece boundary. Works on UTF-8 code
// points; a byte that does not start a valid UTF-8 sequence counts as one code point of the
// "other" class, so any byte string splits into pieces whose concatenation is exactly the
// input. Letters, numbers and whitespace are the classes of data/unicode_classes.h; note that
// whitespace is Python's str.isspace() (which includes U+001C..U+001F), not the regex module's \s.
#pragma once
#include <string_view>
#include <vector>

namespace lmt::data {

// End (exclusive byte offset) of the piece that starts at text[start]; start < text.size().
size_t gpt2_piece_end(std::string_view text, size_t start);

// Calls visit(piece) for each piece of `text`, in order.
template <class Visit>
void for_each_gpt2_piece(std::string_view text, Visit&& visit) {
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = gpt2_piece_end(text, start);
    visit(text.substr(start, end - start));
    start = end;
  }
}

std::vector<std::string_view> gpt2_pieces(std::string_view text);

// True if splitting `text` at byte offset p and pre-tokenizing both halves separately gives
// exactly the pieces of the whole (see the proof in pretokenize.cpp). Such points are where
// training and encoding cut text into chunks for threads.
bool is_safe_split_point(std::string_view text, size_t p);
// The last safe split point of `text`, or 0 if it has none.
size_t last_safe_split_point(std::string_view text);
// Cuts `text` at safe split points into chunks of about `target_bytes` (at least that many,
// except the last; a chunk is longer when no safe point comes sooner). Empty text: no chunks.
std::vector<std::string_view> split_at_safe_points(std::string_view text, size_t target_bytes);

}  // namespace lmt::data
