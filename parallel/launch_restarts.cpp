// `lmtrain launch --max-restarts N`: a job whose worker crashed or was killed is stopped (the
// attempt's supervisor already did that) and started again from its latest checkpoint.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/dist_env.h"
#include "parallel/launch_util.h"
#include "parallel/launcher.h"

namespace lmt {
namespace {

// Exit 2 is the user's to fix (the same recipe would fail the same way) and 130 is Ctrl-C:
// neither is restarted. Everything else is a crash, a signal or a lost peer.
bool restart_can_help(int code) {
  return code != 0 && code != kUserErrorExitCode && code != kInterruptedExitCode;
}

std::string describe_exit_code(int code) {
  if (code > 128 && code < 128 + 65) {
    const char* name = sigabbrev_np(code - 128);
    return fmt::format("exit {} (signal {}, {})", code, code - 128, name ? name : "?");
  }
  if (code == kPeerLostExitCode) return fmt::format("exit {} (a peer was lost)", code);
  return fmt::format("exit {}", code);
}

}  // namespace

std::vector<std::string> command_resuming_auto(const std::vector<std::string>& command) {
  std::vector<std::string> out;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == "--resume") {
      ++i;  // and its value
      continue;
    }
    if (command[i].rfind("--resume=", 0) == 0 || command[i] == "--overwrite") continue;
    out.push_back(command[i]);
  }
  // --overwrite: an attempt that died before its first checkpoint left metrics.jsonl and nothing
  // to resume; the restart starts that run over instead of refusing it. With a checkpoint,
  // --resume auto continues from it and appends to the metrics.
  for (const char* arg : {"--resume", "auto", "--overwrite"}) out.push_back(arg);
  return out;
}

int run_with_restarts(const LaunchOptions& o, const std::function<int(const LaunchOptions&)>& attempt) {
  LaunchOptions current = o;
  std::vector<std::string> endings;  // how each failed attempt ended, for the final message
  for (int restart = 0;; ++restart) {
    // Inherited by local workers and forwarded to remote agents (LMTRAIN_* variables are).
    ::setenv(kRestartCountVariable, std::to_string(restart).c_str(), 1);
    const int code = attempt(current);
    if (code == 0) {
      if (restart > 0)
        fmt::print(stderr, "lmtrain launch: the job finished after {} restart{}\n", restart, restart == 1 ? "" : "s");
      return 0;
    }
    // A signal to the launcher (a scheduler's SIGTERM, Ctrl-C) is a request to stop.
    if (LaunchSignals::count() > 0) return code;
    if (!restart_can_help(code)) {
      if (code == kUserErrorExitCode)
        fmt::print(stderr, "lmtrain launch: not restarting: exit 2 is an error in the command or its inputs, which "
                           "a restart would repeat\n");
      return code;
    }
    endings.push_back(fmt::format("attempt {}: {}", restart + 1, describe_exit_code(code)));
    if (restart >= o.max_restarts) {
      std::string list;
      for (const std::string& e : endings) list += "\n  " + e;
      fmt::print(stderr,
                 "lmtrain launch: giving up after {} restart{} (--max-restarts {}); every attempt failed:{}\n"
                 "The tables above name the rank that failed first in each attempt.\n",
                 restart, restart == 1 ? "" : "s", o.max_restarts, list);
      return code;
    }
    fmt::print(stderr,
               "lmtrain launch: {}; restart {} of {}: starting every worker again with --resume auto (from the latest checkpoint, or from the start if there is none)\n",
               endings.back(), restart + 1, o.max_restarts);
    std::fflush(stderr);
    current.command = command_resuming_auto(o.command);
    current.restarting = true;
  }
}

}  // namespace lmt
