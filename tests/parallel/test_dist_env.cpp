// read_dist_env: who this process is, from torchrun's or Slurm's variables (injected lookup).
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <string>

#include "core/error.h"
#include "parallel/dist_env.h"

using Catch::Matchers::Contains;
using Vars = std::map<std::string, std::string>;

namespace {

lmt::EnvLookup lookup_in(const Vars& vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

lmt::DistEnv read(const Vars& vars) { return lmt::read_dist_env(lookup_in(vars)); }

std::string error_of(const Vars& vars) {
  try {
    read(vars);
  } catch (const lmt::Error& e) {
    return e.what();
  }
  FAIL("expected lmt::Error, but read_dist_env accepted the variables");
  return {};
}

}  // namespace

TEST_CASE("read_dist_env: nothing set is rank 0 of 1", "[parallel][dist_env]") {
  const lmt::DistEnv env = read({});
  CHECK(env.source == "none");
  CHECK(env.rank == 0);
  CHECK(env.local_rank == 0);
  CHECK(env.world_size == 1);
  CHECK(env.local_world_size == 1);
  CHECK(env.master_addr.empty());
  CHECK(env.master_port == 0);
  // Unrelated variables change nothing.
  CHECK(read({{"HOME", "/root"}, {"SLURM_JOB_ID", "42"}}).source == "none");
}

TEST_CASE("read_dist_env: torchrun variables", "[parallel][dist_env]") {
  const lmt::DistEnv env = read({{"RANK", "5"},
                                 {"LOCAL_RANK", "1"},
                                 {"WORLD_SIZE", "8"},
                                 {"LOCAL_WORLD_SIZE", "4"},
                                 {"MASTER_ADDR", "10.0.0.1"},
                                 {"MASTER_PORT", "29500"}});
  CHECK(env.source == "torchrun");
  CHECK(env.rank == 5);
  CHECK(env.local_rank == 1);
  CHECK(env.world_size == 8);
  CHECK(env.local_world_size == 4);
  CHECK(env.master_addr == "10.0.0.1");
  CHECK(env.master_port == 29500);
}

TEST_CASE("read_dist_env: torchrun without the LOCAL_ variables is one node", "[parallel][dist_env]") {
  const lmt::DistEnv env = read({{"RANK", "2"}, {"WORLD_SIZE", "4"}});
  CHECK(env.source == "torchrun");
  CHECK(env.rank == 2);
  CHECK(env.local_rank == 2);
  CHECK(env.world_size == 4);
  CHECK(env.local_world_size == 4);
}

TEST_CASE("read_dist_env: Slurm variables", "[parallel][dist_env]") {
  const lmt::DistEnv env = read({{"SLURM_PROCID", "3"},
                                 {"SLURM_NTASKS", "8"},
                                 {"SLURM_LOCALID", "1"},
                                 {"SLURM_NTASKS_PER_NODE", "2"},
                                 {"MASTER_ADDR", "node01"},
                                 {"MASTER_PORT", "12345"}});
  CHECK(env.source == "slurm");
  CHECK(env.rank == 3);
  CHECK(env.local_rank == 1);
  CHECK(env.world_size == 8);
  CHECK(env.local_world_size == 2);
  CHECK(env.master_addr == "node01");
  CHECK(env.master_port == 12345);
}

TEST_CASE("read_dist_env: SLURM_NTASKS_PER_NODE in Slurm's 4(x2) form", "[parallel][dist_env]") {
  const lmt::DistEnv env =
      read({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "4(x2)"}});
  CHECK(env.source == "slurm");
  CHECK(env.rank == 5);
  CHECK(env.local_world_size == 4);
  CHECK(read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}).local_world_size == 1);
}

TEST_CASE("read_dist_env: Slurm needs both SLURM_PROCID and SLURM_NTASKS", "[parallel][dist_env]") {
  CHECK(read({{"SLURM_PROCID", "0"}}).source == "none");
  CHECK(read({{"SLURM_NTASKS", "4"}}).world_size == 1);
}

TEST_CASE("read_dist_env: torchrun wins over Slurm", "[parallel][dist_env]") {
  const lmt::DistEnv env = read({{"RANK", "1"},
                                 {"WORLD_SIZE", "2"},
                                 {"LOCAL_RANK", "1"},
                                 {"SLURM_PROCID", "0"},
                                 {"SLURM_NTASKS", "1"},
                                 {"SLURM_LOCALID", "0"}});
  CHECK(env.source == "torchrun");
  CHECK(env.rank == 1);
  CHECK(env.world_size == 2);
  CHECK(env.local_rank == 1);
}

