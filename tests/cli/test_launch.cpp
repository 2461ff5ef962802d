// Data-parallel training through `lmtrain launch`: equal losses for any world size, failure
// handling, graceful stops and resuming at another world size.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fmt/format.h>
#include <atomic>
#include <fstream>
#include <future>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/cli/cli_util.h"
#include "tests/cli/launch_steps.h"
#include "tests/hostile_client.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

extern char** environ;

namespace {

std::vector<double> val_losses(const fs::path& metrics) {
  std::vector<double> out;
  for (const auto& r : read_jsonl(metrics))
    if (r.contains("val_loss") && !r.contains("event")) out.push_back(r["val_loss"]);
  return out;
}

// Starts `lmtrain ARGS` in dir without a shell; output goes to dir/name.out.
pid_t spawn_lmtrain(const TempDir& dir, const std::vector<std::string>& args, const std::string& name) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string out = dir.file(name + ".out");
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&actions, dir.path().c_str());
  const std::string binary = lmtrain_binary();
  std::vector<std::string> all = {binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// A launcher's workers by rank.
std::map<int, pid_t> workers_of(pid_t launcher) { return children_by_rank(launcher); }

// Waits until the launcher has started `count` workers (up to 10 s) and returns them.
std::map<int, pid_t> wait_for_workers(pid_t launcher, size_t count) {
  std::map<int, pid_t> workers;
  for (int i = 0; i < 200 && workers.size() < count; ++i) {
    std::this_thread::sleep_for(50ms);
    workers = workers_of(launcher);
  }
  return workers;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Waits for pid with a deadline; returns the wait status or -1 on timeout.
int wait_for(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

}  // namespace

TEST_CASE("launch: 2 and 3 ranks train with the losses of 1 rank on the same global batch, with and without ZeRO-1",
          "[cli][launch]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  INFO(one.output);
  REQUIRE(one.status == 0);
  const fs::path runs = dir.path() / "runs";
  const auto expected = steps_of(runs / "w1" / "metrics.jsonl");
  REQUIRE(expected.size() == 30);
  for (auto [world, zero] : {std::pair{2, 0}, {3, 0}, {2, 1}, {3, 1}}) {
    const std::string name = fmt::format("w{}z{}", world, zero);
    INFO(name);
    RunResult r = run_lmtrain(dir, fmt::format("launch --nproc-per-node {} --master-port 0 -- train tiny.yaml "
                                               "--set run.name={} --set distributed.zero_stage={} {}",
                                               world, name, zero, batch_args(world)));
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.output, Contains(fmt::format("x {} rank", world)));
    check_same_steps(steps_of(runs / name / "metrics.jsonl"), expected, 1e-5);
    const auto val = val_losses(runs / name / "metrics.jsonl");
    const auto val_expected = val_losses(runs / "w1" / "metrics.jsonl");
    REQUIRE(val.size() == val_expected.size());
    for (size_t i = 0; i < val.size(); ++i) CHECK(val[i] == Approx(val_expected[i]).epsilon(1e-5));
    // Rank 0 alone wrote the run: one metrics file, one final checkpoint.
    CHECK(fs::exists(runs / name / "checkpoints" / "step_00000030" / "model.safetensors"));
  }
}

TEST_CASE("launch: checkpoints resume at another world size and ZeRO stage, continuing the same run",
          "[cli][launch][checkpoint]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const std::string common =
      " --set schedule.decay=constant --set optimizer.lr=3e-3 --set data.synthetic.train_tokens=300 ";
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.name=straight --set run.steps=20" + common + batch_args(1))
              .status == 0);
  // 2 ranks with ZeRO-1, then 3 ranks with ZeRO-1, then 1 rank.
  RunResult first = run_lmtrain(dir, "launch --nproc-per-node 2 --master-port 0 -- train tiny.yaml --set run.name=split "
                                     "--set distributed.zero_stage=1 --set run.steps=8" + common + batch_args(2));
  INFO(first.output);
  REQUIRE(first.status == 0);
  RunResult middle = run_lmtrain(dir, "launch --nproc-per-node 3 --master-port 0 -- train tiny.yaml --set run.name=split "
                                      "--set distributed.zero_stage=1 --set run.steps=14 --resume auto" + common +
                                          batch_args(3));
  INFO(middle.output);
  REQUIRE(middle.status == 0);
  RunResult second = run_lmtrain(dir, "train tiny.yaml --set run.name=split --set run.steps=20 --resume auto" + common +
                                          batch_args(1));
  INFO(second.output);
  REQUIRE(second.status == 0);
  CHECK_THAT(second.output, Contains("resumed from"));
  // Float sums in a different order (two ranks, then three, then one) start 1e-8 apart and the
  // gap grows about tenfold every three steps at the tiny recipe's lr of 1e-2 (chaotic enough
  // to pass 1e-4 by step 14), so this run uses 3e-3, where 20 steps stay well inside 1e-4; a
  // wrong data position or optimizer state differs at once, by far more.
  check_same_steps(steps_of(dir.path() / "runs" / "split" / "metrics.jsonl"),
              steps_of(dir.path() / "runs" / "straight" / "metrics.jsonl"), 1e-4);
}

