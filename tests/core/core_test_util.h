// Shared helpers for the core tests.
#pragma once
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"

namespace lmt::core_testing {

// Runs `action`, which must throw lmt::Error, and returns the message.
template <class Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const lmt::Error& e) {
    return e.what();
  }
  FAIL("expected lmt::Error, but nothing was thrown");
  return {};
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::filesystem::path source_dir() { return std::filesystem::path(LMTRAIN_SOURCE_DIR); }

}  // namespace lmt::core_testing
