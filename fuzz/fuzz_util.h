// What the harnesses share. Each fuzz_<name>.cpp defines LLVMFuzzerTestOneInput over one entry
// point that reads outside input, calling the functions the lmtrain binary calls. lmt::Error is
// the expected answer to bad input and is caught; anything else (a crash, a sanitizer report,
// another exception type, a failed property check here) is a bug that libFuzzer reports.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "model/gpt_config.h"

namespace lmt::fuzz {

// The model of the harnesses that save one to read back (checkpoint, hf_gpt2): one layer, two
// heads, four channels, ten tokens. The committed seeds depend on these figures.
inline GPTConfig tiny_model_config(int padded_vocab_size) {
  GPTConfig cfg;
  cfg.max_seq_len = 8;
  cfg.vocab_size = 10;
  cfg.padded_vocab_size = padded_vocab_size;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.channels = 4;
  return cfg;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A directory of this process for the inputs that the code under test reads by path. Under
// $TMPDIR (tools/fuzz.sh points it at its own folder and removes it).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const auto path = std::filesystem::temp_directory_path() / ("lmtrain-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path;
  }();
  return dir;
}

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

// Inputs that stand for several files separate them with this line.
inline constexpr std::string_view kPartSeparator = "\n@@@@\n";

// The parts of `input` between separators; the last part takes the rest (so there are at most
// max_parts).
inline std::vector<std::string_view> split_parts(std::string_view input, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = input.find(kPartSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kPartSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

// The first line (without its newline) and the rest; no newline: everything is the rest.
inline std::pair<std::string_view, std::string_view> split_first_line(std::string_view input) {
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return {{}, input};
  return {input.substr(0, newline), input.substr(newline + 1)};
}

// A property of the code under test that must hold for every input; libFuzzer reports the abort
// with the input that broke it.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz harness: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace lmt::fuzz
