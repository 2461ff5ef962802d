// `lmtrain launch --hostfile` across hosts that are really separate: network namespaces joined by
// a bridge (tools/netns-hosts.sh), each with its own address and sshd. The launcher runs in the
// root namespace, which is on the bridge too; ssh, the rendezvous store and Gloo can only use
// the namespace addresses, and with `lo` DOWN in every namespace no connection there can use
// loopback at all.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/cli/cli_util.h"
#include "tests/cli/launch_steps.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace {

// The shell quoting of cli_util.h (a plain `quoted(std::string)` would find std::quoted).
std::string shq(const std::string& s) { return lmt::testing::quoted(s); }

// tools/netns-hosts.sh up N in dir/netns, and down again when the object goes, also when a
// check failed. `skip` says why there are none (not root, no iproute2, no sshd, no namespaces).
class NetnsHosts {
 public:
  NetnsHosts(const TempDir& dir, int num_hosts, bool loopback)
      : dir_(dir), folder_(dir.path() / "netns"), script_((source_dir() / "tools" / "netns-hosts.sh").string()) {
    if (::geteuid() != 0) {
      skip = "network namespaces need root";
      return;
    }
    if (!fs::exists(script_)) {
      skip = script_ + " is not here (a test bundle without the source tree)";
      return;
    }
    if (run_shell(dir_, "command -v ip").status != 0) {
      skip = "'ip' is not installed (apt-get install iproute2)";
      return;
    }
    if (!fs::exists("/usr/sbin/sshd")) {
      skip = "sshd is not installed (apt-get install openssh-server)";
      return;
    }
    const std::string probe = fmt::format("lmtprobe{}", ::getpid());
    const RunResult can = run_shell(dir_, "ip netns add " + probe + " && ip netns del " + probe);
    if (can.status != 0) {
      skip = "cannot create a network namespace here: " + can.output;
      return;
    }
    const RunResult up = run_shell(dir_, fmt::format("bash {} up {} {}{}", shq(script_), num_hosts,
                                                     shq(folder_.string()), loopback ? "" : " --no-loopback"));
    up_ = true;
    INFO(up.output);
    REQUIRE(up.status == 0);
    std::istringstream lines(read_file(folder_ / "state"));
    for (std::string line; std::getline(lines, line);) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) state_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    for (int k = 1; k <= num_hosts; ++k) {
      addresses.push_back(state_.at(fmt::format("ADDR_{}", k)));
      aliases.push_back(state_.at(fmt::format("NETNS_{}", k)));
    }
    launcher_address = state_.at("LAUNCHER_ADDR");
  }
  ~NetnsHosts() {
    if (up_) run_shell(dir_, fmt::format("bash {} down {}", shq(script_), shq(folder_.string())));
  }
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  std::string hostfile() const { return (folder_ / "hostfile").string(); }
  // Host k's sshd reads this for every login (k from 1).
  fs::path authorized_keys(int k) const { return folder_ / fmt::format("h{}", k) / "authorized_keys"; }
  std::string ssh_config() const { return (folder_ / "ssh_config").string(); }
  // What runs the command after it in host k's namespace (k from 1).
  std::string exec_in(int k) const {
    return fmt::format("bash {} exec {} {} ", shq(script_), shq(folder_.string()), k);
  }
  // Runs `command` (a shell command line) in host k's namespace.
  RunResult in_host(int k, const std::string& command) const {
    return run_shell(dir_, exec_in(k) + "sh -c " + shq(command));
  }
  // `netns-hosts.sh COMMAND DIR HOST` (cut, restore, pids).
  RunResult harness(const std::string& command, const std::string& host) const {
    return run_shell(dir_, fmt::format("bash {} {} {} {}", shq(script_), command, shq(folder_.string()), shq(host)));
  }

  std::string skip;
  std::vector<std::string> addresses;  // host k+1's address
  std::vector<std::string> aliases;    // and its name in ssh_config() only (no DNS knows it)
  std::string launcher_address;        // the root namespace's, on the bridge

 private:
  const TempDir& dir_;
  fs::path folder_;
  std::string script_;
  std::map<std::string, std::string> state_;
  bool up_ = false;
};

// Starts the shell command line `command` in dir, output to dir/name.out; returns its pid.
pid_t start_shell(const TempDir& dir, const std::string& command, const std::string& name) {
  const std::string line =
      "cd " + shq(dir.path().string()) + " && exec " + command + " > " + shq(dir.file(name + ".out")) + " 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The exit status of child `pid`, or -1 (and the child killed) when it runs longer than `limit`.
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(50ms);
  }
  return status;
}

// A failing run should not wait out the default 300 s for a store that cannot be reached.
const char* kTimeout = "LMTRAIN_TIMEOUT_S=30";

}  // namespace

