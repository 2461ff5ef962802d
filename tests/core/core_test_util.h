// Shared helpers for the core tests.
#pragma once
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"
#include "tests/error_message.h"

namespace lmt::core_testing {

using lmt::testing::error_message;

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::filesystem::path source_dir() { return std::filesystem::path(LMTRAIN_SOURCE_DIR); }

}  // namespace lmt::core_testing