TEST_CASE("launch: a worker killed mid-run stops the job within seconds, with a table naming it", "[cli][launch][kill]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const pid_t launcher = spawn_lmtrain(
      dir, {"launch", "--nproc-per-node", "3", "--master-port", "0", "--grace", "3", "--", "train", "tiny.yaml",
            "--set", "run.steps=10000000", "--set", "log.every=1000"},
      "launch");
  std::map<int, pid_t> workers = wait_for_workers(launcher, 3);
  REQUIRE(workers.size() == 3);
  std::this_thread::sleep_for(1500ms);  // well into training
  const auto killed_at = std::chrono::steady_clock::now();
  INFO(read_file(dir.path() / "launch.out"));
  REQUIRE(::kill(workers[1], SIGKILL) == 0);
  const int status = wait_for(launcher, 20s);
  const auto took = std::chrono::steady_clock::now() - killed_at;
  const std::string output = read_file(dir.path() / "launch.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGKILL);
  CHECK(took < 10s);
  CHECK_THAT(output, Contains("rank 1 failed first") && Contains("signal 9 (KILL) <- first"));
  for (const auto& [rank, pid] : workers) {
    INFO("rank " << rank << " pid " << pid);
    CHECK_FALSE(process_exists(pid));
  }
}

TEST_CASE("launch: SIGTERM to the launcher stops every worker with a checkpoint", "[cli][launch][signals]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const pid_t launcher = spawn_lmtrain(
      dir, {"launch", "--nproc-per-node", "2", "--master-port", "0", "--log-dir", "logs", "--", "train", "tiny.yaml",
            "--set", "run.steps=10000000", "--set", "log.every=1000"},
      "launch");
  std::this_thread::sleep_for(2s);
  REQUIRE(::kill(launcher, SIGTERM) == 0);
  const int status = wait_for(launcher, 30s);
  const std::string output = read_file(dir.path() / "launch.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(output, Contains("stopping the workers") && Contains("saved"));
  CHECK(fs::exists(dir.path() / "runs" / "tiny" / "checkpoints" / "latest"));
  CHECK(fs::exists(dir.path() / "logs" / "rank_0.log"));
  CHECK(fs::exists(dir.path() / "logs" / "rank_1.log"));
}

