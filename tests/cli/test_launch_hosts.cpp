// `lmtrain launch --hostfile`: agents per host, over ssh to a private sshd on a loopback port.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <thread>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace {

// A private sshd on 127.0.0.1 with keys made for this test, and an ssh config that uses them.
// `skip` says why there is none (no sshd binary, not root, it did not start).
class LoopbackSshd {
 public:
  explicit LoopbackSshd(const TempDir& dir) : dir_(dir.path() / "ssh") {
    fs::create_directories(dir_);
    const std::string sshd = "/usr/sbin/sshd";
    if (!fs::exists(sshd)) {
      skip = "sshd is not installed (apt-get install openssh-server)";
      return;
    }
    if (::geteuid() != 0) {
      skip = "sshd needs root to accept logins here";
      return;
    }
    const std::string d = dir_.string();
    const std::string keys = "ssh-keygen -q -t ed25519 -N '' -f " + quoted(d + "/host_key") +
                             " && ssh-keygen -q -t ed25519 -N '' -f " + quoted(d + "/client_key") + " && cp " +
                             quoted(d + "/client_key.pub") + " " + quoted(d + "/authorized_keys") + " && chmod 600 " +
                             quoted(d + "/authorized_keys") + " && mkdir -p /run/sshd";
    if (std::system(keys.c_str()) != 0) {
      skip = "ssh-keygen failed";
      return;
    }
    port = free_loopback_port();
    write_file(dir_ / "sshd_config", fmt::format("Port {}\nListenAddress 127.0.0.1\nHostKey {}/host_key\n"
                                                 "AuthorizedKeysFile {}/authorized_keys\nPidFile {}/sshd.pid\n"
                                                 "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                                                 "PermitRootLogin prohibit-password\n",
                                                 port, d, d, d));
    write_file(dir_ / "ssh_config", fmt::format("Host *\n  Port {}\n  IdentityFile {}/client_key\n"
                                                "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n"
                                                "  LogLevel ERROR\n",
                                                port, d));
    const std::string start = sshd + " -f " + quoted(d + "/sshd_config") + " -E " + quoted(d + "/sshd.log");
    if (std::system(start.c_str()) != 0) {
      skip = "sshd did not start: " + read_file(dir_ / "sshd.log");
      return;
    }
    for (int i = 0; i < 100 && !fs::exists(dir_ / "sshd.pid"); ++i) std::this_thread::sleep_for(20ms);
    const std::string probe = "ssh -F " + quoted(config()) + " -o BatchMode=yes 127.0.0.1 true";
    if (std::system(probe.c_str()) != 0) skip = "ssh to the test sshd failed: " + read_file(dir_ / "sshd.log");
  }
  ~LoopbackSshd() {
    if (fs::exists(dir_ / "sshd.pid")) ::kill(std::stoi(read_file(dir_ / "sshd.pid")), SIGTERM);
  }
  std::string config() const { return (dir_ / "ssh_config").string(); }

  std::string skip;
  int port = 0;

 private:
  fs::path dir_;
};

std::vector<std::pair<double, double>> losses(const fs::path& metrics) {
  std::vector<std::pair<double, double>> out;
  for (const auto& r : read_jsonl(metrics))
    if (is_training_record(r)) out.emplace_back(r["loss"], r["grad_norm"]);
  return out;
}

const char* kBatch2 = " --set run.micro_batch_size=2 --set run.grad_accum_steps=3 --set run.global_batch_size=12"
                      " --set log.every=1";
const char* kBatch1 = " --set run.micro_batch_size=2 --set run.grad_accum_steps=6 --set run.global_batch_size=12"
                      " --set log.every=1";

}  // namespace

TEST_CASE("launch --hostfile --force-ssh: two hosts over ssh train like one rank", "[cli][launch][ssh]") {
  TempDir dir;
  LoopbackSshd sshd(dir);
  if (!sshd.skip.empty()) {
    WARN("SKIPPED: " << sshd.skip);
    return;
  }
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "hosts", "# two 'hosts' that are this machine\n127.0.0.1 slots=1\nlocalhost slots=1\n");
  RunResult one = run_lmtrain(dir, std::string("train tiny.yaml --set run.name=one") + kBatch1);
  REQUIRE(one.status == 0);
  RunResult r = run_lmtrain(dir, "launch --hostfile hosts --force-ssh --ssh-config " + quoted(sshd.config()) +
                                     " --master-port 0 --log-dir logs -- train tiny.yaml --set run.name=ssh" + kBatch2);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Contains("x 2 rank"));
  const auto expected = losses(dir.path() / "runs" / "one" / "metrics.jsonl");
  const auto got = losses(dir.path() / "runs" / "ssh" / "metrics.jsonl");
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].first == Approx(expected[i].first).epsilon(1e-5));
    CHECK(got[i].second == Approx(expected[i].second).epsilon(1e-5));
  }
  CHECK(fs::exists(dir.path() / "logs" / "rank_1.log"));
}

