// The two error channels (DESIGN.md section 7):
//   lmt::Error    the user's to fix (recipe, hostfile, data, checkpoint, flags, a busy GPU): what
//                 was wrong, where, and what to do. main() catches it once, prints it and exits
//                 with kUserErrorExitCode. Library code never exits.
//   LMT_CHECK     an internal invariant: failing it is a bug in lmtrain, never the user's doing.
//                 It prints the condition, file:line and message and aborts (a core dump, a
//                 debugger stop), like GGML_ASSERT. Device and library failures have their own
//                 check macros in cuda/common.cuh, which abort the same way.
#pragma once
#include <stdexcept>
#include <string>

namespace lmt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Exit statuses. 0 is success; 1 is left to whatever a command reports as a plain failure.
inline constexpr int kUserErrorExitCode = 2;  // every user error

// A collective failed because another rank went away: a consequence, not a cause. Workers exit
// with kPeerLostExitCode so that a launcher can name the rank that failed first.
class PeerLostError : public Error {
 public:
  using Error::Error;
};
inline constexpr int kPeerLostExitCode = 3;
// Stopped by Ctrl-C: the shell's convention, 128 + SIGINT. (A scheduler's SIGTERM or SIGUSR1
// ends a training run with a checkpoint and exit 0, so that the job can be requeued.)
inline constexpr int kInterruptedExitCode = 130;

// Reports a failed LMT_CHECK and aborts.
[[noreturn]] void check_failed(const char* condition, const char* file, int line, const std::string& message);

}  // namespace lmt

// LMT_CHECK(condition, message): message is a std::string expression, evaluated only on failure.
#define LMT_CHECK(condition, message)                                    \
  do {                                                                   \
    if (!(condition)) ::lmt::check_failed(#condition, __FILE__, __LINE__, (message)); \
  } while (0)
