#include "parallel/launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "parallel/launch_util.h"
#include "parallel/net_address.h"
#include "parallel/store.h"

extern char** environ;

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kTailLines = 20;

std::mutex g_console;

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1;
  std::thread reader;
  std::mutex mutex;
  std::deque<std::string> tail;
  std::FILE* log = nullptr;
  bool exited = false;
  int status = 0;
};

// Copies a worker's output line by line to its log, its tail buffer and (per --tee) the console.
void read_output(Worker& w, const std::string& tee) {
  std::string pending;
  char buffer[4096];
  auto emit = [&](const std::string& line) {
    if (w.log) {
      std::fwrite(line.data(), 1, line.size(), w.log);
      std::fputc('\n', w.log);
      std::fflush(w.log);
    }
    {
      std::lock_guard<std::mutex> lock(w.mutex);
      w.tail.push_back(line);
      if (w.tail.size() > kTailLines) w.tail.pop_front();
    }
    if (tee == "all" || (tee == "rank0" && w.rank == 0)) {
      std::lock_guard<std::mutex> lock(g_console);
      if (tee == "all") std::fputs(fmt::format("[rank {}] ", w.rank).c_str(), stdout);
      std::fputs(line.c_str(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
  };
  for (;;) {
    const ssize_t n = ::read(w.out_fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, static_cast<size_t>(n));
    for (size_t end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
      emit(pending.substr(0, end));
      pending.erase(0, end + 1);
    }
  }
  if (!pending.empty()) emit(pending);
  ::close(w.out_fd);
}

// The environment of rank `rank`: ours, then the .lmtrain_env files, then the job's variables.
std::vector<std::string> worker_environment(const LaunchOptions& o, int index, int port, const std::string& secret,
                                            const std::vector<std::pair<std::string, std::string>>& extra) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& path : o.env_files) {
    const std::optional<std::string> text = read_optional_env_file(path);
    if (!text) continue;
    for (auto& [key, value] : read_env_file(*text, path)) vars[key] = value;
  }
  for (const auto& [key, value] : extra) vars[key] = value;
  std::string devices;
  for (size_t s = 0; s < o.slots.size(); ++s) {
    if (s > 0) devices.push_back(',');
    devices.append(std::to_string(o.slots[s]));
  }
  const std::map<std::string, std::string> job = {
      {"RANK", std::to_string(o.ranks[index])},
      {"LOCAL_RANK", std::to_string(index)},
      {"WORLD_SIZE", std::to_string(o.world_size)},
      {"LOCAL_WORLD_SIZE", std::to_string(o.ranks.size())},
      {"CROSS_RANK", std::to_string(o.cross_rank)},
      {"CROSS_SIZE", std::to_string(o.cross_size)},
      {"MASTER_ADDR", o.master_addr},
      {"MASTER_PORT", std::to_string(port)},
      {"CUDA_VISIBLE_DEVICES", devices},
      {"LMTRAIN_JOB_SECRET", secret},
      {"LMTRAIN_HOST", o.host_address.empty() ? o.master_addr : o.host_address}};
  for (const auto& [k, v] : job) vars[k] = v;
  // Share the cores instead of every worker starting one thread per core.
  if (!vars.count("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    vars["OMP_NUM_THREADS"] = std::to_string(std::max(1u, cores / static_cast<unsigned>(o.ranks.size())));
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

void start_worker(Worker& w, int index, const LaunchOptions& o, int port, const std::string& secret,
                  const std::vector<std::pair<std::string, std::string>>& extra) {
  const std::vector<std::string> env = worker_environment(o, index, port, secret, extra);
  std::vector<std::string> args = {o.executable};
  args.insert(args.end(), o.command.begin(), o.command.end());
  // If the launcher dies (even by SIGKILL) the worker gets SIGTERM: it checkpoints and exits.
  const Child child = spawn_child(args, &env, /*with_stdin=*/false, /*die_with_parent=*/true);
  w.pid = child.pid;
  w.out_fd = child.out_fd;
}

void signal_alive(std::vector<std::unique_ptr<Worker>>& workers, int signum) {
  for (auto& w : workers)
    if (!w->exited && w->pid > 0) ::kill(w->pid, signum);  // by pid, never by name
}

// `silent`: the rank was found silent by a heartbeat (stopped, hung), and its exit is the kill
// that ended it.
void print_table(const std::vector<std::unique_ptr<Worker>>& workers, int first_failed, const std::string& host,
                 bool silent) {
  std::lock_guard<std::mutex> lock(g_console);
  int first_status = 0;
  for (const auto& w : workers)
    if (w->rank == first_failed) first_status = w->status;
  if (silent)
    fmt::print(stderr, "\nlmtrain launch: rank {} stopped answering (no heartbeat: stopped or hung; then {}); every "
                       "other worker was stopped\n", first_failed, describe_status(first_status));
  else
    fmt::print(stderr, "\nlmtrain launch: rank {} failed first ({}); every other worker was stopped\n", first_failed,
               describe_status(first_status));
  fmt::print(stderr, "  {:<12} {:>4}  {:<18} {}\n", "host", "rank", "exit", "last output");
  for (const auto& w : workers) {
    std::lock_guard<std::mutex> tail_lock(w->mutex);
    const size_t shown = std::min<size_t>(3, w->tail.size());
    const std::string mark = w->rank == first_failed ? " <- first" : "";
    fmt::print(stderr, "  {:<12} {:>4}  {:<18} {}\n", host, w->rank, describe_status(w->status) + mark,
               shown == 0 ? std::string("(no output)") : w->tail[w->tail.size() - shown]);
    for (size_t i = w->tail.size() - shown + (shown ? 1 : 0); i < w->tail.size(); ++i)
      fmt::print(stderr, "  {:<12} {:>4}  {:<18} {}\n", "", "", "", w->tail[i]);
  }
}

}  // namespace

std::optional<std::string> read_optional_env_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) return std::nullopt;
  return read_file_bytes(path, "environment file");
}

std::vector<std::pair<std::string, std::string>> read_env_file(const std::string& text, const std::string& source) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    std::string entry = line.substr(start);
    if (entry.rfind("export ", 0) == 0) entry = entry.substr(7);
    while (!entry.empty() && (entry.back() == '\r' || entry.back() == ' ')) entry.pop_back();
    const size_t eq = entry.find('=');
    const std::string key = entry.substr(0, eq);
    const bool valid_key = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])) &&
                           key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
                               std::string::npos;
    if (eq == std::string::npos || !valid_key)
      throw Error(fmt::format("{}:{}: expected KEY=VALUE (a variable name, '=', its value), got '{}'", source,
                              number, entry));
    out.emplace_back(key, entry.substr(eq + 1));
  }
  return out;
}

