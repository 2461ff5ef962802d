// Shared by the [cuda] tests: the visible skip when this build cannot run them.
#pragma once
#include <catch2/catch.hpp>
#include <string>

#include "cuda/cuda_backend.h"

// Skips the test, saying why, when the backend cannot run here (no driver or no device; never
// in the emulator build).
#define SKIP_WITHOUT_GPU()                                                      \
  do {                                                                          \
    if (const std::string why = lmt::cuda::unavailable_reason(); !why.empty()) { \
      WARN("SKIPPED: " << why);                                                 \
      return;                                                                   \
    }                                                                           \
  } while (0)
