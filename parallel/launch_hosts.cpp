// `lmtrain launch --hostfile`: one agent per host (`lmtrain launch-agent`), local or over ssh.
// The agents start and supervise their host's workers; this process serves the rendezvous
// store, checks every host first, collects every rank's output and stops the job as a whole.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "parallel/hostfile.h"
#include "parallel/launch_util.h"
#include "parallel/launcher.h"
#include "parallel/net_address.h"
#include "parallel/store.h"

extern char** environ;

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string join(const std::vector<int>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(std::to_string(values[i]));
  }
  return out;
}

bool is_this_host(const std::string& host) {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return host == "localhost" || host == "::1" || is_ipv4_loopback(host) || host == name;
}

// Runs a command to completion; returns (wait status, output).
std::pair<int, std::string> capture(const std::vector<std::string>& args) {
  Child c = spawn_child(args, nullptr, /*with_stdin=*/false, /*die_with_parent=*/false);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = ::read(c.out_fd, buffer, sizeof(buffer))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  ::close(c.out_fd);
  int status = 0;
  while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return {status, output};
}

std::vector<std::string> ssh_command(const LaunchOptions& o, const std::string& host, const std::string& remote) {
  std::vector<std::string> args = {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"};
  if (!o.ssh_config.empty()) args.insert(args.end(), {"-F", o.ssh_config});
  if (o.ssh_port > 0) args.insert(args.end(), {"-p", std::to_string(o.ssh_port)});
  args.push_back(host);
  args.push_back(remote);
  return args;
}

// The address ssh dials for `host`: its HostName in the ssh configuration (an alias in the
// hostfile is common), else the name itself.
std::string ssh_hostname(const LaunchOptions& o, const std::string& host) {
  std::vector<std::string> args = {"ssh", "-G"};
  if (!o.ssh_config.empty()) args.insert(args.end(), {"-F", o.ssh_config});
  args.push_back(host);
  const auto [status, output] = capture(args);
  if (failed(status)) return host;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("hostname ", 0) == 0) return line.substr(9);
  return host;
}

// What the workers dial for the store this process serves (MASTER_ADDR): this machine's address
// on the route to the first host that is not this one, so the launcher need not be the first
// host of the hostfile, nor its name resolve elsewhere; this machine's name when there is no
// route.
std::string store_address(const LaunchOptions& o, const std::vector<HostSlots>& hosts) {
  const HostSlots* target = &hosts.front();
  for (const auto& h : hosts)
    if (!is_this_host(h.host)) {
      target = &h;
      break;
    }
  const std::string name = is_this_host(target->host) ? target->host : ssh_hostname(o, target->host);
  if (const std::optional<std::string> address = local_address_towards(name)) return *address;
  char own_name[256] = {};
  ::gethostname(own_name, sizeof(own_name) - 1);
  return own_name;
}

struct RankInfo {
  std::string host;
  std::deque<std::string> tail;
  std::FILE* log = nullptr;
  bool reported = false;
  int status = 0;
};

struct Agent {
  std::string host;
  bool remote = false;
  std::vector<int> ranks;
  Child child;
  std::thread reader;
  std::deque<std::string> tail;  // the agent's own lines (ssh errors and the like)
  int first_failed = -1;
  bool exited = false;
  int status = 0;
};

}  // namespace

