#include "parallel/agent_death.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>

namespace lmt {

bool stop_with_torchrun_agent(const DistEnv& env) {
  if (env.source != "torchrun" || env.restart_count < 0) return true;  // not a torchrun agent's child
  // torchelastic starts workers from the agent's main thread, whose end is the agent's end, so the
  // signal cannot come from a helper thread exiting early.
  // The parent is compared, not tested against 1: in a container the agent may well be pid 1.
  // (An agent that died before main() ran is not noticed here; its other workers then fail.)
  const pid_t agent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  return ::getppid() == agent;  // else reparented: the agent died before prctl took effect
}

}  // namespace lmt
