#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace lmt {

void check_failed(const char* condition, const char* file, int line, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr,
               "lmtrain internal error (a bug, not your input; please report it with this message):\n"
               "  %s\n  check failed: %s\n  at %s:%d\n",
               message.c_str(), condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace lmt
