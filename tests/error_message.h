// error_message(): runs an action that must throw lmt::Error and returns its message, so tests
// can check what a user would read. abort_message(): runs an action that must fail an
// LMT_CHECK (abort) and returns what it printed. Shared by every test area.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "core/error.h"

namespace lmt::testing {

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

}  // namespace lmt::testing
