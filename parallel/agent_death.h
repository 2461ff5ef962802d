// A worker of torchrun stops with its agent. torchrun starts the workers as plain children, so
// when the agent itself is killed (SIGKILL, the OOM killer, a node's session ending) they would
// otherwise train on, orphaned, holding their GPUs and the run directory. lmtrain's own launcher
// sets PR_SET_PDEATHSIG in the child it forks; under torchrun the worker sets it on itself.
#pragma once

#include "parallel/dist_env.h"

namespace lmt {

// Under a torchrun agent (env.restart_count >= 0): asks the kernel for SIGTERM when the parent
// exits, which the trainer turns into a checkpoint and a clean stop. Returns false when the agent
// died while the request was being made (this process was reparented): the caller should not
// start. Does nothing and returns true otherwise.
bool stop_with_torchrun_agent(const DistEnv& env);

}  // namespace lmt
