// A worker process joining its job: the rendezvous store served by `lmtrain launch` and the
// process group built through it.
#pragma once
#include <chrono>
#include <memory>

#include "parallel/dist_env.h"
#include "parallel/heartbeat.h"
#include "parallel/process_group.h"
#include "parallel/store.h"

namespace lmt {

struct WorkerConnection {
  std::unique_ptr<StoreServer> server;  // rank 0 under torchrun or Slurm serves the store itself
  std::unique_ptr<StoreClient> store;
  std::unique_ptr<ProcessGroup> group;
  // How long a collective may wait for the other ranks (LMTRAIN_TIMEOUT_S): the Gloo group's, and
  // the bound for any other group the worker builds (NCCL).
  std::chrono::milliseconds collective_timeout{300'000};
  // Declared last, so destroyed first: it says "done" while the store is still there.
  std::unique_ptr<Heartbeat> heartbeat;
};

// Connects rank env.rank of env.world_size to the job's rendezvous store and builds a Gloo
// group. Under `lmtrain launch` (LMTRAIN_JOB_SECRET set) the launcher serves the store at
// MASTER_ADDR:MASTER_PORT. Under torchrun or Slurm rank 0 serves it, at LMTRAIN_STORE_PORT if
// set, else env.store_port (MASTER_PORT, or MASTER_PORT + 1 where torchrun's own store holds
// MASTER_PORT; Slurm's default is 29500), and the secret is derived from the job id (TORCHELASTIC_RUN_ID,
// SLURM_JOB_ID.SLURM_STEP_ID), which keeps other jobs out but is not a secret from other
// users of the cluster. The address
// other ranks dial is LMTRAIN_HOST (set per host by the launcher), else 127.0.0.1 when the
// master is a loopback address, else this host's address on the route to MASTER_ADDR (its
// name when there is none). Collectives time out after LMTRAIN_TIMEOUT_S seconds
// (default 300), so a lost rank ends the job instead of hanging it. With a heartbeat_timeout
// above zero (run.heartbeat_timeout), a Heartbeat ends the process within about that long
// when a watched rank stops answering or the store cannot be reached. Throws lmt::Error.
std::unique_ptr<WorkerConnection> connect_worker(const DistEnv& env,
                                                 std::chrono::milliseconds heartbeat_timeout = {});

}  // namespace lmt
