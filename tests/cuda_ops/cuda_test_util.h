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

#ifdef LMTRAIN_CUDA_EMU
#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "cuda/emu/emu_hooks.h"
#include "tests/test_util.h"

namespace lmt::testing {

using NamedOutputs = std::vector<std::pair<std::string, std::vector<float>>>;

// Runs `run` under every schedule of the emulator (emu::every_schedule(): the current one first)
// and returns the first run's outputs. Each later schedule must give the same bits, output by
// output: a race, an order dependence between blocks or a read of shared memory nobody wrote
// does not (cuda/emu/cuda_emu.h). The current schedule is set again afterwards. Under ASan
// (test_cuda_emu_asan) only the current schedule runs: one run finds the memory errors, and
// test_cuda_emu compares the schedules.
inline NamedOutputs same_bits_under_every_schedule(const std::function<NamedOutputs()>& run) {
#ifdef LMTRAIN_EMU_ASAN
  return run();
#else
  const emu::Schedule before = emu::current_schedule();
  NamedOutputs first;
  bool have_first = false;
  for (const emu::Schedule& schedule : emu::every_schedule()) {
    emu::set_schedule(schedule);
    NamedOutputs outputs = run();
    if (!have_first) {
      first = std::move(outputs);
      have_first = true;
      continue;
    }
    REQUIRE(outputs.size() == first.size());
    for (size_t i = 0; i < outputs.size(); ++i) {
      INFO(outputs[i].first << " under schedule " << emu::schedule_name(schedule) << " against "
                            << emu::schedule_name(before) << ": elements whose bits differ");
      CHECK(differing_bits(outputs[i].second, first[i].second) == 0);
    }
  }
  emu::set_schedule(before);
  return first;
#endif
}

}  // namespace lmt::testing
#endif
