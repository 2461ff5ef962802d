// lmtrain as the worker of the real torchrun (Debian's python3-torch): one node with two
// processes, two torchrun agents meeting through c10d rendezvous, and --max_restarts bringing a
// killed job back from its latest checkpoint. Each case skips with the reason where torchrun is
// absent.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/cli/cli_util.h"
#include "tests/cli/launch_steps.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace {

// torch 1.13 spells its flags with underscores (2.x takes both spellings). On Python 3.11 its
// default of no redirection fails inside torchrun ('NoneType' object has no attribute 'get'), so
// every command asks for stdout to be written to torchrun's log and copied to the console
// (-r 1 -t 1), which also prefixes each line with the local rank: "[default0]:step ...".
const std::string kTorchrun = "/usr/bin/python3 -m torch.distributed.run";
const std::string kTorchrunFlags = "--no_python -r 1 -t 1 --monitor_interval 1";
// The variables of an enclosing job (a CI runner under Slurm or torchrun) must not leak in.
const std::string kCleanEnv =
    "env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT "
    "-u SLURM_PROCID -u SLURM_NTASKS -u SLURM_LOCALID -u LMTRAIN_JOB_SECRET -u LMTRAIN_STORE_PORT";

// Empty when torchrun runs here, else why not.
std::string torchrun_missing() {
  static const std::string reason = [] {
    const std::string probe = kTorchrun + " --help > /dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return std::string();
    return "torchrun not found (`" + kTorchrun +
           " --help` failed; tools/install-deps.sh --tests installs python3-torch)";
  }();
  return reason;
}

#define SKIP_WITHOUT_TORCHRUN()                 \
  do {                                          \
    if (!torchrun_missing().empty()) {          \
      WARN("SKIPPED: " << torchrun_missing());  \
      return;                                   \
    }                                           \
  } while (0)

// A MASTER_PORT for static rendezvous: torchrun's store takes it and lmtrain's the next one.
int free_port_pair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = free_loopback_port();
    if (loopback_port_is_free(port + 1)) return port;
  }
  throw std::runtime_error("free_port_pair: no two free ports in a row");
}

// `torchrun FLAGS lmtrain ARGS`, as one shell command line run in the test's directory. Bounded:
// a torchrun that hangs gets SIGTERM after 180 s (SIGKILL 10 s later) instead of hanging the test.
std::string torchrun_command(const std::string& flags, const std::string& lmtrain_args, bool bounded = true) {
  return kCleanEnv + (bounded ? " timeout -k 10 180 " : " ") + kTorchrun + " " + kTorchrunFlags + " " + flags + " " +
         quoted(lmtrain_binary()) + " " + lmtrain_args;
}

// Starts `sh -c COMMAND` in dir; the shell execs, so the pid is the command's (torchrun's agent).
pid_t spawn_shell(const TempDir& dir, const std::string& command) {
  const std::string line = "cd " + quoted(dir.path().string()) + " && exec " + command;
  std::vector<std::string> all = {"/bin/sh", "-c", line};
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), environ) == 0);
  return pid;
}

// The workers torchrun's agent `agent` started for restart `attempt`, by RANK.
std::map<int, pid_t> workers_of(pid_t agent, int attempt) {
  return children_by_rank(agent, "TORCHELASTIC_RESTART_COUNT=" + std::to_string(attempt));
}

// Waits for pid with a deadline; returns the wait status or -1 on timeout (the process is then
// killed, so that a hung torchrun does not outlive the test).
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, &status, 0);
  return -1;
}

// Stops and reaps a spawned torchrun that a failed REQUIRE left running.
struct ReapOnExit {
  pid_t pid;
  bool reaped = false;
  ~ReapOnExit() {
    if (reaped) return;
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
};

nlohmann::json first_record(const fs::path& metrics) { return read_jsonl(metrics).at(0); }

}  // namespace

TEST_CASE("torchrun: one node, two processes train with the losses of one rank", "[cli][torchrun]") {
  SKIP_WITHOUT_TORCHRUN();
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  REQUIRE(one.status == 0);
  const int port = free_port_pair();
  RunResult two = run_shell(dir, torchrun_command(fmt::format("--nproc_per_node 2 --master_addr 127.0.0.1 "
                                                              "--master_port {}", port),
                                                  "train tiny.yaml --set run.name=w2 " + batch_args(2)));
  INFO(two.output);
  REQUIRE(two.status == 0);
  const fs::path metrics = dir.path() / "runs" / "w2" / "metrics.jsonl";
  check_same_steps(steps_of_last_attempt(metrics), steps_of_last_attempt(dir.path() / "runs" / "w1" / "metrics.jsonl"), 1e-5);
  CHECK(first_record(metrics)["torchrun_restart"] == 0);
  CHECK_THAT(two.output, Contains("[default0]:done: 30 steps"));
  CHECK_THAT(two.output, !Contains("[default1]:"));  // rank 1 prints nothing
}