TEST_CASE("launch: bad options exit 2 before anything starts", "[cli][launch][errors]") {
  TempDir dir;
  RunResult none = run_lmtrain(dir, "launch --nproc-per-node 2");
  CHECK(none.status == 2);
  CHECK_THAT(none.output, Contains("no command"));
  RunResult zero = run_lmtrain(dir, "launch --nproc-per-node 0 -- train x.yaml");
  CHECK(zero.status == 2);
  CHECK_THAT(zero.output, Contains("--nproc-per-node 0"));
  RunResult tee = run_lmtrain(dir, "launch --tee some -- train x.yaml");
  CHECK(tee.status == 2);
  CHECK_THAT(tee.output, Contains("--tee 'some'"));
  // .lmtrain_env reaches the workers (here a bad timeout each worker rejects) ...
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  write_file(dir.path() / ".lmtrain_env", "# for the workers\nLMTRAIN_TIMEOUT_S=soon\n");
  RunResult from_env = run_lmtrain(dir, "launch --nproc-per-node 2 --master-port 0 -- train tiny.yaml");
  CHECK(from_env.status == 2);
  CHECK_THAT(from_env.output, Contains("LMTRAIN_TIMEOUT_S='soon'"));
  // ... and a malformed one stops the launch before any worker starts.
  write_file(dir.path() / ".lmtrain_env", "NCCL_DEBUG=INFO\nthis is not an assignment\n");
  RunResult bad_env = run_lmtrain(dir, "launch --nproc-per-node 2 --master-port 0 -- train tiny.yaml");
  CHECK(bad_env.status == 2);
  CHECK_THAT(bad_env.output, Contains(".lmtrain_env:2") && Contains("KEY=VALUE"));
  CHECK_FALSE(fs::exists(dir.path() / "runs"));
  // Workers started without the launcher's job secret are told how to start them.
  RunResult bare = run_lmtrain(dir, "train x.yaml", "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1");
  CHECK(bare.status == 2);
}

TEST_CASE("workers started by torchrun or srun variables join without lmtrain launch", "[cli][launch]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  REQUIRE(one.status == 0);
  const auto expected = steps_of(dir.path() / "runs" / "w1" / "metrics.jsonl");
  const int port = free_loopback_port(), slurm_port = free_loopback_port();
  struct Style {
    std::string name;
    std::function<std::string(int)> vars;
  };
  const std::vector<Style> styles = {
      {"torchrun",
       [&](int rank) {
         return fmt::format("RANK={} LOCAL_RANK={} WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 "
                            "MASTER_PORT={} TORCHELASTIC_RUN_ID=test-run",
                            rank, rank, port);
       }},
      {"slurm",
       [&](int rank) {
         return fmt::format("SLURM_PROCID={} SLURM_LOCALID={} SLURM_NTASKS=2 SLURM_JOB_ID=4242 SLURM_STEP_ID=0 "
                            "SLURM_JOB_NODELIST=localhost MASTER_PORT={}",
                            rank, rank, slurm_port);
       }},
  };
  for (const auto& style : styles) {
    INFO(style.name);
    std::string command = "cd " + quoted(dir.path().string()) + " && (";
    for (int rank : {0, 1})
      command += "env -u RANK -u WORLD_SIZE -u SLURM_PROCID -u SLURM_NTASKS " + style.vars(rank) + " " +
                 quoted(lmtrain_binary()) + " train tiny.yaml --set run.name=" + style.name + " " + batch_args(2) +
                 " > " + style.name + std::to_string(rank) + ".out 2>&1 & ";
    command += "wait)";
    REQUIRE(std::system(command.c_str()) == 0);
    INFO(read_file(dir.path() / (style.name + "0.out")) << read_file(dir.path() / (style.name + "1.out")));
    check_same_steps(steps_of(dir.path() / "runs" / style.name / "metrics.jsonl"), expected, 1e-5);
    CHECK(read_file(dir.path() / (style.name + "1.out")).empty());  // rank 1 prints nothing
  }
}

TEST_CASE("launch: when the launcher is killed, its workers checkpoint and exit", "[cli][launch][kill]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const pid_t launcher = spawn_lmtrain(
      dir, {"launch", "--nproc-per-node", "2", "--master-port", "0", "--", "train", "tiny.yaml", "--set",
            "run.steps=10000000", "--set", "log.every=1000"},
      "launch");
  std::map<int, pid_t> workers = wait_for_workers(launcher, 2);
  REQUIRE(workers.size() == 2);
  std::this_thread::sleep_for(1s);
  REQUIRE(::kill(launcher, SIGKILL) == 0);
  REQUIRE(wait_for(launcher, 5s) != -1);
  // The kernel sends each worker SIGTERM (PR_SET_PDEATHSIG); they stop together and save.
  for (const auto& [rank, pid] : workers) {
    bool gone = false;
    for (int i = 0; i < 300 && !gone; ++i) {
      std::this_thread::sleep_for(50ms);
      gone = !process_exists(pid) || read_file(fs::path("/proc") / std::to_string(pid) / "stat").find(") Z") != std::string::npos;
    }
    INFO("rank " << rank);
    CHECK(gone);
  }
  CHECK(fs::exists(dir.path() / "runs" / "tiny" / "checkpoints" / "latest"));
}