TEST_CASE("launch --hostfile across 3 network namespaces with loopback down trains like one rank",
          "[cli][launch][ssh][netns]") {
  TempDir dir;
  NetnsHosts hosts(dir, 3, /*loopback=*/false);
  if (!hosts.skip.empty()) {
    WARN("SKIPPED: " << hosts.skip);
    return;
  }
  for (int k = 1; k <= 3; ++k) CHECK_THAT(hosts.in_host(k, "ip -br link show lo").output, Contains("DOWN"));
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=one " + batch_args(1));
  REQUIRE(one.status == 0);
  // No --force-ssh and no --master-addr: the hosts are not this one, and the launcher finds the
  // address they reach it at (the bridge's) by itself.
  RunResult r = run_lmtrain(dir,
                            "launch --hostfile " + shq(hosts.hostfile()) + " --ssh-config " + shq(hosts.ssh_config()) +
                                " --master-port 0 --log-dir logs -- train tiny.yaml "
                                "--set run.name=netns " +
                                batch_args(3),
                            kTimeout);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("x 3 rank"));
  CHECK_THAT(r.output, Contains("rendezvous store at " + hosts.launcher_address + ":"));
  for (size_t k = 0; k < hosts.addresses.size(); ++k)
    CHECK_THAT(r.output, Contains(fmt::format("host {} (ranks {}): workers reachable at {}", hosts.addresses[k], k,
                                              hosts.addresses[k])));
  check_same_steps(steps_of(dir.path() / "runs" / "netns" / "metrics.jsonl"),
                   steps_of(dir.path() / "runs" / "one" / "metrics.jsonl"), 1e-5);
  for (int k = 1; k <= 3; ++k) CHECK_THAT(hosts.in_host(k, "ip -br link show lo").output, Contains("DOWN"));
}

