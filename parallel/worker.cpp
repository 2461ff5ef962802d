#include "parallel/worker.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"
#include "parallel/hostfile.h"
#include "parallel/net_address.h"

namespace lmt {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || is_ipv4_loopback(host);
}

}  // namespace

std::unique_ptr<WorkerConnection> connect_worker(const DistEnv& env, std::chrono::milliseconds heartbeat_timeout) {
  std::string secret = env_or("LMTRAIN_JOB_SECRET", "");
  const bool own_launcher = !secret.empty();
  if (!own_launcher) {
    if (env.job_id.empty())
      throw Error(fmt::format("WORLD_SIZE={} ({} variables) but no job id (TORCHELASTIC_RUN_ID or SLURM_JOB_ID) "
                              "and no LMTRAIN_JOB_SECRET: start the job with `lmtrain launch`, torchrun or srun, "
                              "or set LMTRAIN_JOB_SECRET to the same value on every rank",
                              env.world_size, env.source));
    if (env.source == "slurm" && !env.slurm_step)
      throw Error(fmt::format("SLURM_NTASKS={} but SLURM_STEP_ID is not set: this is the batch script of Slurm job {} "
                              "itself, not one of its {} tasks; start the workers with `srun lmtrain train ...` "
                              "inside the script",
                              env.world_size, env.job_id.empty() ? "?" : env.job_id, env.world_size));
    secret = "job-" + env.job_id;
  }
  if (env.master_addr.empty() || env.master_port <= 0)
    throw Error(fmt::format("MASTER_ADDR and MASTER_PORT must be set for a multi-process job ({} variables); "
                            "`lmtrain launch` and torchrun set them, under Slurm export MASTER_ADDR or "
                            "SLURM_JOB_NODELIST", env.source));
  if (env.master_port > 65535)
    throw Error(fmt::format("MASTER_PORT={} is not a port number (1 to 65535)", env.master_port));
  int timeout_s = 300;
  try {
    timeout_s = std::stoi(env_or("LMTRAIN_TIMEOUT_S", "300"));
  } catch (const std::exception&) {
    throw Error(fmt::format("LMTRAIN_TIMEOUT_S='{}' is not a number of seconds", env_or("LMTRAIN_TIMEOUT_S", "")));
  }
  const std::chrono::milliseconds timeout(static_cast<int64_t>(timeout_s) * 1000);
  char hostname[256] = {};
  ::gethostname(hostname, sizeof(hostname) - 1);
  // Without the launcher's LMTRAIN_HOST (torchrun, Slurm): the address on the route to the
  // store's host. The host name is the last resort: Debian maps it to 127.0.1.1, which the
  // other hosts cannot dial.
  const std::string own_address =
      env_or("LMTRAIN_HOST", is_loopback(env.master_addr)
                                 ? "127.0.0.1"
                                 : local_address_towards(env.master_addr).value_or(hostname));

  auto connection = std::make_unique<WorkerConnection>();
  connection->collective_timeout = timeout;
  int64_t store_port = env.master_port;
  if (!own_launcher) {
    const std::string explicit_port = env_or("LMTRAIN_STORE_PORT", "");
    store_port = !explicit_port.empty() ? std::atoi(explicit_port.c_str()) : env.store_port;
    if (store_port <= 0 || store_port > 65535)
      throw Error(!explicit_port.empty()
                      ? fmt::format("LMTRAIN_STORE_PORT='{}' is not a port number", explicit_port)
                      : fmt::format("MASTER_PORT={} leaves no port for lmtrain's rendezvous store (torchrun's own "
                                    "store holds MASTER_PORT, lmtrain takes the next one); use a lower MASTER_PORT "
                                    "or set LMTRAIN_STORE_PORT", env.master_port));
    // Rank 0 listens on every interface: MASTER_ADDR names this host as the others see it.
    if (env.rank == 0) connection->server = std::make_unique<StoreServer>("", static_cast<int>(store_port), secret);
  }
  connection->store = std::make_unique<StoreClient>(env.master_addr, static_cast<int>(store_port), secret,
                                                    std::min(timeout, std::chrono::milliseconds(120'000)));
  connection->group = make_gloo_group(*connection->store, static_cast<int>(env.rank),
                                      static_cast<int>(env.world_size), "gloo/", own_address, timeout);
  if (heartbeat_timeout.count() > 0) {
    HeartbeatOptions beat;
    beat.store_host = env.master_addr;
    beat.store_port = static_cast<int>(store_port);
    beat.secret = secret;
    beat.rank = static_cast<int>(env.rank);
    beat.world_size = static_cast<int>(env.world_size);
    beat.host = own_address == hostname ? own_address : fmt::format("{} ({})", hostname, own_address);
    beat.timeout = heartbeat_timeout;
    connection->heartbeat = std::make_unique<Heartbeat>(std::move(beat));
  }
  return connection;
}

}  // namespace lmt
