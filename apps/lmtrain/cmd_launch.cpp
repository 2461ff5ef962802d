// lmtrain launch [--hostfile F [--include S | --exclude S] [--num-nodes N]] [--nproc-per-node N]
//                [--master-addr A] [--master-port P] [--ssh-port P] [--ssh-config F] [--force-ssh]
//                [--log-dir DIR] [--tee rank0|all|none] [--grace S] [--max-restarts N [--min-nodes M]] -- <lmtrain subcommand ...>
// lmtrain launch-agent ...: one host's share of a job, started by `lmtrain launch` (hidden)
#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "parallel/launcher.h"

namespace lmt::app {
namespace {

std::string own_executable() {
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) throw Error("launch: cannot find the lmtrain executable (/proc/self/exe)");
  return std::string(self, static_cast<size_t>(n));
}

std::vector<int> parse_list(const std::string& text, const char* flag) {
  std::vector<int> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      out.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw Error(fmt::format("{} '{}': '{}' is not a number", flag, text, item));
    }
  }
  return out;
}

// 0 to an hour: NaN, negative or astronomical delays would stop workers at once or never.
CLI::Validator grace_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double seconds = 0;
        try {
          size_t used = 0;
          seconds = std::stod(text, &used);
          if (used != text.size()) return "--grace must be a number of seconds, got '" + text + "'";
        } catch (const std::exception&) {
          return "--grace must be a number of seconds, got '" + text + "'";
        }
        if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxGraceSeconds)
          return fmt::format("--grace must be from 0 to {} seconds, got '{}'", kMaxGraceSeconds, text);
        return std::string();
      },
      "SECONDS");
}

}  // namespace

Action add_launch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "run an lmtrain command as several worker processes (data parallel)");
  auto options = std::make_shared<LaunchOptions>();
  cmd->add_option("--hostfile", options->hostfile, "DeepSpeed hostfile: one 'HOST slots=N' per line");
  cmd->add_option("--include", options->filter.include, "only these hosts/slots, e.g. host1:0,2@host2");
  cmd->add_option("--exclude", options->filter.exclude, "all but these hosts/slots");
  cmd->add_option("--num-nodes", options->filter.num_nodes, "use the first N hosts");
  cmd->add_option("--nproc-per-node", options->nproc_per_node,
                  "workers per host (default: 1 without a hostfile, else each host's slots)");
  cmd->add_option("--master-addr", options->master_addr,
                  "address of the rendezvous store (default 127.0.0.1; with a hostfile, this machine's "
                  "address on the route to the hosts)");
  cmd->add_option("--master-port", options->master_port, "its port (default 29500; 0 = any free port)");
  cmd->add_option("--ssh-port", options->ssh_port, "ssh port of the hosts (default: ssh's)");
  cmd->add_option("--ssh-config", options->ssh_config, "ssh configuration file (ssh -F)");
  cmd->add_flag("--force-ssh", options->force_ssh, "start the agent over ssh even for this host");
  cmd->add_option("--log-dir", options->log_dir, "write each rank's output to DIR/rank_N.log");
  cmd->add_option("--tee", options->tee, "console output: rank0 (default), all (prefixed [rank N]) or none");
  cmd->add_option("--grace", options->grace_seconds,
                  "seconds between SIGTERM and SIGKILL when stopping workers (default 10)")
      ->check(grace_check());
  cmd->add_option("--max-restarts", options->max_restarts,
                  "when a worker crashes or is killed, start the job again from its latest checkpoint, up to N "
                  "times (default 0; the command must be a train that saves checkpoints)")
      ->check(CLI::Range(0, kMaxRestarts));
  cmd->add_option("--min-nodes", options->min_nodes,
                  "with --hostfile and --max-restarts: on a restart, drop hosts that fail the pre-flight while at "
                  "least N remain (default 0: every host must pass)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("command", options->command, "the lmtrain command each worker runs (after --)")->expected(-1);
  cmd->footer("Everything after -- is the lmtrain command each worker runs, e.g.\n"
              "  lmtrain launch --nproc-per-node 2 -- train recipes/shakespeare-char.yaml");
  return [options] {
    if (options->max_restarts > 0) check_restartable_train_command(options->command);
    options->executable = own_executable();
    if (const char* home = std::getenv("HOME")) options->env_files.push_back(std::string(home) + "/.lmtrain_env");
    options->env_files.push_back(".lmtrain_env");
    return launch(*options);
  };
}

Action add_launch_agent_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch-agent", "");  // internal: started by `lmtrain launch`
  cmd->group("");
  auto options = std::make_shared<LaunchOptions>();
  auto ranks = std::make_shared<std::string>(), slots = std::make_shared<std::string>();
  options->agent = true;
  cmd->add_option("--ranks", *ranks)->required();
  cmd->add_option("--slots", *slots)->required();
  cmd->add_option("--world-size", options->world_size)->required();
  cmd->add_option("--cross-rank", options->cross_rank);
  cmd->add_option("--cross-size", options->cross_size);
  cmd->add_option("--master-addr", options->master_addr)->required();
  cmd->add_option("--master-port", options->master_port)->required();
  cmd->add_option("--host-address", options->host_address);
  cmd->add_option("--grace", options->grace_seconds)->check(grace_check());
  cmd->add_option("command", options->command)->expected(-1);
  return [options, ranks, slots] {
    options->ranks = parse_list(*ranks, "--ranks");
    options->slots = parse_list(*slots, "--slots");
    options->nproc_per_node = static_cast<int>(options->ranks.size());
    options->executable = own_executable();
    return launch(*options);
  };
}

}  // namespace lmt::app
