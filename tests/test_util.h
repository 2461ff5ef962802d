// The helpers every test area shares, in one namespace (lmt::testing): error_message() and
// abort_message() for the two error channels, TempDir, whole-file read and write, the source
// tree, and check_close(), the one elementwise closeness check. Area helpers (tests/cli/cli_util.h,
// tests/cpu/cpu_test_util.h, tests/data/foreign_shard_writers.h) add to the same namespace.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace lmt::testing {

// error_message(): runs an action that must throw lmt::Error and returns its message, so tests
// can check what a user would read. abort_message(): runs an action that must fail an
// LMT_CHECK (abort) and returns what it printed.
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

// The action runs in a forked child (before any thread of its own), which must die of SIGABRT;
// its standard error comes back.
template <class Action>
std::string abort_message(Action&& action) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    // Catch's own SIGABRT handler would report the expected abort as the child's failing test.
    std::signal(SIGABRT, SIG_DFL);
    action();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO("child stderr: " << text);
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));
  return text;
}

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() / ("lmtrain-test-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(counter++) + "-" + std::to_string(ticks));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Whole files, as bytes.
// How many elements of `a` and `b` differ in their bits (all of them when the sizes differ).
inline size_t differing_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += std::memcmp(&a[i], &b[i], sizeof(float)) != 0 ? 1 : 0;
  return differing;
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The source tree the tests were built from (recipes/, docs/, tests/fixtures/).
inline std::filesystem::path source_dir() { return std::filesystem::path(LMTRAIN_SOURCE_DIR); }

// |actual - expected| <= atol + rtol * |expected| elementwise, as one assertion that reports the
// number of failing elements and the worst one.
template <typename A, typename E>
void check_close(const std::vector<A>& actual, const std::vector<E>& expected, double atol,
                 double rtol, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  size_t num_failures = 0;
  size_t worst_index = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    const double e = static_cast<double>(expected[i]);
    const double allowed = atol + rtol * std::abs(e);
    const double excess = std::abs(a - e) - allowed;
    if (!(excess <= 0.0)) ++num_failures;  // also counts NaN
    if (!(excess <= worst_excess)) {
      worst_excess = excess;
      worst_index = i;
    }
  }
  std::ostringstream message;
  message.precision(17);
  message << what << ": " << num_failures << " of " << actual.size()
          << " elements out of tolerance (atol " << atol << ", rtol " << rtol << "); worst at ["
          << worst_index << "]: actual " << static_cast<double>(actual[worst_index]) << " expected "
          << static_cast<double>(expected[worst_index]);
  INFO(message.str());
  CHECK(num_failures == 0);
}

// The Python of the test environment (tools/setup-test-env.sh): $LMTRAIN_TEST_PYTHON, else
// .venv-test/bin/python in the source tree, provided it imports every module in `modules`
// ("torch, transformers"). Empty otherwise, with `why` saying what is missing, for a SKIPPED line.
inline std::string test_python(const std::string& modules, std::string& why) {
  const char* env = std::getenv("LMTRAIN_TEST_PYTHON");
  const std::string python = env && *env ? env : (source_dir() / ".venv-test" / "bin" / "python").string();
  if (!std::filesystem::exists(python)) {
    why = python + " not found (run tools/setup-test-env.sh, or set LMTRAIN_TEST_PYTHON)";
    return {};
  }
  const std::string command = "'" + python + "' -c 'import " + modules + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) {
    why = python + " cannot import " + modules + " (run tools/setup-test-env.sh)";
    return {};
  }
  return python;
}

}  // namespace lmt::testing