TEST_CASE("torchrun: two agents meeting through c10d rendezvous train with the losses of one rank",
          "[cli][torchrun]") {
  SKIP_WITHOUT_TORCHRUN();
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  REQUIRE(one.status == 0);
  // Both agents dial the endpoint; the first to bind it serves c10d's store there, and the
  // agent that becomes node 0 picks MASTER_PORT for lmtrain's own store.
  const int port = free_loopback_port();
  const std::string flags = fmt::format("--nnodes 2 --nproc_per_node 1 --rdzv_backend c10d "
                                        "--rdzv_endpoint 127.0.0.1:{} --rdzv_id lmtrain-test-{}",
                                        port, ::getpid());
  const std::string args = "train tiny.yaml --set run.name=c10d " + batch_args(2);
  const std::string agent = torchrun_command(flags, args);
  RunResult both = run_shell(dir, fmt::format("({0} > agent0.out 2>&1 & {0} > agent1.out 2>&1 & "
                                              "a=0; wait %1 || a=$?; b=0; wait %2 || b=$?; exit $((a + b)))",
                                              agent));
  INFO(read_file(dir.path() / "agent0.out") << read_file(dir.path() / "agent1.out"));
  REQUIRE(both.status == 0);
  check_same_steps(steps_of_last_attempt(dir.path() / "runs" / "c10d" / "metrics.jsonl"),
                   steps_of_last_attempt(dir.path() / "runs" / "w1" / "metrics.jsonl"), 1e-5);
  CHECK(first_record(dir.path() / "runs" / "c10d" / "metrics.jsonl")["torchrun_restart"] == 0);
}

TEST_CASE("torchrun: --max_restarts brings a killed job back from its latest checkpoint with --resume auto",
          "[cli][torchrun][kill]") {
  SKIP_WITHOUT_TORCHRUN();
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // Long enough that the worker is killed well before the end, checkpoints every 20 steps.
  const std::string args = "train tiny.yaml --resume auto --set run.steps=400 --set checkpoint.every=20 " +
                           batch_args(2) + " --set log.every=10";
  const auto run = [&](const std::string& name, int port, bool bounded) {
    return torchrun_command(fmt::format("--nproc_per_node 2 --max_restarts 1 --master_addr 127.0.0.1 "
                                        "--master_port {}", port),
                            args + " --set run.name=" + name, bounded);
  };
  RunResult straight = run_shell(dir, run("straight", free_port_pair(), true));
  INFO(straight.output);
  REQUIRE(straight.status == 0);

  // Unbounded: the workers must be the agent's own children; wait_for bounds it instead.
  ReapOnExit agent{spawn_shell(dir, run("restarted", free_port_pair(), false) + " > restarted.out 2>&1")};
  const fs::path latest = dir.path() / "runs" / "restarted" / "checkpoints" / "latest";
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!fs::exists(latest) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  const auto first_attempt = workers_of(agent.pid, 0);
  INFO(read_file(dir.path() / "restarted.out"));
  REQUIRE(fs::exists(latest));
  REQUIRE(first_attempt.count(1) == 1);
  REQUIRE(::kill(first_attempt.at(1), SIGKILL) == 0);
  const int status = wait_for(agent.pid, 120s);
  agent.reaped = true;
  const std::string output = read_file(dir.path() / "restarted.out");
  INFO(output);
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // torchrun restarted the workers and they finished

  // The second attempt resumed from a checkpoint of the first, before the end.
  const fs::path metrics = dir.path() / "runs" / "restarted" / "metrics.jsonl";
  nlohmann::json resume;
  for (const auto& r : read_jsonl(metrics))
    if (r.value("event", "") == "resume") resume = r;
  REQUIRE(resume.is_object());
  CHECK(resume["torchrun_restart"] == 1);
  CHECK(resume["step"].get<int64_t>() % 20 == 0);
  CHECK(resume["step"].get<int64_t>() < 400);
  CHECK_THAT(output, Contains("torchrun: restart 1 of at most 1"));
  // Same world size, same order of every sum: the resumed run continues bit for bit.
  const auto resumed_steps = steps_of_last_attempt(metrics);
  std::vector<Step> expected;
  for (const auto& s : steps_of_last_attempt(dir.path() / "runs" / "straight" / "metrics.jsonl"))
    if (s.step > resume["step"].get<int64_t>()) expected.push_back(s);
  check_same_steps(resumed_steps, expected, 0.0);
  const auto final_checkpoint = [&](const std::string& name) {
    return dir.path() / "runs" / name / "checkpoints" / "step_00000400";
  };
  CHECK(read_file(final_checkpoint("restarted") / "model.safetensors") ==
        read_file(final_checkpoint("straight") / "model.safetensors"));
  CHECK(read_file(final_checkpoint("restarted") / "optimizer.safetensors") ==
        read_file(final_checkpoint("straight") / "optimizer.safetensors"));
}