TEST_CASE(
    "launch --hostfile across 2 network namespaces named by ssh aliases, 2 workers each, one host "
    "printing before every command, trains like one rank and stops cleanly on SIGTERM, and the harness "
    "finds a host's workers and cuts and restores its link",
    "[cli][launch][ssh][netns]") {
  TempDir dir;
  NetnsHosts hosts(dir, 2, /*loopback=*/true);
  if (!hosts.skip.empty()) {
    WARN("SKIPPED: " << hosts.skip);
    return;
  }
  // Two workers per host: they reach each other at their host's address, not 127.0.0.1. The
  // hosts by their ssh aliases: the launcher must find their addresses through ssh's config.
  write_file(dir.path() / "hosts", fmt::format("{} slots=2\n{} slots=2\n", hosts.aliases[0], hosts.aliases[1]));
  // Host 1 prints a line before every command, as a chatty shell start-up file or a login banner
  // does: pre-flight must still read the version there.
  write_file(hosts.authorized_keys(1), "command=\"echo welcome to host 1; eval \\\"$SSH_ORIGINAL_COMMAND\\\"\" " +
                                           read_file(hosts.authorized_keys(1)));
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=one " + batch_args(1));
  REQUIRE(one.status == 0);
  // The global batch of 12 over 4 ranks: micro 3 x accum 1 x 4 (batch_args divides 6 by the world).
  RunResult r = run_lmtrain(dir,
                            "launch --hostfile hosts --ssh-config " + shq(hosts.ssh_config()) +
                                " --master-port 0 -- train tiny.yaml --set run.name=netns " + batch_args(2) +
                                " --set run.grad_accum_steps=1 --set run.micro_batch_size=3",
                            kTimeout);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("x 4 rank"));
  CHECK_THAT(r.output, Contains("welcome to host 1"));
  CHECK_THAT(r.output, Contains("rendezvous store at " + hosts.launcher_address + ":"));
  CHECK_THAT(r.output, Contains(fmt::format("host {} (ranks 0,1): workers reachable at {}", hosts.aliases[0],
                                            hosts.addresses[0])));
  CHECK_THAT(r.output, Contains(fmt::format("host {} (ranks 2,3): workers reachable at {}", hosts.aliases[1],
                                            hosts.addresses[1])));
  check_same_steps(steps_of(dir.path() / "runs" / "netns" / "metrics.jsonl"),
                   steps_of(dir.path() / "runs" / "one" / "metrics.jsonl"), 1e-5);

  // Workers of another launcher (torchrun's variables), one per host, without LMTRAIN_HOST: each
  // must offer the others its namespace address, not its host name (127.0.0.1 in /etc/hosts
  // here, the same file in every namespace). MASTER_PORT may be fixed: host 1's ports are its own.
  std::string torchrun = "(";
  for (int rank : {0, 1})
    torchrun += hosts.exec_in(rank + 1) +
                fmt::format(
                    "env -u LMTRAIN_HOST RANK={} LOCAL_RANK=0 WORLD_SIZE=2 "
                    "LOCAL_WORLD_SIZE=1 MASTER_ADDR={} MASTER_PORT=29500 "
                    "TORCHELASTIC_RUN_ID=netns {} {} ",
                    rank, hosts.addresses[0], kTimeout, shq(lmtrain_binary())) +
                "train tiny.yaml --set run.name=torchrun " + batch_args(2) +
                fmt::format(" > torchrun{0}.out 2>&1 & p{0}=$!; ", rank);
  torchrun += "wait $p0; a=$?; wait $p1; b=$?; exit $((a + b)))";
  RunResult t = run_shell(dir, torchrun);
  {
    INFO(read_file(dir.path() / "torchrun0.out") << read_file(dir.path() / "torchrun1.out"));
    CHECK(t.status == 0);
    check_same_steps(steps_of(dir.path() / "runs" / "torchrun" / "metrics.jsonl"),
                     steps_of(dir.path() / "runs" / "one" / "metrics.jsonl"), 1e-5);
  }

  // The fault tests' tools. `pids` finds a host's workers while a job runs (here a long one,
  // stopped with SIGTERM once they are found) ...
  const pid_t launcher = start_shell(dir,
                                     std::string("env ") + kTimeout + " " + shq(lmtrain_binary()) +
                                         " launch --hostfile hosts" + " --ssh-config " + shq(hosts.ssh_config()) +
                                         " --master-port 0 -- train tiny.yaml --set run.name=long"
                                         " --set run.steps=10000000 --set log.every=1000",
                                     "long");
  std::set<std::string> ranks_found;
  std::string listing;
  for (int i = 0; i < 300 && ranks_found.size() < 2; ++i) {
    std::this_thread::sleep_for(100ms);
    listing = hosts.harness("pids", hosts.aliases[1]).output;
    ranks_found.clear();
    std::istringstream lines(listing);
    for (std::string pid, rank; lines >> pid >> rank;)
      if (read_file(fs::path("/proc") / pid / "cmdline").find("train") != std::string::npos) ranks_found.insert(rank);
  }
  CHECK(ranks_found == std::set<std::string>{"2", "3"});
  // SIGTERM once training runs (rank 0's first step printed): a worker still starting up has
  // nothing to save yet and simply dies of it.
  for (int i = 0; i < 300 && read_file(dir.path() / "long.out").find("step      1/") == std::string::npos; ++i)
    std::this_thread::sleep_for(100ms);
  ::kill(launcher, SIGTERM);
  const int stopped = wait_for(launcher, 60s);
  INFO(read_file(dir.path() / "long.out"));
  CHECK(stopped == 0);
  CHECK(hosts.harness("pids", hosts.aliases[1]).output.empty());
  CHECK(fs::exists(dir.path() / "runs" / "long" / "checkpoints" / "latest"));

  // ... and a cut link stops ssh to that host; restoring it brings it back.
  const std::string ssh = "ssh -F " + shq(hosts.ssh_config()) + " -o BatchMode=yes -o ConnectTimeout=2 ";
  REQUIRE(hosts.harness("cut", "2").status == 0);
  CHECK(run_shell(dir, ssh + hosts.addresses[1] + " true").status != 0);
  CHECK(run_shell(dir, ssh + hosts.addresses[0] + " true").status == 0);
  REQUIRE(hosts.harness("restore", hosts.addresses[1]).status == 0);
  CHECK(
      run_shell(dir, "for i in $(seq 50); do " + ssh + hosts.addresses[1] + " true && exit 0; sleep 0.1; done; exit 1")
          .status == 0);
  CHECK(hosts.harness("cut", "9").status == 2);
}

