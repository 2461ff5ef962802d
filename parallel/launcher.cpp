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
#include "parallel/store.h"

extern char** environ;

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kTailLines = 20;

std::atomic<int> g_launcher_signals{0};
std::atomic<int> g_last_signal{0};
extern "C" void on_launcher_signal(int signum) {
  g_last_signal.store(signum);
  g_launcher_signals.fetch_add(1);
}

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

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return fmt::format("signal {} ({})", WTERMSIG(status), name ? name : "?");
  }
  return "unknown";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

bool failed(int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }

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
std::vector<std::string> worker_environment(const LaunchOptions& o, int rank, int port, const std::string& secret) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& path : o.env_files) {
    std::ifstream in(path);
    if (!in) continue;
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto& [key, value] : read_env_file(text, path)) vars[key] = value;
  }
  std::string devices;
  for (int s = 0; s < o.nproc_per_node; ++s) {
    if (s > 0) devices.push_back(',');
    devices.append(std::to_string(s));
  }
  const std::map<std::string, std::string> job = {
      {"RANK", std::to_string(rank)},
      {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(o.nproc_per_node)},
      {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
      {"CROSS_RANK", "0"},
      {"CROSS_SIZE", "1"},
      {"MASTER_ADDR", o.master_addr},
      {"MASTER_PORT", std::to_string(port)},
      {"CUDA_VISIBLE_DEVICES", devices},
      {"LMTRAIN_JOB_SECRET", secret},
      {"LMTRAIN_HOST", o.master_addr}};
  for (const auto& [k, v] : job) vars[k] = v;
  // Share the cores instead of every worker starting one thread per core.
  if (!vars.count("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    vars["OMP_NUM_THREADS"] = std::to_string(std::max(1u, cores / static_cast<unsigned>(o.nproc_per_node)));
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

void start_worker(Worker& w, const LaunchOptions& o, int port, const std::string& secret) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(fmt::format("launch: pipe failed: {}", std::strerror(errno)));
  std::vector<std::string> env = worker_environment(o, w.rank, port, secret);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = {o.executable};
  args.insert(args.end(), o.command.begin(), o.command.end());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(fmt::format("launch: cannot start rank {}: {}", w.rank, std::strerror(errno)));
  if (pid == 0) {
    // Own process group: a Ctrl-C in the terminal reaches the launcher, which stops workers in order.
    ::setpgid(0, 0);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    const std::string message = fmt::format("launch: cannot run {}: {}\n", argv[0], std::strerror(errno));
    (void)!::write(STDERR_FILENO, message.data(), message.size());
    ::_exit(127);
  }
  ::close(fds[1]);
  w.pid = pid;
  w.out_fd = fds[0];
}

void signal_alive(std::vector<std::unique_ptr<Worker>>& workers, int signum) {
  for (auto& w : workers)
    if (!w->exited && w->pid > 0) ::kill(w->pid, signum);  // by pid, never by name
}

void print_table(const std::vector<std::unique_ptr<Worker>>& workers, int first_failed, const std::string& host) {
  std::lock_guard<std::mutex> lock(g_console);
  fmt::print(stderr, "\nlmtrain launch: rank {} failed first ({}); every other worker was stopped\n", first_failed,
             describe_status(workers[first_failed]->status));
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

int launch(const LaunchOptions& o) {
  if (o.nproc_per_node < 1) throw Error(fmt::format("--nproc-per-node {} must be at least 1", o.nproc_per_node));
  if (o.command.empty())
    throw Error("launch: no command; put the lmtrain subcommand after --, e.g. `lmtrain launch --nproc-per-node 2 -- "
                "train recipe.yaml`");
  if (o.tee != "rank0" && o.tee != "all" && o.tee != "none")
    throw Error(fmt::format("--tee '{}' must be rank0, all or none", o.tee));
  if (o.master_port < 0 || o.master_port > 65535)
    throw Error(fmt::format("--master-port {} is outside 0..65535", o.master_port));
  if (!o.log_dir.empty()) std::filesystem::create_directories(o.log_dir);
  for (const std::string& path : o.env_files) {  // checked before any worker starts
    std::ifstream in(path);
    if (in) read_env_file(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), path);
  }

  const std::string secret = make_job_secret();
  StoreServer store(o.master_addr, o.master_port, secret);
  std::vector<std::unique_ptr<Worker>> workers;
  struct sigaction action {}, old_int {}, old_term {};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  g_launcher_signals = 0;
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  struct Restore {
    struct sigaction i, t;
    ~Restore() {
      ::sigaction(SIGINT, &i, nullptr);
      ::sigaction(SIGTERM, &t, nullptr);
    }
  } restore{old_int, old_term};

  for (int rank = 0; rank < o.nproc_per_node; ++rank) {
    auto w = std::make_unique<Worker>();
    w->rank = rank;
    if (!o.log_dir.empty()) {
      const std::string path = (std::filesystem::path(o.log_dir) / fmt::format("rank_{}.log", rank)).string();
      w->log = std::fopen(path.c_str(), "w");
      if (!w->log) throw Error(fmt::format("launch: cannot write log file '{}': {}", path, std::strerror(errno)));
    }
    start_worker(*w, o, store.port(), secret);
    Worker* raw = w.get();
    w->reader = std::thread([raw, &o] { read_output(*raw, o.tee); });
    workers.push_back(std::move(w));
  }

  int first_failed = -1;
  int handled_signals = 0;
  bool kill_pending = false;
  Clock::time_point kill_at{};
  size_t alive = workers.size();
  while (alive > 0) {
    for (auto& w : workers) {
      if (w->exited) continue;
      int status = 0;
      if (::waitpid(w->pid, &status, WNOHANG) != w->pid) continue;
      w->exited = true;
      w->status = status;
      --alive;
      if (failed(status) && first_failed < 0 && handled_signals == 0) {
        first_failed = w->rank;
        signal_alive(workers, SIGTERM);
        kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
        kill_pending = true;
      }
    }
    const int signals = g_launcher_signals.load();
    if (signals > handled_signals) {
      if (handled_signals == 0) {
        std::lock_guard<std::mutex> lock(g_console);
        fmt::print(stderr, "lmtrain launch: signal {}: stopping the workers (they save a checkpoint); "
                           "Ctrl-C again kills them\n", g_last_signal.load());
        signal_alive(workers, SIGTERM);
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
  if (first_failed >= 0) {
    print_table(workers, first_failed, o.master_addr);
    return exit_code_of(workers[first_failed]->status);
  }
  for (auto& w : workers)
    if (failed(w->status)) return exit_code_of(w->status);
  return handled_signals > 0 && g_last_signal.load() == SIGINT ? 130 : 0;
}

}  // namespace lmt
