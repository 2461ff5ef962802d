// Writers for llm.c and nanoGPT token files, byte by byte as those projects lay them out, so the
// readers are tested against files we did not write with our own shard code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmt::testing {

inline void append_u16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
}

inline void append_i32(std::string& out, int32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((static_cast<uint32_t>(v) >> (8 * i)) & 0xFF));
}

// llm.c: 256 int32 header (magic, version, token count, zeros) + uint16 tokens.
inline std::string llmc_bytes(const std::vector<int32_t>& tokens, int32_t magic = 20240520, int32_t version = 1) {
  std::string out;
  append_i32(out, magic);
  append_i32(out, version);
  append_i32(out, static_cast<int32_t>(tokens.size()));
  for (int i = 3; i < 256; ++i) append_i32(out, 0);
  for (int32_t t : tokens) append_u16(out, static_cast<uint32_t>(t));
  return out;
}

// nanoGPT: np.array(ids, dtype=np.uint16).tofile(path).
inline std::string nanogpt_bytes(const std::vector<int32_t>& tokens) {
  std::string out;
  for (int32_t t : tokens) append_u16(out, static_cast<uint32_t>(t));
  return out;
}

}  // namespace lmt::testing
