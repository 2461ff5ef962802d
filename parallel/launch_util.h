// Helpers shared by the launcher's single-host and multi-host paths (internal).
#pragma once
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

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
inline bool primary_failure(int status) { return failed(status) && !(WIFEXITED(status) && WEXITSTATUS(status) == kPeerLostExitCode); }


// A child process with its stdout and stderr on one pipe (out_fd) and, if asked, its stdin on
// another (in_fd; -1 otherwise, and the child reads /dev/null).
struct Child {
  pid_t pid = -1;
  int in_fd = -1;
  int out_fd = -1;
};

// fork + exec of args (searched on PATH), with `env` as its environment (nullptr: ours). The
// child runs in its own process group, so a terminal's Ctrl-C reaches only the launcher, which
// stops children in order. die_with_parent: the kernel sends it SIGTERM when we die, even by
// SIGKILL (PR_SET_PDEATHSIG). Throws lmt::Error when the pipes or the fork fail.
Child spawn_child(const std::vector<std::string>& args, const std::vector<std::string>* env, bool with_stdin,
                  bool die_with_parent);

// SIGINT and SIGTERM counted instead of acted on, for as long as the object lives (the launcher,
// an agent). raise() counts a stop request that did not come as a signal (an agent's stdin closing).
class LaunchSignals {
 public:
  LaunchSignals();
  ~LaunchSignals();
  LaunchSignals(const LaunchSignals&) = delete;
  LaunchSignals& operator=(const LaunchSignals&) = delete;
  static int count();
  static int last();
  static void raise(int signum);

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// Runs the job with one agent per host of the hostfile (launch_hosts.cpp).
int launch_on_hosts(const LaunchOptions& o);

// After a failed job: the rank a heartbeat found silent (stopped, hung or cut off) and its host,
// from the job's store at host:port (parallel/heartbeat.h), if any rank reported one.
struct HeartbeatLoss {
  int rank = -1;
  std::string host;
};
std::optional<HeartbeatLoss> heartbeat_loss(const std::string& host, int port, const std::string& secret);

// Runs `attempt` and, while it ends in a failure that a restart can cure and o.max_restarts
// allows, runs it again with the command resuming from the latest checkpoint
// (launch_restarts.cpp). Returns the last attempt's exit code.
int run_with_restarts(const LaunchOptions& o, const std::function<int(const LaunchOptions&)>& attempt);

}  // namespace lmt
