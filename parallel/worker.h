// A worker process joining its job: the rendezvous store served by `lmtrain launch` and the
// process group built through it.
#pragma once
#include <memory>

#include "parallel/dist_env.h"
#include "parallel/process_group.h"
#include "parallel/store.h"

namespace lmt {

struct WorkerConnection {
  std::unique_ptr<StoreClient> store;
  std::unique_ptr<ProcessGroup> group;
};

// Connects rank env.rank of env.world_size to the store at MASTER_ADDR:MASTER_PORT with the
// job secret LMTRAIN_JOB_SECRET (set by `lmtrain launch`) and builds a Gloo group. The address
// other ranks dial is LMTRAIN_HOST (set per host by the launcher), else 127.0.0.1 when the
// master is local, else this host's name. Collectives time out after LMTRAIN_TIMEOUT_S seconds
// (default 300), so a lost rank ends the job instead of hanging it. Throws lmt::Error.
std::unique_ptr<WorkerConnection> connect_worker(const DistEnv& env);

}  // namespace lmt