TEST_CASE("launch: a stranger attacking the rendezvous store changes nothing in a 2-rank run", "[cli][launch][hostile]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const std::string args = "-- train tiny.yaml --set run.steps=20 " + batch_args(2);
  RunResult calm = run_lmtrain(dir, fmt::format("launch --nproc-per-node 2 --master-port {} {} --set run.name=calm",
                                                free_loopback_port(), args));
  INFO(calm.output);
  REQUIRE(calm.status == 0);
  // The attacker starts before the launcher listens and keeps going until the job has ended:
  // random bytes, 4 GiB lengths, hanging handshakes, wrong secrets, bursts of 500 connections.
  const int port = free_loopback_port();
  std::atomic<bool> stop{false};
  auto attacker = std::async(std::launch::async, [&] { return attack_store(port, stop); });
  RunResult attacked = run_lmtrain(dir, fmt::format("launch --nproc-per-node 2 --master-port {} {} --set run.name=attacked",
                                                    port, args), "", "timeout 180");
  stop = true;
  const int64_t opened = attacker.get();
  INFO(attacked.output);
  REQUIRE(attacked.status == 0);  // timeout(1) would give 124
  CHECK(opened > 500);
  const auto a = steps_of(dir.path() / "runs" / "calm" / "metrics.jsonl");
  const auto b = steps_of(dir.path() / "runs" / "attacked" / "metrics.jsonl");
  REQUIRE(a.size() == 20);
  check_same_steps(b, a, 0.0);
}

TEST_CASE("launch --max-restarts: a worker killed mid-run, and the job finishes by itself with the model bytes of "
          "an uninterrupted run", "[cli][launch][kill][restart]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const std::vector<std::string> train = {"train", "tiny.yaml", "--set", "run.steps=1200", "--set", "checkpoint.every=100",
                                          "--set", "log.every=100", "--set", "eval.every=0"};
  auto launch_args = [&](const std::string& name, bool restarts) {
    std::vector<std::string> args = {"launch", "--nproc-per-node", "2", "--master-port", "0", "--grace", "3"};
    if (restarts) args.insert(args.end(), {"--max-restarts", "2"});
    args.push_back("--");
    args.insert(args.end(), train.begin(), train.end());
    args.insert(args.end(), {"--set", "run.name=" + name});
    return args;
  };
  const pid_t straight = spawn_lmtrain(dir, launch_args("straight", false), "straight");
  const int straight_status = wait_for(straight, 120s);
  INFO(read_file(dir.path() / "straight.out"));
  REQUIRE(straight_status == 0);

  const pid_t launcher = spawn_lmtrain(dir, launch_args("restarted", true), "restarted");
  // Once a checkpoint exists (and well before the end), SIGKILL rank 1.
  const fs::path latest = dir.path() / "runs" / "restarted" / "checkpoints" / "latest";
  std::map<int, pid_t> workers;
  for (int i = 0; i < 1000 && !(fs::exists(latest) && workers.size() == 2); ++i) {
    std::this_thread::sleep_for(10ms);
    workers = workers_of(launcher);
  }
  REQUIRE(workers.size() == 2);
  REQUIRE(fs::exists(latest));
  REQUIRE(::kill(workers[1], SIGKILL) == 0);
  const int status = wait_for(launcher, 120s);
  const std::string output = read_file(dir.path() / "restarted.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(output, Contains("rank 1 failed first") && Contains("restart 1 of 2") &&
                         Contains("the job finished after 1 restart"));
  // The resume record says which attempt it is.
  const auto records = read_jsonl(dir.path() / "runs" / "restarted" / "metrics.jsonl");
  int resumes = 0;
  for (const auto& r : records)
    if (r.value("event", "") == "resume") {
      ++resumes;
      CHECK(r["restart"] == 1);
    }
  CHECK(resumes == 1);
  const fs::path end = fs::path("checkpoints") / "step_00001200" / "model.safetensors";
  CHECK(read_file(dir.path() / "runs" / "restarted" / end) == read_file(dir.path() / "runs" / "straight" / end));
  CHECK(read_file(dir.path() / "runs" / "restarted" / "checkpoints" / "step_00001200" / "optimizer.safetensors") ==
        read_file(dir.path() / "runs" / "straight" / "checkpoints" / "step_00001200" / "optimizer.safetensors"));
}