TEST_CASE("torchrun: a user error (exit 2) is restarted too, and torchrun's summary shows lmtrain's message",
          "[cli][torchrun][errors]") {
  SKIP_WITHOUT_TORCHRUN();
  TempDir dir;
  RunResult failed = run_shell(dir, torchrun_command(fmt::format("--nproc_per_node 1 --max_restarts 1 "
                                                                 "--master_addr 127.0.0.1 --master_port {}",
                                                                 free_port_pair()),
                                                     "train no-such-recipe.yaml"));
  INFO(failed.output);
  CHECK(failed.status == 1);  // torchrun's own code for a failed job
  // torchelastic restarts on any non-zero exit: both attempts ran and printed the error.
  const std::string error = "error: recipe 'no-such-recipe.yaml' does not exist";
  size_t attempts = 0;
  for (size_t at = failed.output.find(error); at != std::string::npos; at = failed.output.find(error, at + 1))
    ++attempts;
  CHECK(attempts == 2);
  // The summary's traceback is lmtrain's message, from TORCHELASTIC_ERROR_FILE.
  CHECK_THAT(failed.output, Contains("exitcode  : 2"));
  CHECK_THAT(failed.output, Contains("traceback : lmtrain exited 2: recipe 'no-such-recipe.yaml' does not exist"));
}

TEST_CASE("torchrun: workers of a killed torchrun agent save a checkpoint and stop", "[cli][torchrun][kill]") {
  SKIP_WITHOUT_TORCHRUN();
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // Far more steps than the test waits for: only the agent's death can end this run in time.
  ReapOnExit agent{spawn_shell(
      dir, torchrun_command(fmt::format("--nproc_per_node 2 --master_addr 127.0.0.1 --master_port {}", free_port_pair()),
                            "train tiny.yaml --set run.name=orphans --set run.steps=1000000 --set checkpoint.every=50 " +
                                batch_args(2) + " --set log.every=100",
                            false) +
               " > agent.out 2>&1")};
  const fs::path run_dir = dir.path() / "runs" / "orphans";
  const auto started = std::chrono::steady_clock::now();
  while (!fs::exists(run_dir / "checkpoints" / "latest") && std::chrono::steady_clock::now() < started + 60s)
    std::this_thread::sleep_for(10ms);
  const auto workers = workers_of(agent.pid, 0);
  INFO(read_file(dir.path() / "agent.out"));
  REQUIRE(workers.size() == 2);
  REQUIRE(::kill(agent.pid, SIGKILL) == 0);
  REQUIRE(wait_for(agent.pid, 30s) != -1);
  agent.reaped = true;
  // Reparented away from this test, the workers cannot be waited for: poll until both are gone,
  // and kill what is left at the deadline so that a failure leaves nothing running.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  const auto running = [](pid_t pid) {  // a zombie has exited, whether or not its reaper has run yet
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    const size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
  };
  const auto alive = [&] {
    int count = 0;
    for (const auto& [rank, pid] : workers) count += running(pid) ? 1 : 0;
    return count;
  };
  while (alive() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  const int left = alive();
  for (const auto& [rank, pid] : workers)
    if (running(pid)) ::kill(pid, SIGKILL);
  CHECK(left == 0);
  // SIGTERM from the kernel (PR_SET_PDEATHSIG): they stopped together and rank 0 saved.
  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  CHECK(summary["interrupted"] == true);
  CHECK(fs::exists(run_dir / "checkpoints" / fmt::format("step_{:08d}", summary["steps"].get<int64_t>())));
}

TEST_CASE("torchrun variables: a MASTER_PORT that leaves lmtrain no store port is exit 2 naming it",
          "[cli][torchrun][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const std::string vars = "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 TORCHELASTIC_RUN_ID=x ";
  RunResult last = run_lmtrain(dir, "train tiny.yaml", vars + "MASTER_PORT=65535");
  CHECK(last.status == 2);
  CHECK_THAT(last.output, Contains("MASTER_PORT=65535 leaves no port for lmtrain's rendezvous store"));
  RunResult huge = run_lmtrain(dir, "train tiny.yaml", vars + "MASTER_PORT=4294996796");  // 2^32 + 29500
  CHECK(huge.status == 2);
  CHECK_THAT(huge.output, Contains("MASTER_PORT=4294996796 is not a port number (1 to 65535)"));
  CHECK(!fs::exists(dir.path() / "runs"));
}

// A rank whose rendezvous store never appears (rank 0 not started) says what it waits for once,
// then gives up at the timeout with exit 2, instead of sitting silent for up to two minutes.
TEST_CASE("torchrun variables: a rank waiting for a store nobody starts says so, then fails at the timeout",
          "[cli][torchrun][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const int port = free_loopback_port();
  RunResult r = run_lmtrain(dir, "train tiny.yaml",
                            fmt::format("RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 "
                                        "MASTER_PORT={} TORCHELASTIC_RUN_ID=x LMTRAIN_TIMEOUT_S=4",
                                        port));
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Contains("waiting for the rendezvous store at 127.0.0.1:") && Contains("giving up after 4 s"));
  CHECK_THAT(r.output, Contains("cannot reach the rendezvous store"));
  CHECK(r.output.find("waiting for the rendezvous store") < r.output.find("cannot reach the rendezvous store"));
}
