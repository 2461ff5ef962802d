#include "parallel/dist_env.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>

#include "core/error.h"
#include "parallel/slurm_hostlist.h"

namespace lmt {
namespace {

int64_t parse_int(const EnvLookup& lookup, const std::string& name, int64_t fallback,
                  int64_t minimum) {
  auto text = lookup(name);
  if (!text) return fallback;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || ptr != text->data() + text->size() || value < minimum)
    throw Error(fmt::format("environment variable {}='{}' is not an integer >= {}; fix or unset it",
                            name, *text, minimum));
  return value;
}

}  // namespace

DistEnv read_dist_env(const EnvLookup& lookup) {
  DistEnv env;
  if (lookup("WORLD_SIZE") || lookup("RANK")) {
    env.source = "torchrun";
    env.world_size = parse_int(lookup, "WORLD_SIZE", 1, 1);
    env.rank = parse_int(lookup, "RANK", 0, 0);
    env.local_rank = parse_int(lookup, "LOCAL_RANK", env.rank, 0);
    env.local_world_size = parse_int(lookup, "LOCAL_WORLD_SIZE", env.world_size, 1);
  } else if (lookup("SLURM_PROCID") && lookup("SLURM_NTASKS")) {
    env.source = "slurm";
    env.world_size = parse_int(lookup, "SLURM_NTASKS", 1, 1);
    env.rank = parse_int(lookup, "SLURM_PROCID", 0, 0);
    env.local_rank = parse_int(lookup, "SLURM_LOCALID", 0, 0);
    // SLURM_NTASKS_PER_NODE may read "4(x2)"; its leading count is the local world size.
    if (auto per_node = lookup("SLURM_NTASKS_PER_NODE")) {
      int64_t value = 0;
      std::from_chars(per_node->data(), per_node->data() + per_node->size(), value);
      env.local_world_size = value > 0 ? value : 1;
    }
  }
  if (env.rank >= env.world_size) {
    const bool slurm = env.source == "slurm";
    throw Error(fmt::format("{}={} is not below {}={}; a rank must be in [0, world size)",
                            slurm ? "SLURM_PROCID" : "RANK", env.rank,
                            slurm ? "SLURM_NTASKS" : "WORLD_SIZE", env.world_size));
  }
  env.master_addr = lookup("MASTER_ADDR").value_or("");
  env.master_port = parse_int(lookup, "MASTER_PORT", 0, 0);
  if (env.source == "slurm") {
    // srun sets no MASTER_*: rank 0 runs on the first node of the allocation.
    const char* list_name = lookup("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    const auto nodelist = lookup(list_name);
    if (env.master_addr.empty() && nodelist) env.master_addr = first_slurm_host(*nodelist, list_name);
    if (env.master_port == 0) env.master_port = 29500;
    env.job_id = lookup("SLURM_JOB_ID").value_or("");
    if (auto step = lookup("SLURM_STEP_ID")) {
      env.job_id += "." + *step;
      env.slurm_step = true;
    }
  } else if (env.source == "torchrun") {
    env.job_id = lookup("TORCHELASTIC_RUN_ID").value_or("");
    env.restart_count = parse_int(lookup, "TORCHELASTIC_RESTART_COUNT", -1, 0);
    env.max_restarts = parse_int(lookup, "TORCHELASTIC_MAX_RESTARTS", -1, 0);
  }
  env.launch_restart = parse_int(lookup, kRestartCountVariable, 0, 0);
  env.store_port = env.master_port;
  if (env.source == "torchrun") {
    // torchrun writes Python's str(bool); without the variable (older torchrun, variables set
    // by hand) assume its store holds MASTER_PORT, which is never wrong, only one port more.
    const std::string agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("True");
    const bool workers_own_port = agent_store == "False" || agent_store == "false" || agent_store == "0";
    if (!workers_own_port && env.master_port > 0 && env.master_port <= 65535) env.store_port = env.master_port + 1;
  }
  return env;
}

std::string first_slurm_host(const std::string& nodelist, const std::string& variable) {
  return expand_slurm_hostlist(nodelist, variable).front();  // never empty: an empty list is an error
}

DistEnv read_dist_env() {
  return read_dist_env([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace lmt