TEST_CASE("read_dist_env: malformed numbers name the variable", "[parallel][dist_env][errors]") {
  SECTION("WORLD_SIZE=abc") {
    const std::string msg = error_of({{"RANK", "0"}, {"WORLD_SIZE", "abc"}});
    CHECK_THAT(msg, Contains("WORLD_SIZE"));
    CHECK_THAT(msg, Contains("'abc'"));
  }
  SECTION("WORLD_SIZE=0") { CHECK_THAT(error_of({{"WORLD_SIZE", "0"}}), Contains("WORLD_SIZE='0'")); }
  SECTION("trailing garbage") { CHECK_THAT(error_of({{"WORLD_SIZE", "4x"}}), Contains("WORLD_SIZE='4x'")); }
  SECTION("empty value") { CHECK_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", ""}}), Contains("RANK=''")); }
  SECTION("negative RANK") { CHECK_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", "-1"}}), Contains("RANK='-1'")); }
  SECTION("LOCAL_RANK") {
    CHECK_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "zero"}}), Contains("LOCAL_RANK='zero'"));
  }
  SECTION("SLURM_NTASKS") {
    CHECK_THAT(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "many"}}), Contains("SLURM_NTASKS='many'"));
  }
  SECTION("MASTER_PORT") {
    CHECK_THAT(error_of({{"MASTER_PORT", "http"}}), Contains("MASTER_PORT='http'"));
  }
}

TEST_CASE("read_dist_env: a rank not below the world size is an error", "[parallel][dist_env][errors]") {
  SECTION("torchrun") {
    const std::string msg = error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}});
    CHECK_THAT(msg, Contains("RANK=4"));
    CHECK_THAT(msg, Contains("WORLD_SIZE=4"));
  }
  SECTION("RANK without WORLD_SIZE") { error_of({{"RANK", "1"}}); }
  SECTION("Slurm") {
    const std::string msg = error_of({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "2"}});
    CHECK_THAT(msg, Contains("SLURM_PROCID=2"));
  }
}

// The user must be able to tell which variable to fix: the message names them as they are spelled
// in the environment.
TEST_CASE("read_dist_env: rank >= world size names the variables to fix", "[parallel][dist_env][errors]") {
  SECTION("torchrun") {
    const std::string msg = error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}});
    CHECK_THAT(msg, Contains("RANK"));
    CHECK_THAT(msg, Contains("WORLD_SIZE"));
  }
  SECTION("Slurm") {
    const std::string msg = error_of({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "2"}});
    CHECK_THAT(msg, Contains("SLURM_PROCID"));
    CHECK_THAT(msg, Contains("SLURM_NTASKS"));
  }
}

TEST_CASE("dist_env: Slurm's first node becomes MASTER_ADDR, the job id is kept", "[parallel][dist_env]") {
  CHECK(lmt::first_slurm_host("node[07-09,12],gpu1") == "node07");
  CHECK(lmt::first_slurm_host("gpu1,node[1-2]") == "gpu1");
  CHECK(lmt::first_slurm_host("single") == "single");
  CHECK(lmt::first_slurm_host("n[3]") == "n3");
  CHECK_THAT(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "n[1-2"}}),
             Contains("unclosed"));
  const lmt::DistEnv env = read({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a[01-02]"},
                                 {"SLURM_JOB_ID", "77"}, {"SLURM_STEP_ID", "3"}});
  CHECK(env.master_addr == "a01");
  CHECK(env.master_port == 29500);
  CHECK(env.job_id == "77.3");
  CHECK(env.slurm_step);  // a task of srun's step 3; the batch script has no SLURM_STEP_ID
  CHECK_FALSE(read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "77"}}).slurm_step);
  CHECK(read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_RUN_ID", "x"}}).job_id == "x");
}

TEST_CASE("dist_env: under torchrun the store port depends on whose store holds MASTER_PORT", "[parallel][dist_env]") {
  const Vars torchrun = {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "node1"}, {"MASTER_PORT", "29500"}};
  // Static rendezvous (and torchrun variables set by hand): torchrun's store listens on MASTER_PORT.
  CHECK(read(torchrun).store_port == 29501);
  Vars static_rdzv = torchrun;
  static_rdzv["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  CHECK(read(static_rdzv).store_port == 29501);
  // c10d rendezvous: MASTER_PORT is a free port the agent chose for the workers' own store.
  Vars c10d = torchrun;
  c10d["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  CHECK(read(c10d).store_port == 29500);
  // No overflow past the largest integer (the port itself is refused when the worker connects).
  Vars huge = torchrun;
  huge["MASTER_PORT"] = "9223372036854775807";
  CHECK(read(huge).store_port == 9223372036854775807);
  // Slurm has no store of its own.
  CHECK(read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"MASTER_PORT", "4000"}}).store_port == 4000);
}

TEST_CASE("dist_env: torchrun's restart count and limit are kept", "[parallel][dist_env]") {
  CHECK(read({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).restart_count == -1);
  const lmt::DistEnv env = read({{"RANK", "1"},
                                 {"WORLD_SIZE", "2"},
                                 {"TORCHELASTIC_RESTART_COUNT", "1"},
                                 {"TORCHELASTIC_MAX_RESTARTS", "3"}});
  CHECK(env.restart_count == 1);
  CHECK(env.max_restarts == 3);
  CHECK_THAT(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_RESTART_COUNT", "x"}}),
             Contains("TORCHELASTIC_RESTART_COUNT='x'"));
}