TEST_CASE("launch --max-restarts: a failure that repeats gives up after N restarts, naming each attempt",
          "[cli][launch][kill][restart]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const pid_t launcher = spawn_lmtrain(
      dir, {"launch", "--nproc-per-node", "2", "--master-port", "0", "--grace", "3", "--max-restarts", "1", "--",
            "train", "tiny.yaml", "--set", "run.steps=10000000", "--set", "checkpoint.every=50", "--set", "log.every=1000"},
      "launch");
  // Kill rank 1 of every attempt as soon as it runs: the same failure each time.
  std::set<pid_t> killed;
  int status = -1;
  for (int i = 0; i < 6000 && status == -1; ++i) {
    std::this_thread::sleep_for(10ms);
    const auto workers = workers_of(launcher);
    if (workers.count(1) && !killed.count(workers.at(1)) && killed.size() < 2) {
      std::this_thread::sleep_for(300ms);
      if (::kill(workers.at(1), SIGKILL) == 0) killed.insert(workers.at(1));
    }
    int s = 0;
    if (::waitpid(launcher, &s, WNOHANG) == launcher) status = s;
  }
  const std::string output = read_file(dir.path() / "launch.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(killed.size() == 2);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGKILL);
  CHECK_THAT(output, Contains("giving up after 1 restart (--max-restarts 1)") &&
                         Contains("attempt 1: exit 137 (signal 9, KILL)") && Contains("attempt 2: exit 137 (signal 9, KILL)"));
}

TEST_CASE("launch --max-restarts: exit 2 is not restarted, and commands that cannot resume are refused",
          "[cli][launch][restart][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  // A user error in every worker: restarting would repeat it.
  RunResult bad = run_lmtrain(dir, "launch --nproc-per-node 2 --master-port 0 --max-restarts 3 -- train tiny.yaml "
                                   "--set checkpoint.every=5 --set data.source=shards --set data.train=missing.bin");
  INFO(bad.output);
  CHECK(bad.status == 2);
  CHECK_THAT(bad.output, Contains("not restarting: exit 2"));
  CHECK_FALSE(Catch::Matchers::Contains("restart 1 of").match(bad.output));
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"launch --max-restarts 2 -- train tiny.yaml", "tiny.yaml has checkpoint.every: 0"},
           {"launch --max-restarts 2 -- eval --checkpoint runs/tiny", "the command after -- is 'eval', not train"},
           {"launch --max-restarts 2 -- train tiny.yaml --bogus", "not a valid train command"},
           {"launch --max-restarts 101 -- train tiny.yaml", "--max-restarts: Value 101 not in range 0 to 100"},
       }) {
    const RunResult r = run_lmtrain(dir, c.args);
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message));
  }
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "tiny" / "checkpoints"));
}

