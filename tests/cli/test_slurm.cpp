// lmtrain under a real Slurm: a one-node cluster brought up by tools/slurm-local.sh, `srun -N1
// -n2` and the sbatch script of docs/distributed.md train with the losses of one rank, and the
// mistakes a Slurm user can make stop with exit code 2 and a message.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <sstream>

#include "tests/cli/cli_util.h"
#include "tests/cli/launch_steps.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;

extern char** environ;

namespace {

// `env -u` for every job-launcher variable of this process's environment, so that a suite run
// inside a Slurm job (or torchrun) does not hand that job's ids to the test cluster.
std::string clean_env() {
  std::string out = "env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT";
  for (char** var = environ; *var != nullptr; ++var) {
    const std::string entry = *var;
    if (entry.rfind("SLURM_", 0) == 0) out += " -u " + entry.substr(0, entry.find('='));
  }
  return out;
}

// The one code block of docs/distributed.md that is an sbatch script.
std::string sbatch_script_of_docs() {
  const std::string docs = read_file(fs::path(LMTRAIN_SOURCE_DIR) / "docs" / "distributed.md");
  const size_t start = docs.find("```sh\n#!/bin/bash\n");
  REQUIRE(start != std::string::npos);
  const size_t body = start + 6;
  const size_t end = docs.find("```", body);
  REQUIRE(end != std::string::npos);
  const std::string script = docs.substr(body, end - body);
  REQUIRE_THAT(script, Contains("#SBATCH") && Contains("srun ./build/lmtrain train"));
  return script;
}

// tools/slurm-local.sh's cluster in dir/slurm, stopped when this goes out of scope (also when a
// REQUIRE fails). `skip` says why there is none.
class LocalSlurm {
 public:
  explicit LocalSlurm(const TempDir& dir) : dir_(dir), state_(dir.path() / "slurm") {
    const std::string script = (fs::path(LMTRAIN_SOURCE_DIR) / "tools" / "slurm-local.sh").string();
    RunResult start = run_shell(dir_, "bash " + quoted(script) + " start " + quoted(state_.string()));
    started_ = true;
    if (start.status != 0) {
      std::string last;
      std::istringstream lines(start.output);
      for (std::string line; std::getline(lines, line);)
        if (line.rfind("slurm-local:", 0) == 0) last = line;
      skip = start.status == 3 ? last : "tools/slurm-local.sh failed (exit " + std::to_string(start.status) +
                                            "): " + start.output;
      unexpected_failure = start.status != 3;
    }
  }
  ~LocalSlurm() {
    if (!started_) return;
    const std::string script = (fs::path(LMTRAIN_SOURCE_DIR) / "tools" / "slurm-local.sh").string();
    run_shell(dir_, "bash " + quoted(script) + " stop " + quoted(state_.string()));
  }
  LocalSlurm(const LocalSlurm&) = delete;
  LocalSlurm& operator=(const LocalSlurm&) = delete;

  // A command run in dir against this cluster, with a free MASTER_PORT, under a time limit.
  RunResult run(const std::string& command, int port) const {
    return run_shell(dir_, clean_env() + " SLURM_CONF=" + quoted((state_ / "slurm.conf").string()) +
                               " MASTER_PORT=" + std::to_string(port) + " timeout 180 " + command);
  }

  std::string skip;
  bool unexpected_failure = false;

 private:
  const TempDir& dir_;
  fs::path state_;
  bool started_ = false;
};

}  // namespace

TEST_CASE("slurm: srun -n2 and the sbatch script of the docs train with the losses of 1 rank", "[cli][slurm]") {
  TempDir dir;
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  LocalSlurm slurm(dir);
  if (!slurm.skip.empty()) {
    // The script refusing for a reason of this machine is a skip; failing otherwise is a bug.
    REQUIRE_FALSE(slurm.unexpected_failure);
    WARN("SKIPPED: no local Slurm cluster: " << slurm.skip);
    return;
  }
  // ./build/lmtrain, as the docs' commands spell it, is the binary under test.
  fs::create_directories(dir.path() / "build");
  fs::create_symlink(lmtrain_binary(), dir.path() / "build" / "lmtrain");
  RunResult one = run_lmtrain(dir, "train tiny.yaml --set run.name=w1 " + batch_args(1));
  INFO(one.output);
  REQUIRE(one.status == 0);
  const auto expected = steps_of(dir.path() / "runs" / "w1" / "metrics.jsonl");
  REQUIRE(expected.size() == 30);

  // srun: two tasks on the one node, rank 0 serving the store at the node list's first host.
  RunResult srun = slurm.run("srun -N1 -n2 ./build/lmtrain train tiny.yaml --set run.name=srun " + batch_args(2),
                             free_loopback_port());
  {
    INFO(srun.output);
    REQUIRE(srun.status == 0);
    check_same_steps(steps_of(dir.path() / "runs" / "srun" / "metrics.jsonl"), expected, 1e-5);
  }

  // sbatch: the docs' script, its #SBATCH --nodes=2 overridden on the command line.
  write_file(dir.path() / "train.sbatch", sbatch_script_of_docs());
  RunResult sbatch = slurm.run("sbatch --wait --nodes=1 --output=sbatch.out train.sbatch tiny.yaml "
                               "--set run.name=sbatch " + batch_args(2),
                               free_loopback_port());
  {
    INFO(sbatch.output << read_file(dir.path() / "sbatch.out"));
    REQUIRE(sbatch.status == 0);
    check_same_steps(steps_of(dir.path() / "runs" / "sbatch" / "metrics.jsonl"), expected, 1e-5);
  }

  // A recipe whose batch triple fixes a world size of 1, under two tasks: both ranks exit 2.
  RunResult fixed = slurm.run("srun -N1 -n2 ./build/lmtrain train tiny.yaml --set run.name=fixed "
                              "--set run.micro_batch_size=2 --set run.grad_accum_steps=6 --set run.global_batch_size=12",
                              free_loopback_port());
  INFO(fixed.output);
  CHECK(fixed.status == 2);
  CHECK_THAT(fixed.output, Contains("12 contradicts micro_batch_size 2 x grad_accum_steps 6 x world size 2 = 24"));
  CHECK_THAT(fixed.output, Contains("(the world size 2 is SLURM_NTASKS, the number of srun tasks)"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "fixed" / "metrics.jsonl"));

  // lmtrain started by the batch script itself (no srun) sees SLURM_NTASKS=2 and SLURM_PROCID=0:
  // it must say so instead of waiting for a rank 1 that never comes.
  write_file(dir.path() / "no-srun.sbatch", "#!/bin/bash\nLMTRAIN_TIMEOUT_S=20 ./build/lmtrain train tiny.yaml --set run.name=nosrun " +
                                                batch_args(2) + "\n");
  RunResult no_srun = slurm.run("sbatch --wait --ntasks=2 --output=no-srun.out no-srun.sbatch", free_loopback_port());
  const std::string no_srun_out = read_file(dir.path() / "no-srun.out");
  INFO(no_srun.output << no_srun_out);
  CHECK(no_srun.status == 2);
  CHECK_THAT(no_srun_out, Contains("SLURM_NTASKS=2 but SLURM_STEP_ID is not set") &&
                              Contains("start the workers with `srun lmtrain train ...`"));
}
