// lmtrain launch [--nproc-per-node N] [--master-addr A] [--master-port P] [--log-dir DIR]
//                [--tee rank0|all|none] [--grace S] -- <lmtrain subcommand and its arguments>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "parallel/launcher.h"

namespace lmt::app {

Action add_launch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "run an lmtrain command as several worker processes (data parallel)");
  auto options = std::make_shared<LaunchOptions>();
  cmd->add_option("--nproc-per-node", options->nproc_per_node, "workers on this host (default 1)");
  cmd->add_option("--master-addr", options->master_addr, "address of the rendezvous store (default 127.0.0.1)");
  cmd->add_option("--master-port", options->master_port, "its port (default 29500; 0 = any free port)");
  cmd->add_option("--log-dir", options->log_dir, "write each rank's output to DIR/rank_N.log");
  cmd->add_option("--tee", options->tee, "console output: rank0 (default), all (prefixed [rank N]) or none");
  cmd->add_option("--grace", options->grace_seconds,
                  "seconds between SIGTERM and SIGKILL when stopping workers after a failure (default 10)");
  cmd->add_option("command", options->command, "the lmtrain command each worker runs (after --)")->expected(-1);
  cmd->footer("Everything after -- is the lmtrain command each worker runs, e.g.\n"
              "  lmtrain launch --nproc-per-node 2 -- train recipes/shakespeare-char.yaml");
  return [options] {
    char self[PATH_MAX] = {};
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) throw Error("launch: cannot find the lmtrain executable (/proc/self/exe)");
    options->executable.assign(self, static_cast<size_t>(n));
    if (const char* home = std::getenv("HOME")) options->env_files.push_back(std::string(home) + "/.lmtrain_env");
    options->env_files.push_back(".lmtrain_env");
    return launch(*options);
  };
}

}  // namespace lmt::app