TEST_CASE("launch --hostfile: pre-flight names an unreachable host before anything starts", "[cli][launch][ssh][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "hosts", "localhost slots=1\nno-such-host.invalid slots=1\n");
  const auto started = std::chrono::steady_clock::now();
  RunResult r = run_lmtrain(dir, "launch --hostfile hosts --master-port 0 -- train tiny.yaml");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("pre-flight failed") && Contains("host no-such-host.invalid"));
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
  CHECK(std::chrono::steady_clock::now() - started < 30s);

  write_file(dir.path() / "hosts", "localhost slots=two\n");
  RunResult bad = run_lmtrain(dir, "launch --hostfile hosts -- train tiny.yaml");
  CHECK(bad.status == 2);
  CHECK_THAT(bad.output, Contains("hosts:1") && Contains("slots=N"));
  RunResult filter = run_lmtrain(dir, "launch --hostfile hosts --include x --exclude y -- train tiny.yaml");
  CHECK(filter.status == 2);
}

TEST_CASE("launch --hostfile: a worker killed on one host stops the agents everywhere", "[cli][launch][kill]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // Two local agents (hosts that are this machine, without ssh), two workers each.
  write_file(dir.path() / "hosts", "localhost slots=2\n127.0.0.1 slots=2\n");
  const std::string marker = "killtest-" + std::to_string(::getpid());
  std::thread killer([&] {
    // Rank 2's worker: the process whose command line names this run and whose RANK is 2.
    for (int i = 0; i < 300; ++i) {
      std::this_thread::sleep_for(50ms);
      for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream cmdline(entry.path() / "cmdline"), environ_file(entry.path() / "environ");
        std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
        std::string env((std::istreambuf_iterator<char>(environ_file)), std::istreambuf_iterator<char>());
        if (args.find(marker) == std::string::npos || args.find("launch") != std::string::npos) continue;
        if (env.find(std::string("RANK=2") + '\0') == std::string::npos) continue;
        std::this_thread::sleep_for(1s);  // well into training
        ::kill(std::stoi(pid), SIGKILL);
        return;
      }
    }
  });
  const auto started = std::chrono::steady_clock::now();
  RunResult r = run_lmtrain(dir, "launch --hostfile hosts --master-port 0 --grace 3 -- train tiny.yaml --set run.name=" +
                                     marker + " --set run.steps=10000000 --set log.every=1000");
  killer.join();
  INFO(r.output);
  CHECK(r.status == 128 + SIGKILL);
  CHECK_THAT(r.output, Contains("rank 2 on 127.0.0.1 failed first") && Contains("signal 9 (KILL) <- first"));
  CHECK(std::chrono::steady_clock::now() - started < 60s);
  // No worker of the job is left.
  std::this_thread::sleep_for(200ms);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    CHECK(args.find(marker) == std::string::npos);
  }
}

TEST_CASE("launch --force-ssh: when the launcher dies, the remote agents stop their workers", "[cli][launch][ssh][kill]") {
  TempDir dir;
  LoopbackSshd sshd(dir);
  if (!sshd.skip.empty()) {
    WARN("SKIPPED: " << sshd.skip);
    return;
  }
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / "hosts", "127.0.0.1 slots=1\nlocalhost slots=1\n");
  const std::string marker = "orphantest-" + std::to_string(::getpid());
  const std::string start = "cd " + quoted(dir.path().string()) + " && (" + quoted(lmtrain_binary()) +
                            " launch --hostfile hosts --force-ssh --ssh-config " + quoted(sshd.config()) +
                            " --master-port 0 --grace 2 -- train tiny.yaml --set run.name=" + marker +
                            " --set run.steps=10000000 --set log.every=1000 > launch.out 2>&1 & echo $! > launcher.pid)";
  REQUIRE(std::system(start.c_str()) == 0);
  auto job_processes = [&] {
    int count = 0;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      std::ifstream cmdline(entry.path() / "cmdline");
      std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
      if (args.find(marker) != std::string::npos) ++count;
    }
    return count;
  };
  // Launcher, 2 ssh clients, 2 agents and 2 workers.
  for (int i = 0; i < 200 && job_processes() < 7; ++i) std::this_thread::sleep_for(50ms);
  INFO(read_file(dir.path() / "launch.out"));
  REQUIRE(job_processes() >= 7);
  std::this_thread::sleep_for(1s);
  REQUIRE(::kill(std::stoi(read_file(dir.path() / "launcher.pid")), SIGKILL) == 0);
  // Its pipes close: each ssh client passes EOF on, each agent stops its worker.
  int left = -1;
  for (int i = 0; i < 300 && left != 0; ++i) {
    std::this_thread::sleep_for(50ms);
    left = job_processes();
  }
  CHECK(left == 0);
}
