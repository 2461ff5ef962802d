// `lmtrain launch`: starts one worker process per slot, serves the job's rendezvous store,
// supervises the workers and stops all of them when one fails.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "parallel/hostfile.h"

namespace lmt {

// The longest --grace (SIGTERM to SIGKILL) accepted: an hour.
inline constexpr double kMaxGraceSeconds = 3600;
// The most --max-restarts accepted.
inline constexpr int kMaxRestarts = 100;


struct LaunchOptions {
  int nproc_per_node = 1;
  std::string master_addr;           // empty: 127.0.0.1; with a hostfile this machine's address
                                     // on the route to the first other host
  int master_port = 29500;           // 0: any free port
  std::string log_dir;               // per-rank logs rank_N.log; empty: none
  std::string tee = "rank0";         // console: rank0 | all (prefixed "[rank N]") | none
  double grace_seconds = 10;         // SIGTERM -> SIGKILL delay when stopping workers
  // Restarts after a worker crashed or was killed (not after exit 2, a user error, nor after a
  // signal to the launcher): every worker is stopped and the job started again with
  // `--resume auto`. The command must be a `train` whose recipe saves checkpoints (the CLI checks).
  int max_restarts = 0;
  // With a hostfile and max_restarts: on a restart, hosts that fail the pre-flight are dropped
  // as long as at least min_nodes remain, and the job goes on at the smaller world size (the
  // recipe's global batch then takes more accumulation). 0: every host must pass.
  int min_nodes = 0;
  bool restarting = false;  // set by the restart loop for every attempt after the first
  std::string executable;            // the lmtrain binary the workers run
  std::vector<std::string> command;  // its arguments, e.g. {"train", "recipe.yaml"}
  // KEY=VALUE files applied to every worker's environment, later files winning (the launcher
  // passes $HOME/.lmtrain_env then ./.lmtrain_env; missing files are skipped).
  std::vector<std::string> env_files;

  // Several hosts: a DeepSpeed hostfile with filters; one agent per host, started over
  // `ssh -o BatchMode=yes` for hosts that are not this one (and for all with force_ssh).
  std::string hostfile;
  HostFilter filter;
  bool force_ssh = false;
  int ssh_port = 0;         // 0: ssh's default
  std::string ssh_config;   // passed to ssh as -F FILE

  // Agent mode (`lmtrain launch-agent`, started by the launcher on each host): the store is the
  // launcher's, the secret and extra variables arrive on stdin, and stdin closing (the launcher
  // or the ssh link gone) stops this host's workers.
  bool agent = false;
  std::vector<int> ranks;   // global ranks of this host's workers (default 0 .. nproc-1)
  std::vector<int> slots;   // their devices (default 0 .. nproc-1)
  int world_size = 0;       // default nproc_per_node
  int cross_rank = 0, cross_size = 1;
  std::string host_address; // what other ranks dial (LMTRAIN_HOST); default master_addr, and for
                            // an agent this host's address on the route to master_addr
};

// Reads a .lmtrain_env file: KEY=VALUE lines, `#` comments and blank lines ignored, an optional
// leading `export `. Throws lmt::Error naming file:line for anything else.
std::vector<std::pair<std::string, std::string>> read_env_file(const std::string& text, const std::string& source);

// The contents of an env file that may be absent (.lmtrain_env is optional): nullopt when
// nothing is at `path`; lmt::Error when something is there that is not a readable file.
std::optional<std::string> read_optional_env_file(const std::string& path);

// Runs the job on this host and returns the launcher's exit code: 0 when every worker exited 0;
// otherwise the first failing worker's exit code (128 + signal when it was killed). On a
// failure the other workers are stopped (SIGTERM, then SIGKILL after grace_seconds) by pid, and
// a table of every rank's exit and last output lines is printed to stderr. SIGINT or SIGTERM
// to the launcher is passed on to the workers as SIGTERM (they save a checkpoint and exit);
// a second SIGINT kills them. Throws lmt::Error for bad options before anything starts.
int launch(const LaunchOptions& options);

// `command` with any --resume and --overwrite removed and `--resume auto --overwrite` appended:
// what a restarted attempt runs (the latest checkpoint, or the start of the run without one).
std::vector<std::string> command_resuming_auto(const std::vector<std::string>& command);

}  // namespace lmt
