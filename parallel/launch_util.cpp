#include "parallel/launch_util.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "core/error.h"
#include "parallel/heartbeat.h"
#include "parallel/store.h"

extern char** environ;

namespace lmt {
namespace {

std::atomic<int> g_count{0};
std::atomic<int> g_last{0};
extern "C" void on_launch_signal(int signum) { LaunchSignals::raise(signum); }

}  // namespace

Child spawn_child(const std::vector<std::string>& args, const std::vector<std::string>* env, bool with_stdin,
                  bool die_with_parent) {
  int out[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || (with_stdin && ::pipe2(in, O_CLOEXEC) != 0))
    throw Error(fmt::format("launch: pipe failed: {}", std::strerror(errno)));
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> arg_copy = args, env_copy = env ? *env : std::vector<std::string>();
  std::vector<char*> argv, envp;
  for (auto& a : arg_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int dev_null = with_stdin ? -1 : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(fmt::format("launch: cannot start {}: {}", args[0], std::strerror(errno)));
  if (pid == 0) {
    ::setpgid(0, 0);
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(143);  // the parent died before prctl took effect
    }
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::dup2(with_stdin ? in[0] : dev_null, STDIN_FILENO);
    ::execvpe(argv[0], argv.data(), env ? envp.data() : environ);
    const std::string message = fmt::format("launch: cannot run {}: {}\n", argv[0], std::strerror(errno));
    (void)!::write(STDERR_FILENO, message.data(), message.size());
    ::_exit(127);
  }
  ::close(out[1]);
  if (dev_null >= 0) ::close(dev_null);
  Child child{pid, -1, out[0]};
  if (with_stdin) {
    ::close(in[0]);
    child.in_fd = in[1];
  }
  return child;
}

LaunchSignals::LaunchSignals() {
  struct sigaction action {};
  action.sa_handler = on_launch_signal;
  sigemptyset(&action.sa_mask);
  g_count = 0;
  ::sigaction(SIGINT, &action, &old_int_);
  ::sigaction(SIGTERM, &action, &old_term_);
}

LaunchSignals::~LaunchSignals() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

int LaunchSignals::count() { return g_count.load(); }
int LaunchSignals::last() { return g_last.load(); }
void LaunchSignals::raise(int signum) {
  g_last.store(signum);
  g_count.fetch_add(1);
}

std::optional<HeartbeatLoss> heartbeat_loss(const std::string& host, int port, const std::string& secret) {
  try {
    StoreClient client(host, port, secret, std::chrono::milliseconds(2000));
    if (!client.check(kHeartbeatLostKey)) return std::nullopt;
    const std::string value = client.get(kHeartbeatLostKey);
    const size_t space = value.find(' ');
    HeartbeatLoss loss;
    loss.rank = std::stoi(value.substr(0, space));
    loss.host = space == std::string::npos ? "" : value.substr(space + 1);
    return loss;
  } catch (const std::exception&) {
    return std::nullopt;  // no answer: blame as without a heartbeat
  }
}

}  // namespace lmt