int launch_on_hosts(const LaunchOptions& options) {
  LaunchOptions o = options;
  std::vector<HostSlots> hosts;
  if (!o.hostfile.empty()) {
    hosts = parse_hostfile(read_file_bytes(o.hostfile, "--hostfile"), o.hostfile);
    HostFilter filter = o.filter;
    if (o.nproc_per_node > 1 && filter.nproc_per_node == 0) filter.nproc_per_node = o.nproc_per_node;
    hosts = filter_hosts(hosts, filter);
  } else {
    HostSlots local{"localhost", {}};
    for (int s = 0; s < o.nproc_per_node; ++s) local.slots.push_back(s);
    hosts.push_back(local);
  }
  const std::string cwd = std::filesystem::current_path().string();

  // Pre-flight, all hosts at once: reachable, the same lmtrain, the working directory exists.
  // Not a structured binding: the checks' lambdas capture it, which clang 14 (the fuzz build)
  // does not allow for bindings.
  const std::string own_version = capture({o.executable, "--version"}).second;
  std::vector<std::string> problems(hosts.size());
  std::vector<std::thread> checks;
  for (size_t k = 0; k < hosts.size(); ++k) {
    checks.emplace_back([&, k] {
      const std::string& host = hosts[k].host;
      if (!o.force_ssh && is_this_host(host)) return;
      const auto [status, output] = capture(
          ssh_command(o, host, "cd " + shell_quote(cwd) + " && " + shell_quote(o.executable) + " --version"));
      if (failed(status))
        problems[k] = fmt::format("host {}: cannot run {} in {} over ssh ({}): {}", host, o.executable, cwd,
                                  describe_status(status), output.empty() ? "no output" : output);
      // The version is the last line: a login banner or a chatty shell start-up file on the
      // host may print before it.
      else if (output.substr(output.rfind('\n') + 1) != own_version)
        problems[k] = fmt::format("host {}: '{}' there, '{}' here; install the same lmtrain on every host", host,
                                  output, own_version);
    });
  }
  for (auto& t : checks) t.join();
  std::string report;
  for (const auto& p : problems)
    if (!p.empty()) report += "\n  " + p;
  if (o.min_nodes > static_cast<int>(hosts.size()))
    throw Error(fmt::format("--min-nodes {} but the hostfile gives {} host{}", o.min_nodes, hosts.size(),
                            hosts.size() == 1 ? "" : "s"));
  const auto failing = static_cast<int>(std::count_if(problems.begin(), problems.end(),
                                                      [](const std::string& p) { return !p.empty(); }));
  const int passing = static_cast<int>(hosts.size()) - failing;
  if (failing > 0 && o.restarting && o.min_nodes > 0 && passing >= o.min_nodes) {
    // A restart after a host was lost: go on without the hosts that do not answer.
    std::fprintf(stderr, "lmtrain launch: dropping %d host%s that failed the pre-flight (%d remain, --min-nodes %d):%s\n",
                 failing, failing == 1 ? "" : "s", passing, o.min_nodes, report.c_str());
    std::vector<HostSlots> kept;
    for (size_t k = 0; k < hosts.size(); ++k)
      if (problems[k].empty()) kept.push_back(hosts[k]);
    hosts = std::move(kept);
  } else if (!report.empty()) {
    if (o.restarting && o.min_nodes > 0)
      throw Error(fmt::format("launch: pre-flight failed on restart and only {} host{} answer, fewer than --min-nodes "
                              "{}; nothing was started:{}",
                              passing, passing == 1 ? "" : "s", o.min_nodes, report));
    throw Error("launch: pre-flight failed, nothing was started:" + report);
  }

  if (o.master_addr.empty()) o.master_addr = store_address(o, hosts);
  const std::string secret = make_job_secret();
  StoreServer store("", o.master_port, secret);  // every interface: remote agents dial master_addr
  int world = 0;
  for (const auto& h : hosts) world += static_cast<int>(h.slots.size());
  std::map<int, RankInfo> ranks;
  std::mutex mutex;
  if (!o.log_dir.empty()) create_directories_checked(o.log_dir, "--log-dir");
  std::fprintf(stderr, "lmtrain launch: %d workers on %zu hosts, rendezvous store at %s:%d\n", world, hosts.size(),
               o.master_addr.c_str(), store.port());

  // Variables every worker should see, sent to the agents on stdin (not on a command line).
  std::string header = secret + "\n";
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const bool forwarded = entry.rfind("NCCL_", 0) == 0 || entry.rfind("OMP_", 0) == 0 ||
                           (entry.rfind("LMTRAIN_", 0) == 0 && entry.rfind("LMTRAIN_JOB_SECRET=", 0) != 0);
    if (forwarded && entry.find('\n') == std::string::npos) header += entry + "\n";
  }
  for (const std::string& path : o.env_files) {
    const std::optional<std::string> text = read_optional_env_file(path);
    if (!text) continue;
    for (const auto& [key, value] : read_env_file(*text, path)) header += key + "=" + value + "\n";
  }
  header += "\n";

  auto signals = std::make_unique<LaunchSignals>();
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<std::unique_ptr<Agent>> agents;
  int next_rank = 0;
  for (size_t k = 0; k < hosts.size(); ++k) {
    auto agent = std::make_unique<Agent>();
    agent->host = hosts[k].host;
    agent->remote = o.force_ssh || !is_this_host(agent->host);
    for (size_t s = 0; s < hosts[k].slots.size(); ++s) agent->ranks.push_back(next_rank++);
    for (int r : agent->ranks) {
      ranks[r].host = agent->host;
      if (!o.log_dir.empty()) {
        const std::string path = (std::filesystem::path(o.log_dir) / fmt::format("rank_{}.log", r)).string();
        ranks[r].log = std::fopen(path.c_str(), "w");
      }
    }
    std::vector<std::string> args = {o.executable, "launch-agent", "--ranks", join(agent->ranks), "--slots",
                                     join(hosts[k].slots), "--world-size", std::to_string(world), "--cross-rank",
                                     std::to_string(k), "--cross-size", std::to_string(hosts.size()),
                                     "--master-addr", o.master_addr, "--master-port", std::to_string(store.port()),
                                     "--grace", fmt::format("{}", o.grace_seconds),
                                     "--"};
    args.insert(args.end(), o.command.begin(), o.command.end());
    if (agent->remote) {
      std::string remote = "cd " + shell_quote(cwd) + " && exec";
      for (const auto& a : args) {
        remote.push_back(' ');
        remote.append(shell_quote(a));
      }
      args = ssh_command(o, agent->host, remote);
    }
    agent->child = spawn_child(args, nullptr, /*with_stdin=*/true, /*die_with_parent=*/false);
    (void)!::write(agent->child.in_fd, header.data(), header.size());
    Agent* raw = agent.get();
    agent->reader = std::thread([raw, &ranks, &mutex, &o] {
      std::string pending;
      char buffer[4096];
      auto handle = [&](const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex);
        int rank = -1, value = 0;
        char rest_start = 0;
        if (std::sscanf(line.c_str(), "@@lmtrain-exit %d %d", &rank, &value) == 2 && ranks.count(rank)) {
          ranks[rank].reported = true;
          ranks[rank].status = value;
        } else if (std::sscanf(line.c_str(), "@@lmtrain-first %d", &rank) == 1) {
          raw->first_failed = rank;
        } else if (line.rfind("@@lmtrain-address ", 0) == 0) {
          std::fprintf(stderr, "lmtrain launch: host %s (ranks %s): workers reachable at %s\n", raw->host.c_str(),
                       join(raw->ranks).c_str(), line.substr(18).c_str());
        } else if (std::sscanf(line.c_str(), "[rank %d]%c", &rank, &rest_start) == 2 && ranks.count(rank)) {
          const size_t close = line.find("] ");
          const std::string text = close == std::string::npos ? std::string() : line.substr(close + 2);
          RankInfo& info = ranks[rank];
          info.tail.push_back(text);
          if (info.tail.size() > 20) info.tail.pop_front();
          if (info.log) std::fprintf(info.log, "%s\n", text.c_str()), std::fflush(info.log);
          if (o.tee == "all") std::printf("%s\n", line.c_str());
          if (o.tee == "rank0" && rank == 0) std::printf("%s\n", text.c_str());
          std::fflush(stdout);
        } else {
          raw->tail.push_back(line);
          if (raw->tail.size() > 20) raw->tail.pop_front();
          std::fprintf(stderr, "[%s] %s\n", raw->host.c_str(), line.c_str());
        }
      };
      for (ssize_t n; (n = ::read(raw->child.out_fd, buffer, sizeof(buffer))) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        pending.append(buffer, static_cast<size_t>(n));
        for (size_t end; (end = pending.find('\n')) != std::string::npos; pending.erase(0, end + 1))
          handle(pending.substr(0, end));
      }
      if (!pending.empty()) handle(pending);
      ::close(raw->child.out_fd);
    });
    agents.push_back(std::move(agent));
  }

  // Supervision: the first agent reporting a failure (or lost) stops the job; closing an agent's
  // stdin is its stop signal, and a stuck one is killed after the grace period.
  auto stop_all = [&] {
    for (auto& a : agents)
      if (a->child.in_fd >= 0) {
        ::close(a->child.in_fd);
        a->child.in_fd = -1;
      }
  };
  Agent* first_failed_agent = nullptr;
  std::vector<const Agent*> exit_order;
  int handled = 0;
  bool kill_pending = false;
  Clock::time_point kill_at{};
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000) + 5000);
  size_t alive = agents.size();
  while (alive > 0) {
    for (auto& a : agents) {
      if (a->exited) continue;
      int status = 0;
      if (::waitpid(a->child.pid, &status, WNOHANG) != a->child.pid) continue;
      a->exited = true;
      a->status = status;
      exit_order.push_back(a.get());
      --alive;
      if (failed(status) && !first_failed_agent && handled == 0) {
        first_failed_agent = a.get();
        stop_all();
        kill_at = Clock::now() + grace;
        kill_pending = true;
      }
    }
    if (LaunchSignals::count() > handled) {
      if (handled == 0) {
        std::fprintf(stderr, "lmtrain launch: signal %d: stopping the workers on every host (they save a checkpoint)\n",
                     LaunchSignals::last());
        stop_all();
      } else {
        for (auto& a : agents)
          if (!a->exited) ::kill(a->child.pid, SIGKILL);
      }
      handled = LaunchSignals::count();
    }
    if (kill_pending && Clock::now() >= kill_at) {
      for (auto& a : agents)
        if (!a->exited) ::kill(a->child.pid, SIGKILL);
      kill_pending = false;
    }
    if (alive > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& a : agents) a->reader.join();
  signals.reset();
  for (auto& [r, info] : ranks)
    if (info.log) std::fclose(info.log);

  if (!first_failed_agent) {
    for (auto& a : agents)
      if (failed(a->status)) return exit_code_of(a->status);
    return handled > 0 && LaunchSignals::last() == SIGINT ? kInterruptedExitCode : 0;
  }
  // The rank to blame: an agent's first failure that is a cause (not exit 3, a lost peer), in the
  // order the agents exited; else any rank that failed on its own; else the first agent's.
  int first = first_failed_agent->first_failed >= 0 ? first_failed_agent->first_failed
                                                    : first_failed_agent->ranks.front();
  bool found = false;
  for (const Agent* a : exit_order)
    if (!found && a->first_failed >= 0 && ranks[a->first_failed].reported &&
        primary_failure(ranks[a->first_failed].status)) {
      first = a->first_failed;
      found = true;
    }
  for (const auto& [r, info] : ranks)
    if (!found && info.reported && primary_failure(info.status)) {
      first = r;
      found = true;
    }
  // A rank a heartbeat found silent (stopped, hung, cut off) is the cause, not the ranks that
  // noticed or that had to be killed.
  const std::optional<HeartbeatLoss> loss = heartbeat_loss("127.0.0.1", store.port(), secret);
  const bool silent = loss && ranks.count(loss->rank) > 0;
  if (silent) first = loss->rank;
  const RankInfo& first_info = ranks[first];
  const int code = first_info.reported ? exit_code_of(first_info.status) : exit_code_of(first_failed_agent->status);
  const std::string first_exit = first_info.reported ? describe_status(first_info.status) : "its agent was lost";
  if (silent)
    std::fprintf(stderr,
                 "\nlmtrain launch: rank %d on %s stopped answering (no heartbeat: stopped, hung or cut off; then %s); "
                 "every other worker was stopped\n",
                 first, first_info.host.c_str(), first_exit.c_str());
  else
    std::fprintf(stderr, "\nlmtrain launch: rank %d on %s failed first (%s); every other worker was stopped\n", first,
                 first_info.host.c_str(), first_exit.c_str());
  std::fprintf(stderr, "  %-12s %4s  %-18s %s\n", "host", "rank", "exit", "last output");
  for (const auto& [r, info] : ranks) {
    std::string exit = info.reported ? describe_status(info.status) : std::string("lost");
    if (r == first) exit.append(" <- first");
    std::fprintf(stderr, "  %-12s %4d  %-18s %s\n", info.host.c_str(), r, exit.c_str(),
                 info.tail.empty() ? "(no output)" : info.tail.back().c_str());
  }
  for (const auto& a : agents)
    if (!a->tail.empty())
      std::fprintf(stderr, "  agent on %s: %s (%s)\n", a->host.c_str(), a->tail.back().c_str(),
                   describe_status(a->status).c_str());
  return code;
}

}  // namespace lmt