TEST_CASE("launch --hostfile: a host whose link is cut mid-run stops the job within run.heartbeat_timeout, naming "
          "the host, and nothing of the job is left on any host",
          "[cli][launch][ssh][netns][heartbeat]") {
  TempDir dir;
  NetnsHosts hosts(dir, 2, /*loopback=*/true);
  if (!hosts.skip.empty()) {
    WARN("SKIPPED: " << hosts.skip);
    return;
  }
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const std::string marker = fmt::format("linkcut-{}", ::getpid());
  // Collectives would wait 300 s for the lost rank; the heartbeat bound is 5 s.
  const pid_t launcher = start_shell(dir,
                                     shq(lmtrain_binary()) + " launch --hostfile " + shq(hosts.hostfile()) +
                                         " --ssh-config " + shq(hosts.ssh_config()) +
                                         " --master-port 0 --grace 3 -- train tiny.yaml --set run.name=" + marker +
                                         " --set run.steps=10000000 --set log.every=1000"
                                         " --set run.heartbeat_timeout=5",
                                     "cut");
  for (int i = 0; i < 300 && read_file(dir.path() / "cut.out").find("step      1/") == std::string::npos; ++i)
    std::this_thread::sleep_for(100ms);
  REQUIRE_THAT(read_file(dir.path() / "cut.out"), Contains("step      1/"));
  std::this_thread::sleep_for(1s);
  const auto cut_at = std::chrono::steady_clock::now();
  REQUIRE(hosts.harness("cut", hosts.aliases[1]).status == 0);
  const int status = wait_for(launcher, 90s);
  const auto took = std::chrono::steady_clock::now() - cut_at;
  const std::string output = read_file(dir.path() / "cut.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK(took < 40s);
  // Rank 0 names the silent rank and its host.
  CHECK_THAT(output, Contains("rank 1 on host") && Contains(hosts.addresses[1]) && Contains("sent no heartbeat"));
  // The launcher's table blames it too: its agent is unreachable, so its exit is unknown.
  CHECK_THAT(output, Contains("rank 1 on " + hosts.addresses[1] + " stopped answering (no heartbeat"));
  // The cut-off host's worker ends itself: nothing of the job is left there (or anywhere), even
  // before the link comes back.
  bool left = true;
  for (int i = 0; i < 200 && left; ++i) {
    left = false;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string pid = entry.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string cmdline = read_file(entry.path() / "cmdline");
      if (cmdline.find(marker) != std::string::npos && cmdline.find("lmtrain") != std::string::npos) left = true;
    }
    if (left) std::this_thread::sleep_for(100ms);
  }
  CHECK_FALSE(left);
  hosts.harness("restore", hosts.aliases[1]);
}

TEST_CASE("launch --max-restarts --min-nodes: a host lost for good is dropped on the restart and training goes on "
          "at the smaller world size with the same global batch",
          "[cli][launch][ssh][netns][restart]") {
  TempDir dir;
  NetnsHosts hosts(dir, 3, /*loopback=*/true);
  if (!hosts.skip.empty()) {
    WARN("SKIPPED: " << hosts.skip);
    return;
  }
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // Micro-batches of 2 and 12 sequences a step: 2 accumulation steps on 3 ranks, 3 on 2.
  const pid_t launcher = start_shell(
      dir,
      std::string("env ") + kTimeout + " " + shq(lmtrain_binary()) + " launch --hostfile " + shq(hosts.hostfile()) +
          " --ssh-config " + shq(hosts.ssh_config()) +
          " --master-port 0 --grace 3 --max-restarts 2 --min-nodes 2 -- train tiny.yaml --set run.name=shrink"
          " --set run.steps=3000 --set log.every=500 --set checkpoint.every=100 --set run.micro_batch_size=2"
          " --set run.global_batch_size=12 --set run.heartbeat_timeout=5",
      "shrink");
  const fs::path latest = dir.path() / "runs" / "shrink" / "checkpoints" / "latest";
  for (int i = 0; i < 600 && !fs::exists(latest); ++i) std::this_thread::sleep_for(50ms);
  REQUIRE(fs::exists(latest));
  // Host 3 goes away for good: its worker dies and its link is cut, so it fails the restart's
  // pre-flight.
  const std::string listing = hosts.harness("pids", hosts.aliases[2]).output;
  std::istringstream lines(listing);
  std::string pid, rank;
  REQUIRE(static_cast<bool>(lines >> pid >> rank));
  REQUIRE(hosts.harness("cut", hosts.aliases[2]).status == 0);
  ::kill(std::stoi(pid), SIGKILL);
  const int status = wait_for(launcher, 150s);
  const std::string output = read_file(dir.path() / "shrink.out");
  INFO(output);
  hosts.harness("restore", hosts.aliases[2]);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(output, Contains("restart 1 of 2") && Contains("dropping 1 host that failed the pre-flight") &&
                         Contains("(2 remain, --min-nodes 2)") && Contains("the job finished after 1 restart"));
  CHECK_THAT(output, Contains("2 seq x 16 tokens x 3 accum x 2 rank"));
  CHECK_THAT(output, Contains("rank 2 on " + hosts.addresses[2] + " stopped answering"));
  const auto records = read_jsonl(dir.path() / "runs" / "shrink" / "metrics.jsonl");
  int resumes = 0;
  for (const auto& r : records)
    if (r.value("event", "") == "resume") {
      ++resumes;
      CHECK(r["restart"] == 1);
      CHECK(r["tokens_per_step"] == 12 * 16);
    }
  CHECK(resumes == 1);
  CHECK(fs::exists(dir.path() / "runs" / "shrink" / "checkpoints" / "step_00003000" / "model.safetensors"));
}
