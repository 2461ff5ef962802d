#include "parallel/deadline_wait.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace lmt {

void wait_with_deadline(const std::function<Progress(std::string* why)>& poll, std::chrono::milliseconds timeout,
                        const std::function<void()>& abort, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  std::chrono::microseconds pause(20);
  for (;;) {
    std::string why;
    const Progress progress = poll(&why);
    if (progress == Progress::kDone) return;
    if (progress == Progress::kFailed) {
      abort();
      throw PeerLostError(fmt::format("{} failed: {} (another rank probably exited; see its log)", what,
                                      why.empty() ? "no reason given" : why));
    }
    if (Clock::now() >= deadline) {
      abort();
      throw PeerLostError(fmt::format("{} did not finish in {} s (a peer rank died or hangs; see the other ranks' "
                                      "logs; LMTRAIN_TIMEOUT_S sets this limit)",
                                      what, std::chrono::duration<double>(timeout).count()));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
  }
}

}  // namespace lmt
