#include "data/pretokenize.h"

#include <algorithm>
#include <array>

#include "data/unicode_classes.h"
#include "core/utf8.h"

namespace lmt::data {

// Lives here rather than in the generated unicode_classes.cpp, which holds data only.
CharClass unicode_class(char32_t code_point) {
  const UnicodeRange* begin = kUnicodeClassRanges;
  const UnicodeRange* end = kUnicodeClassRanges + kNumUnicodeClassRanges;
  const UnicodeRange* after = std::upper_bound(
      begin, end, code_point, [](char32_t c, const UnicodeRange& range) { return c < range.first; });
  if (after == begin) return CharClass::kOther;
  const UnicodeRange& range = after[-1];
  return code_point <= range.last ? range.char_class : CharClass::kOther;
}

namespace {

// ASCII dominates real text; a table avoids the binary search. Built from the generated ranges
// (constant-initialized, so safe to read during static initialization) to keep one source of truth.
const std::array<CharClass, 128> kAsciiClasses = [] {
  std::array<CharClass, 128> classes{};
  for (char32_t c = 0; c < 128; ++c) classes[c] = unicode_class(c);
  return classes;
}();

struct Symbol {
  CharClass char_class;
  int length;  // bytes
};

inline Symbol symbol_at(std::string_view text, size_t pos) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  if (byte < 0x80) return {kAsciiClasses[byte], 1};
  char32_t code_point = 0;
  const int length = decode_utf8(text, pos, code_point);
  if (length == 0) return {CharClass::kOther, 1};  // invalid UTF-8: one "other" byte
  return {unicode_class(code_point), length};
}

// End of the run of `char_class` symbols starting at pos.
size_t run_end(std::string_view text, size_t pos, CharClass char_class) {
  while (pos < text.size()) {
    const Symbol symbol = symbol_at(text, pos);
    if (symbol.char_class != char_class) break;
    pos += symbol.length;
  }
  return pos;
}

// Length of 's 't 're 've 'm 'll 'd at text[start] (which is an apostrophe), or 0. Case
// sensitive, as in GPT-2.
size_t contraction_length(std::string_view text, size_t start) {
  const std::string_view rest = text.substr(start + 1);
  if (rest.empty()) return 0;
  const char c = rest[0];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (rest.starts_with("re") || rest.starts_with("ve") || rest.starts_with("ll")) return 3;
  return 0;
}

// The whitespace alternatives `\s+(?!\S)|\s+` at a whitespace code point.
size_t whitespace_piece_end(std::string_view text, size_t start) {
  size_t pos = start;
  size_t last_start = start;  // start of the last code point of the run
  while (pos < text.size()) {
    const Symbol symbol = symbol_at(text, pos);
    if (symbol.char_class != CharClass::kSpace) break;
    last_start = pos;
    pos += symbol.length;
  }
  if (pos == text.size()) return pos;  // (?!\S) holds at the end of the text
  // Followed by non-space: \s+(?!\S) backtracks by one code point, leaving it to start the next
  // piece (" word"). A run of one cannot back off, so \s+ takes it.
  return last_start > start ? last_start : pos;
}

bool is_ascii_non_space(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x80 && kAsciiClasses[byte] != CharClass::kSpace;
}

}  // namespace

size_t gpt2_piece_end(std::string_view text, size_t start) {
  if (text[start] == '\'') {
    const size_t length = contraction_length(text, start);
    if (length > 0) return start + length;
  }
  const Symbol first = symbol_at(text, start);
  if (first.char_class != CharClass::kSpace) return run_end(text, start + first.length, first.char_class);
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one ASCII space may lead a non-space run.
  if (text[start] == ' ' && start + 1 < text.size()) {
    const Symbol next = symbol_at(text, start + 1);
    if (next.char_class != CharClass::kSpace) return run_end(text, start + 1 + next.length, next.char_class);
  }
  return whitespace_piece_end(text, start);
}

std::vector<std::string_view> gpt2_pieces(std::string_view text) {
  std::vector<std::string_view> pieces;
  for_each_gpt2_piece(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

// Claim: if text[p-1] == '\n' and text[p-2], text[p] are ASCII non-whitespace, the pieces of
// text are the pieces of text[0, p) followed by those of text[p, end).
//  - No piece of the whole text crosses p-1 or p. A piece holds whitespace only as a pure
//    whitespace run or as the single leading ' ' of ` ?X+`. The '\n' is not ' ', and text[p-2]
//    is not whitespace, so a piece that holds the '\n' starts at p-1. From there the run of
//    whitespace is that one '\n' (text[p] is not whitespace): `\s+(?!\S)` fails and `\s+` takes
//    exactly "\n", ending at p.
//  - The prefix text[0, p) splits the same way: a match never looks past the next code point
//    after its end, every piece before p-1 ends at or before p-1 (the '\n' cannot extend a run
//    of letters, numbers or others, nor a contraction), and at p-1 the '\n' is the whole run
//    up to the end, which `\s+(?!\S)` takes. Code points cannot straddle p-2 or p because
//    ASCII bytes are never part of a multi-byte sequence, so UTF-8 decoding agrees too.
//  - The suffix text[p, end) splits the same way because matching at p reads only text from p on.
bool is_safe_split_point(std::string_view text, size_t p) {
  return p >= 2 && p < text.size() && text[p - 1] == '\n' && is_ascii_non_space(text[p - 2]) &&
         is_ascii_non_space(text[p]);
}

size_t last_safe_split_point(std::string_view text) {
  for (size_t newline = text.rfind('\n'); newline != std::string_view::npos && newline > 0;
       newline = text.rfind('\n', newline - 1)) {
    if (is_safe_split_point(text, newline + 1)) return newline + 1;
  }
  return 0;
}

namespace {

// The first safe split point at or after `from`, or text.size() if there is none.
size_t next_safe_split_point(std::string_view text, size_t from) {
  for (size_t newline = text.find('\n', from == 0 ? 0 : from - 1); newline != std::string_view::npos;
       newline = text.find('\n', newline + 1)) {
    if (newline + 1 >= from && is_safe_split_point(text, newline + 1)) return newline + 1;
  }
  return text.size();
}

}  // namespace

std::vector<std::string_view> split_at_safe_points(std::string_view text, size_t target_bytes) {
  std::vector<std::string_view> chunks;
  size_t start = 0;
  while (start < text.size()) {
    const size_t want = start + std::max<size_t>(target_bytes, 1);
    const size_t end = want >= text.size() ? text.size() : next_safe_split_point(text, want);
    chunks.push_back(text.substr(start, end - start));
    start = end;
  }
  return chunks;
}

}  // namespace lmt::data