TEST_CASE("launch: a worker frozen with SIGSTOP stops the job within run.heartbeat_timeout, naming its rank and host",
          "[cli][launch][kill][heartbeat]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  const pid_t launcher = spawn_lmtrain(
      dir, {"launch", "--nproc-per-node", "2", "--master-port", "0", "--grace", "2", "--", "train", "tiny.yaml", "--set",
            "run.steps=10000000", "--set", "log.every=1000", "--set", "run.heartbeat_timeout=3"},
      "launch");
  std::map<int, pid_t> workers = wait_for_workers(launcher, 2);
  REQUIRE(workers.size() == 2);
  std::this_thread::sleep_for(1500ms);  // well into training
  const auto frozen_at = std::chrono::steady_clock::now();
  REQUIRE(::kill(workers[1], SIGSTOP) == 0);
  // 3 s without a heartbeat, then the launcher's 2 s of grace before SIGKILL; far below the
  // collectives' 300 s timeout.
  const int status = wait_for(launcher, 30s);
  const auto took = std::chrono::steady_clock::now() - frozen_at;
  if (status == -1) ::kill(workers[1], SIGKILL);
  const std::string output = read_file(dir.path() / "launch.out");
  INFO(output);
  REQUIRE(status != -1);
  CHECK(took < 12s);
  CHECK(took > 2s);
  CHECK_THAT(output, Contains("rank 0 of 2: rank 1 on host") && Contains("sent no heartbeat for") &&
                         Contains("run.heartbeat_timeout is 3 s"));
  // The table blames the frozen rank, not rank 0, which noticed (exit 3).
  CHECK_THAT(output, Contains("rank 1 stopped answering (no heartbeat: stopped or hung; then signal 9 (KILL))"));
  for (const auto& [rank, pid] : workers) {
    INFO("rank " << rank);
    CHECK_FALSE(process_exists(pid));
  }
}

TEST_CASE("launch: run.heartbeat_timeout is range-checked", "[cli][launch][heartbeat][errors]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  for (const char* value : {"-1", "0.5", "nan", "100000"}) {
    const RunResult r = run_lmtrain(dir, std::string("plan tiny.yaml --set run.heartbeat_timeout=") + value);
    INFO(value << ": " << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("run.heartbeat_timeout: must be 0 (off) or from 1 to 86400 seconds"));
  }
  CHECK(run_lmtrain(dir, "plan tiny.yaml --set run.heartbeat_timeout=0").status == 0);
}

TEST_CASE("launch: gradients averaged during the backward pass (distributed.overlap_comm) give the bytes of averaging "
          "them after it", "[cli][launch][overlap]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  INFO(one.output);
  REQUIRE(one.status == 0);
  const auto expected = steps_of(dir.path() / "runs" / "w1" / "metrics.jsonl");
  // Tiny buckets (several per step, some packed from slices of several tensors), with gradient
  // accumulation: only the last micro-batch's backward pass hands buckets over.
  // ZeRO-1 reduce-scatters the same buckets, each split at the shard boundaries it crosses.
  for (auto [world, zero] : {std::pair{2, 0}, {3, 0}, {3, 1}}) {
    std::map<std::string, std::string> model_bytes;
    for (const char* overlap : {"true", "false"}) {
      const std::string name = fmt::format("w{}z{}_{}", world, zero, overlap);
      RunResult r = run_lmtrain(dir, fmt::format("launch --nproc-per-node {} --master-port 0 -- train tiny.yaml "
                                                 "--set run.name={} --set distributed.overlap_comm={} "
                                                 "--set distributed.zero_stage={} --set distributed.bucket_mb=0.004 {}",
                                                 world, name, overlap, zero, batch_args(world)));
      INFO(name << ": " << r.output);
      REQUIRE(r.status == 0);
      check_same_steps(steps_of(dir.path() / "runs" / name / "metrics.jsonl"), expected, 1e-5);
      model_bytes[overlap] = read_file(dir.path() / "runs" / name / "checkpoints" / "step_00000030" / "model.safetensors");
    }
    INFO("world " << world << ", zero stage " << zero);
    CHECK(model_bytes["true"] == model_bytes["false"]);
  }
  // lmtrain bench on 2 ranks says how much of the collectives the backward pass hid.
  RunResult bench = run_lmtrain(dir, "launch --nproc-per-node 2 --master-port 0 -- bench tiny.yaml --steps 3 --warmup 1 "
                                     "--set distributed.bucket_mb=0.004 --json bench.json");
  INFO(bench.output);
  REQUIRE(bench.status == 0);
  CHECK_THAT(bench.output, Contains("2 ranks: gradient collectives") && Contains("hidden behind it"));
  const auto report = nlohmann::json::parse(read_file(dir.path() / "bench.json"));
  CHECK(report["world_size"] == 2);
  CHECK(report["phases"].contains("comm"));
  CHECK(report["phases"].contains("comm_wait"));
}
