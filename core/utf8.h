// Strict UTF-8 decoding and encoding: the tokenizers, and recipes (YAML text must be UTF-8).
#pragma once
#include <string>
#include <string_view>

namespace lmt {

// Decodes one code point at text[offset]. Returns its length in bytes, or 0 if the bytes there
// are not a valid, shortest-form UTF-8 sequence. Strict on purpose: accepting overlong forms
// would give one character two different byte spellings. Surrogates and code points above
// U+10FFFF are invalid too.
inline int decode_utf8(std::string_view text, size_t offset, char32_t& code_point) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data()) + offset;
  const size_t remaining = text.size() - offset;
  const unsigned char lead = bytes[0];
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  int length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (remaining < static_cast<size_t>(length)) return 0;
  if (bytes[1] < second_min || bytes[1] > second_max) return 0;
  for (int i = 2; i < length; ++i) {
    if ((bytes[i] & 0xC0) != 0x80) return 0;
  }
  char32_t value = lead & (0xFF >> (length + 1));
  for (int i = 1; i < length; ++i) value = (value << 6) | (bytes[i] & 0x3F);
  code_point = value;
  return length;
}

inline bool is_valid_utf8(std::string_view text) {
  char32_t code_point = 0;
  for (size_t offset = 0; offset < text.size();) {
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0) return false;
    offset += length;
  }
  return true;
}

inline void append_utf8(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

}  // namespace lmt