namespace {

void check_common(const LaunchOptions& o) {
  if (o.nproc_per_node < 1 || o.nproc_per_node > kMaxSlotsPerHost)
    throw Error(fmt::format("--nproc-per-node {} must be at least 1 and at most {}", o.nproc_per_node,
                            kMaxSlotsPerHost));
  if (o.command.empty())
    throw Error("launch: no command; put the lmtrain subcommand after --, e.g. `lmtrain launch --nproc-per-node 2 -- "
                "train recipe.yaml`");
  if (o.tee != "rank0" && o.tee != "all" && o.tee != "none")
    throw Error(fmt::format("--tee '{}' must be rank0, all or none", o.tee));
  if (o.max_restarts < 0 || o.max_restarts > kMaxRestarts)
    throw Error(fmt::format("--max-restarts {} must be from 0 to {}", o.max_restarts, kMaxRestarts));
  if (o.min_nodes < 0) throw Error(fmt::format("--min-nodes {} must be at least 0", o.min_nodes));
  if (o.min_nodes > 0 && !o.agent && (o.hostfile.empty() || o.max_restarts == 0))
    throw Error("--min-nodes drops hosts of a --hostfile that fail the pre-flight when the job restarts; it needs "
                "--hostfile and --max-restarts");
  if (o.master_port < 0 || o.master_port > 65535)
    throw Error(fmt::format("--master-port {} is outside 0..65535", o.master_port));
  for (const std::string& path : o.env_files)  // checked before any worker starts
    if (const std::optional<std::string> text = read_optional_env_file(path)) read_env_file(*text, path);
}

// Agent mode: the header the launcher writes on stdin (secret, then KEY=VALUE lines, then an
// empty line). Afterwards stdin stays open; EOF means "stop".
std::string read_line_fd(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

// Runs this host's workers: the whole job without a hostfile, or one host's share as an agent.
int run_workers(LaunchOptions o) {
  if (o.ranks.empty())
    for (int r = 0; r < o.nproc_per_node; ++r) o.ranks.push_back(r);
  if (o.slots.empty())
    for (int s = 0; s < static_cast<int>(o.ranks.size()); ++s) o.slots.push_back(s);
  if (o.world_size == 0) o.world_size = static_cast<int>(o.ranks.size());
  if (o.master_addr.empty()) o.master_addr = "127.0.0.1";
  if (!o.log_dir.empty()) create_directories_checked(o.log_dir, "--log-dir");

  std::string secret;
  std::vector<std::pair<std::string, std::string>> extra;
  std::unique_ptr<StoreServer> store;
  int port = o.master_port;
  if (o.agent) {
    secret = read_line_fd(STDIN_FILENO);
    if (secret.empty()) throw Error("launch-agent: no job secret on stdin (it is started by `lmtrain launch`)");
    for (std::string line = read_line_fd(STDIN_FILENO); !line.empty(); line = read_line_fd(STDIN_FILENO))
      for (auto& kv : read_env_file(line, "launcher")) extra.push_back(kv);
    o.tee = "all";  // every line goes back to the launcher, tagged with its rank
    // Other hosts dial this host's workers at its address on the route to the store's host:
    // the interface that host is reached through, never a name that may resolve to loopback.
    if (o.host_address.empty()) o.host_address = local_address_towards(o.master_addr).value_or(o.master_addr);
    fmt::print("@@lmtrain-address {}\n", o.host_address);
    std::fflush(stdout);
  } else {
    secret = make_job_secret();
    store = std::make_unique<StoreServer>(o.master_addr, o.master_port, secret);
    port = store->port();
  }
  LaunchSignals signals;
  if (o.agent) {
    // The launcher (or the ssh link to it) going away closes stdin: stop like on a signal.
    std::thread([] {
      char c;
      while (::read(STDIN_FILENO, &c, 1) > 0) {
      }
      LaunchSignals::raise(SIGTERM);
    }).detach();
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (size_t i = 0; i < o.ranks.size(); ++i) {
    auto w = std::make_unique<Worker>();
    w->rank = o.ranks[i];
    if (!o.log_dir.empty()) {
      const std::string path = (std::filesystem::path(o.log_dir) / fmt::format("rank_{}.log", w->rank)).string();
      w->log = std::fopen(path.c_str(), "w");
      if (!w->log) throw Error(fmt::format("launch: cannot write log file '{}': {}", path, std::strerror(errno)));
    }
    start_worker(*w, static_cast<int>(i), o, port, secret, extra);
    Worker* raw = w.get();
    w->reader = std::thread([raw, &o] { read_output(*raw, o.tee); });
    workers.push_back(std::move(w));
  }

  int first_failed = -1;
  std::vector<std::pair<int, int>> failures;  // (rank, status) in the order they were seen
  int handled_signals = 0;
  bool kill_pending = false;
  Clock::time_point kill_at{};
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
  size_t alive = workers.size();
  while (alive > 0) {
    for (auto& w : workers) {
      if (w->exited) continue;
      int status = 0;
      if (::waitpid(w->pid, &status, WNOHANG) != w->pid) continue;
      w->exited = true;
      w->status = status;
      --alive;
      if (failed(status)) failures.emplace_back(w->rank, status);
      if (failed(status) && first_failed < 0 && handled_signals == 0) {
        first_failed = w->rank;
        signal_alive(workers, SIGTERM);
        kill_at = Clock::now() + grace;
        kill_pending = true;
      }
    }
    const int signals = LaunchSignals::count();
    if (signals > handled_signals) {
      if (handled_signals == 0) {
        if (!o.agent) {
          std::lock_guard<std::mutex> lock(g_console);
          fmt::print(stderr, "lmtrain launch: signal {}: stopping the workers (they save a checkpoint); "
                             "Ctrl-C again kills them\n", LaunchSignals::last());
        }
        signal_alive(workers, SIGTERM);
        if (o.agent) {  // nobody is left to send a second signal: enforce the grace period here
          kill_at = Clock::now() + grace;
          kill_pending = true;
        }
      } else {
        signal_alive(workers, SIGKILL);
      }
      handled_signals = signals;
    }
    if (kill_pending && Clock::now() >= kill_at) {
      signal_alive(workers, SIGKILL);
      kill_pending = false;
    }
    if (alive > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers) {
    w->reader.join();
    if (w->log) std::fclose(w->log);
  }
  // The rank to blame: the first one seen failing on its own; ranks that only lost a peer
  // (exit 3) can be seen first when they notice faster than the failed one is reaped.
  if (first_failed >= 0)
    for (const auto& [rank, status] : failures)
      if (primary_failure(status)) {
        first_failed = rank;
        break;
      }
  if (o.agent) {
    // What happened to each worker, for the launcher's table.
    std::lock_guard<std::mutex> lock(g_console);
    for (const auto& w : workers) fmt::print("@@lmtrain-exit {} {}\n", w->rank, w->status);
    if (first_failed >= 0) fmt::print("@@lmtrain-first {}\n", first_failed);
    std::fflush(stdout);
  }
  if (first_failed >= 0) {
    // A rank a heartbeat found silent is the cause, not the ranks that noticed or were killed.
    bool silent = false;
    if (!o.agent)
      if (const std::optional<HeartbeatLoss> loss = heartbeat_loss(o.master_addr, port, secret))
        for (const auto& w : workers)
          if (w->rank == loss->rank) {
            first_failed = loss->rank;
            silent = true;
          }
    if (!o.agent) print_table(workers, first_failed, o.master_addr, silent);
    for (const auto& w : workers)
      if (w->rank == first_failed) return exit_code_of(w->status);
  }
  for (auto& w : workers)
    if (failed(w->status)) return exit_code_of(w->status);
  return handled_signals > 0 && LaunchSignals::last() == SIGINT ? kInterruptedExitCode : 0;
}

}  // namespace

int launch(const LaunchOptions& o) {
  check_common(o);
  if (o.agent) return run_workers(o);
  const auto attempt = [](const LaunchOptions& a) {
    return !a.hostfile.empty() || a.force_ssh ? launch_on_hosts(a) : run_workers(a);
  };
  if (o.max_restarts == 0) return attempt(o);
  return run_with_restarts(o, attempt);
}

}  // namespace lmt
