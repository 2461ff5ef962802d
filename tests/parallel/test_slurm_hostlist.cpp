// expand_slurm_hostlist: Slurm's compressed node lists, checked against the forms Slurm's
// documentation gives and, where scontrol is installed, against `scontrol show hostnames` itself.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/dist_env.h"
#include "parallel/slurm_hostlist.h"
#include "tests/test_util.h"

using Catch::Matchers::Contains;
using Hosts = std::vector<std::string>;

namespace {

std::string error_of(const std::string& list) {
  try {
    lmt::expand_slurm_hostlist(list);
  } catch (const lmt::Error& e) {
    return e.what();
  }
  FAIL("expected lmt::Error for '" << list << "'");
  return {};
}

bool on_path(const std::string& program) {
  return std::system(("command -v " + program + " > /dev/null 2>&1").c_str()) == 0;
}

}  // namespace

TEST_CASE("expand_slurm_hostlist: ranges, lists, padding and several bracket groups", "[parallel][slurm]") {
  using lmt::expand_slurm_hostlist;
  CHECK(expand_slurm_hostlist("node[01-04,07]") == Hosts{"node01", "node02", "node03", "node04", "node07"});
  CHECK(expand_slurm_hostlist("a[1-2],b3") == Hosts{"a1", "a2", "b3"});
  CHECK(expand_slurm_hostlist("rack[1-2]-node[01-02]") ==
        Hosts{"rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"});
  CHECK(expand_slurm_hostlist("n[098-100]") == Hosts{"n098", "n099", "n100"});  // the width of LOW
  CHECK(expand_slurm_hostlist("n[8-11]") == Hosts{"n8", "n9", "n10", "n11"});
  CHECK(expand_slurm_hostlist("n[1-02]") == Hosts{"n1", "n2"});
  CHECK(expand_slurm_hostlist("single") == Hosts{"single"});
  CHECK(expand_slurm_hostlist("n.example.com,gpu-1_a") == Hosts{"n.example.com", "gpu-1_a"});
  CHECK(expand_slurm_hostlist("n[7]") == Hosts{"n7"});
  CHECK(expand_slurm_hostlist("n[1,1]") == Hosts{"n1", "n1"});  // duplicates kept, as scontrol does
  CHECK(expand_slurm_hostlist("n[1-2][3-4]") == Hosts{"n13", "n14", "n23", "n24"});
  CHECK(expand_slurm_hostlist("gpu-a[01-02]-ib") == Hosts{"gpu-a01-ib", "gpu-a02-ib"});  // a suffix (newer Slurm)
  CHECK(expand_slurm_hostlist("n[0-65535]").size() == lmt::kMaxSlurmHosts);
  CHECK(lmt::first_slurm_host("rack[3-4]-node[07-08],x") == "rack3-node07");
}

TEST_CASE("expand_slurm_hostlist: malformed lists are errors naming the variable and the fault",
          "[parallel][slurm][errors]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"n[1-2", "unclosed '['"},
      {"n1]", "']' without its '['"},
      {"n[[1]]", "'[' inside brackets"},
      {"a,,b", "empty entry"},
      {",a", "empty entry"},
      {"a,", "ends with a ','"},
      {"n[]", "empty brackets"},
      {"n[1-2,]", "empty range"},
      {"n[,1]", "empty range"},
      {"n[1-]", "empty number"},
      {"n[-2]", "empty number"},
      {"n[1--2]", "not a number"},
      {"n[a-b]", "not a number"},
      {"n[5-3]", "descending range '5-3'"},
      {"n[1-99999999999]", "more than 65536 hosts"},
      {"n[0-999],m[0-999]" + std::string(",x[0-65000]"), "more than 65536 hosts"},
      {"a[0-999]b[0-999]", "more than 65536 hosts"},
      {"n[1-2]:x", "':' at offset 6"},
      {"a b", "' ' at offset 1"},
      {"n[1234567890123456789]", "at most 18 digits"},
  };
  for (const auto& [list, expected] : cases) {
    INFO("list '" << list << "'");
    const std::string message = error_of(list);
    CHECK_THAT(message, Contains(expected));
    CHECK_THAT(message, Contains("SLURM_JOB_NODELIST '" + list + "'"));
  }
  try {
    lmt::first_slurm_host("n[1-2", "SLURM_NODELIST");
    FAIL("accepted");
  } catch (const lmt::Error& e) {
    CHECK_THAT(e.what(), Contains("SLURM_NODELIST 'n[1-2'"));
  }
}

// scontrol show hostnames needs only a slurm.conf naming a cluster, not a running one.
TEST_CASE("expand_slurm_hostlist: the same hosts as `scontrol show hostnames`", "[parallel][slurm]") {
  if (!on_path("scontrol")) {
    WARN("SKIPPED: scontrol is not installed (tools/install-deps.sh --tests installs slurm-client)");
    return;
  }
  lmt::testing::TempDir dir;
  lmt::testing::write_file(dir.path() / "slurm.conf", "ClusterName=hostlist-check\nSlurmctldHost=localhost\n");
  // Slurm 22.05 takes no text after an entry's last bracket group, and orders three or more
  // groups its own way; the lists here are the forms it and we read alike.
  const std::vector<std::string> lists = {
      "node[01-04,07]", "a[1-2],b3",  "rack[1-2]-node[01-02]", "n[098-100]", "n[8-11]",        "n[1-02]",
      "n[00-010]",      "single",     "n.example.com,x-1",     "n[7]",       "n[1,1],n[1-2]", "n[1-2][3-4]",
      "gpu[0-3,8-9]",   "[1-3]",      "x[9-10]-y[1-3,5]",      "n[0-999]",
  };
  for (const auto& list : lists) {
    INFO("list '" << list << "'");
    const std::string command = "SLURM_CONF=" + (dir.path() / "slurm.conf").string() +
                                " timeout 20 scontrol show hostnames '" + list + "' 2>&1";
    std::FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
    REQUIRE(::pclose(pipe) == 0);
    Hosts expected;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) expected.push_back(line);
    CHECK(lmt::expand_slurm_hostlist(list) == expected);
  }
}
