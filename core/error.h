// lmt::Error: the one exception type for user errors (recipe, hostfile, data, checkpoint, flags).
// main() catches it once, prints the message and exits with code 2. Library code never exits.
#pragma once
#include <stdexcept>
#include <string>

namespace lmt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Exit status used for every user error.
inline constexpr int kUserErrorExitCode = 2;

// A collective failed because another rank went away: a consequence, not a cause. Workers exit
// with kPeerLostExitCode so that a launcher can name the rank that failed first.
class PeerLostError : public Error {
 public:
  using Error::Error;
};
inline constexpr int kPeerLostExitCode = 3;

}  // namespace lmt
