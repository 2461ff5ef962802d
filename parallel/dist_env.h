// Who this process is in a job: read from torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or, failing those, Slurm's (SLURM_PROCID,
// SLURM_LOCALID, SLURM_NTASKS). Without either it is a single process: rank 0 of 1.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace lmt {

struct DistEnv {
  int64_t rank = 0;
  int64_t local_rank = 0;
  int64_t world_size = 1;
  int64_t local_world_size = 1;
  std::string master_addr;
  int64_t master_port = 0;
  std::string source = "none";  // "torchrun", "slurm" or "none"
  std::string job_id;           // SLURM_JOB_ID, or torchrun's TORCHELASTIC_RUN_ID; may be empty
  // Where rank 0 serves the job's rendezvous store unless LMTRAIN_STORE_PORT says otherwise.
  // Slurm: MASTER_PORT. torchrun: MASTER_PORT when TORCHELASTIC_USE_AGENT_STORE=False (c10d
  // rendezvous: the agent picked a free port for the workers' store), else MASTER_PORT + 1
  // (static rendezvous: torchrun's own store listens on MASTER_PORT).
  int64_t store_port = 0;
  // torchrun's worker-group restarts so far and their limit (TORCHELASTIC_RESTART_COUNT,
  // TORCHELASTIC_MAX_RESTARTS); -1 when not started by a torchrun agent.
  int64_t restart_count = -1;
  int64_t max_restarts = -1;
  // Slurm only: SLURM_STEP_ID is set, so this process is a task of an srun step and not the
  // batch script itself (which sees SLURM_PROCID=0 and the job's SLURM_NTASKS too).
  bool slurm_step = false;
  // Which attempt of a job `lmtrain launch --max-restarts` restarted this is (kRestartCountVariable;
  // 0 for the first and without it).
  int64_t launch_restart = 0;
};

// The environment variable that tells each worker which attempt of the job it belongs to (0 for
// the first; `lmtrain launch --max-restarts` counts up). The trainer records it in the start or
// resume record of metrics.jsonl.
inline constexpr const char* kRestartCountVariable = "LMTRAIN_RESTART";

// The first host of a Slurm node list: "node[07-09,12],gpu1" -> "node07", as the first line of
// `scontrol show hostnames` (expand_slurm_hostlist). Throws lmt::Error for a malformed list,
// naming `variable`.
std::string first_slurm_host(const std::string& nodelist, const std::string& variable = "SLURM_JOB_NODELIST");

// getenv is injectable so tests need not touch the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
DistEnv read_dist_env(const EnvLookup& lookup);
DistEnv read_dist_env();  // from the process environment

}  // namespace lmt
