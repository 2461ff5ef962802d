// Helpers shared by the launcher's single-host and multi-host paths (internal).
#pragma once
#include <fmt/format.h>
#include <sys/wait.h>

#include <cstring>
#include <string>

namespace lmt {

struct LaunchOptions;

// "exit 2" or "signal 9 (KILL)" for a wait status.
inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return fmt::format("signal {} ({})", WTERMSIG(status), name ? name : "?");
  }
  return "unknown";
}

inline int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

inline bool failed(int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }

// A failure that is a cause, not the echo of another rank's (exit code 3, PeerLostError).
inline bool primary_failure(int status) { return failed(status) && !(WIFEXITED(status) && WEXITSTATUS(status) == 3); }


// Runs the job with one agent per host of the hostfile (launch_hosts.cpp).
int launch_on_hosts(const LaunchOptions& o);

}  // namespace lmt
