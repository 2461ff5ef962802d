#include <catch2/catch.hpp>

#include "parallel/hostfile.h"
#include "tests/test_util.h"

using namespace lmt;
using Catch::Matchers::Contains;
using lmt::testing::error_message;

namespace {

const char* kHostfile =
    "# the cluster\n"
    "worker-1 slots=4\n"
    "\n"
    "  worker-2   slots=2   # second node\n"
    "10.0.0.3 slots=1\n";

std::vector<HostSlots> hosts() { return parse_hostfile(kHostfile, "hosts.txt"); }

}  // namespace

TEST_CASE("hostfile: hosts, slots, comments and blank lines", "[parallel][hostfile]") {
  const auto h = hosts();
  REQUIRE(h.size() == 3);
  CHECK(h[0] == HostSlots{"worker-1", {0, 1, 2, 3}});
  CHECK(h[1] == HostSlots{"worker-2", {0, 1}});
  CHECK(h[2] == HostSlots{"10.0.0.3", {0}});
}

TEST_CASE("hostfile: every malformed line is named", "[parallel][hostfile][errors]") {
  auto message = [](const std::string& text) { return error_message([&] { parse_hostfile(text, "h.txt"); }); };
  CHECK_THAT(message("a slots=1\nb\n"), Contains("h.txt:2") && Contains("no slot count"));
  CHECK_THAT(message("a slots=x\n"), Contains("h.txt:1") && Contains("slots=N"));
  CHECK_THAT(message("a gpus=2\n"), Contains("h.txt:1") && Contains("'gpus=2'"));
  CHECK_THAT(message("a slots=0\n"), Contains("h.txt:1") && Contains("at least 1"));
  CHECK_THAT(message("a slots=2 b slots=2\n"), Contains("h.txt:1") && Contains("one host per line"));
  CHECK_THAT(message("a slots=1\n# x\na slots=2\n"), Contains("h.txt:3") && Contains("appears twice"));
  CHECK_THAT(message("a;rm slots=1\n"), Contains("h.txt:1") && Contains("not a valid host name"));
  CHECK_THAT(message("-oProxyCommand=x slots=1\n"), Contains("not a valid host name"));
  CHECK_THAT(message("# only comments\n\n"), Contains("h.txt") && Contains("no hosts"));
  // Found by fuzz/fuzz_hostfile.cpp: slots=2000000000 allocated 8 GB of slot numbers.
  CHECK_THAT(message("h slots=2000000000\n"), Contains("h.txt:1") && Contains("at most 1024"));
  CHECK_THAT(message("127.0.0.1 slots=100000\n"), Contains("slots=100000"));
}

TEST_CASE("hostfile: --include keeps what it lists", "[parallel][hostfile]") {
  HostFilter f;
  f.include = "worker-1:0,2@10.0.0.3";
  CHECK(filter_hosts(hosts(), f) == std::vector<HostSlots>{{"worker-1", {0, 2}}, {"10.0.0.3", {0}}});
  f.include = "worker-2";
  CHECK(filter_hosts(hosts(), f) == std::vector<HostSlots>{{"worker-2", {0, 1}}});
}

TEST_CASE("hostfile: --exclude drops slots or whole hosts", "[parallel][hostfile]") {
  HostFilter f;
  f.exclude = "worker-1:1@worker-2";
  CHECK(filter_hosts(hosts(), f) == std::vector<HostSlots>{{"worker-1", {0, 2, 3}}, {"10.0.0.3", {0}}});
  f.exclude = "10.0.0.3:0";  // its only slot: the host disappears
  CHECK(filter_hosts(hosts(), f).size() == 2);
}

TEST_CASE("hostfile: --num-nodes and --nproc-per-node", "[parallel][hostfile]") {
  HostFilter f;
  f.num_nodes = 2;
  f.nproc_per_node = 2;
  CHECK(filter_hosts(hosts(), f) == std::vector<HostSlots>{{"worker-1", {0, 1}}, {"worker-2", {0, 1}}});
  f.nproc_per_node = 3;
  CHECK_THAT(error_message([&] { filter_hosts(hosts(), f); }), Contains("worker-2") && Contains("only 2 slots"));
  f = {};
  f.num_nodes = 4;
  CHECK_THAT(error_message([&] { filter_hosts(hosts(), f); }), Contains("--num-nodes 4") && Contains("3 hosts"));
}

TEST_CASE("hostfile: every filter error names the flag and the entry", "[parallel][hostfile][errors]") {
  auto message = [](const std::string& include, const std::string& exclude) {
    HostFilter f;
    f.include = include;
    f.exclude = exclude;
    return error_message([&] { filter_hosts(hosts(), f); });
  };
  CHECK_THAT(message("worker-9", ""), Contains("--include") && Contains("'worker-9' is not in the hostfile"));
  CHECK_THAT(message("worker-1:7", ""), Contains("has no slot 7"));
  CHECK_THAT(message("worker-1:x", ""), Contains("slot 'x'") && Contains("not a number"));
  CHECK_THAT(message("worker-1:", ""), Contains("slot ''"));
  CHECK_THAT(message("worker-1:0,0", ""), Contains("slot 0 of host 'worker-1' is listed twice"));
  CHECK_THAT(message("worker-1@worker-1", ""), Contains("listed twice"));
  CHECK_THAT(message("worker-1@@worker-2", ""), Contains("empty host entry"));
  CHECK_THAT(message("", "nohost"), Contains("--exclude") && Contains("'nohost'"));
  CHECK_THAT(message("worker-1", "worker-2"), Contains("cannot be used together"));
  CHECK_THAT(message("", "worker-1@worker-2@10.0.0.3"), Contains("no slots left"));
}

#include "parallel/launcher.h"

TEST_CASE(".lmtrain_env: KEY=VALUE lines, comments, export; errors name the line", "[parallel][launch]") {
  const auto vars = read_env_file("# NCCL settings\nNCCL_DEBUG=INFO\n\nexport OMP_NUM_THREADS=4\r\nLMTRAIN_X=a=b\nEMPTY=\n",
                                  "env");
  REQUIRE(vars.size() == 4);
  CHECK(vars[0] == std::pair<std::string, std::string>{"NCCL_DEBUG", "INFO"});
  CHECK(vars[1] == std::pair<std::string, std::string>{"OMP_NUM_THREADS", "4"});
  CHECK(vars[2] == std::pair<std::string, std::string>{"LMTRAIN_X", "a=b"});
  CHECK(vars[3] == std::pair<std::string, std::string>{"EMPTY", ""});
  CHECK_THAT(error_message([] { read_env_file("A=1\nnot a variable\n", ".lmtrain_env"); }),
             Contains(".lmtrain_env:2") && Contains("KEY=VALUE"));
  CHECK_THAT(error_message([] { read_env_file("1X=2\n", "e"); }), Contains("e:1"));
  CHECK_THAT(error_message([] { read_env_file("A B=2\n", "e"); }), Contains("e:1"));
}

TEST_CASE("hostfile: only 127.0.0.0/8 addresses are loopback, not names that start with 127.", "[parallel][hostfile]") {
  CHECK(lmt::is_ipv4_loopback("127.0.0.1"));
  CHECK(lmt::is_ipv4_loopback("127.1.2.3"));
  CHECK_FALSE(lmt::is_ipv4_loopback("127.example.com"));
  CHECK_FALSE(lmt::is_ipv4_loopback("127.0.0.1.nip.io"));
  CHECK_FALSE(lmt::is_ipv4_loopback("128.0.0.1"));
  CHECK_FALSE(lmt::is_ipv4_loopback("localhost"));  // a name: callers compare it themselves
}
