#include "parallel/worker.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"

namespace lmt {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

std::unique_ptr<WorkerConnection> connect_worker(const DistEnv& env) {
  const std::string secret = env_or("LMTRAIN_JOB_SECRET", "");
  if (secret.empty())
    throw Error(fmt::format("WORLD_SIZE={} ({} variables) but no LMTRAIN_JOB_SECRET: start multi-process "
                            "training with `lmtrain launch`, which sets up the job",
                            env.world_size, env.source));
  if (env.master_addr.empty() || env.master_port <= 0)
    throw Error("MASTER_ADDR and MASTER_PORT must be set for a multi-process job (`lmtrain launch` sets them)");
  int timeout_s = 300;
  try {
    timeout_s = std::stoi(env_or("LMTRAIN_TIMEOUT_S", "300"));
  } catch (const std::exception&) {
    throw Error(fmt::format("LMTRAIN_TIMEOUT_S='{}' is not a number of seconds", env_or("LMTRAIN_TIMEOUT_S", "")));
  }
  const std::chrono::milliseconds timeout(static_cast<int64_t>(timeout_s) * 1000);
  char hostname[256] = {};
  ::gethostname(hostname, sizeof(hostname) - 1);
  const std::string own_address = env_or("LMTRAIN_HOST", is_loopback(env.master_addr) ? "127.0.0.1" : hostname);

  auto connection = std::make_unique<WorkerConnection>();
  connection->store = std::make_unique<StoreClient>(env.master_addr, static_cast<int>(env.master_port), secret,
                                                    std::min(timeout, std::chrono::milliseconds(120'000)));
  connection->group = make_gloo_group(*connection->store, static_cast<int>(env.rank),
                                      static_cast<int>(env.world_size), "gloo/", own_address, timeout);
  return connection;
}

}  // namespace lmt
