// The heartbeat through the rendezvous store: a rank that stops beating, a rank that finished,
// and a store that went away (tests/cli/test_launch.cpp stops a real worker with SIGSTOP).
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "parallel/heartbeat.h"
#include "parallel/store.h"

using namespace lmt;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// What on_lost was called with, and when.
struct LostReport {
  std::mutex mutex;
  std::optional<std::string> message;
  Clock::time_point at;

  std::function<void(const std::string&)> callback() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!message) {
        message = m;
        at = Clock::now();
      }
    };
  }
  std::optional<std::string> wait(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (message) return message;
      }
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }
};

HeartbeatOptions options_for(const StoreServer& server, const std::string& secret, int rank, int world,
                             LostReport& report, std::chrono::milliseconds timeout = 1000ms) {
  HeartbeatOptions o;
  o.store_host = "127.0.0.1";
  o.store_port = server.port();
  o.secret = secret;
  o.rank = rank;
  o.world_size = world;
  o.host = "host" + std::to_string(rank);
  o.timeout = timeout;
  o.on_lost = report.callback();
  return o;
}

}  // namespace

TEST_CASE("heartbeat: rank 0 names a rank whose heartbeat stopped, within about the timeout", "[parallel][heartbeat]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  LostReport report0, report2;
  Heartbeat rank0(options_for(server, secret, 0, 3, report0));
  Heartbeat rank2(options_for(server, secret, 2, 3, report2));
  // Rank 1 beats once and then falls silent, as a process stopped with SIGSTOP does.
  StoreClient rank1("127.0.0.1", server.port(), secret, 5s);
  rank1.set("hb/1", "7 host1");
  const auto silent_since = Clock::now();
  const auto message = report0.wait(5s);
  REQUIRE(message);
  CHECK_THAT(*message, Contains("rank 1 on host host1 sent no heartbeat") && Contains("run.heartbeat_timeout is 1 s"));
  const double took = std::chrono::duration<double>(report0.at - silent_since).count();
  CHECK(took >= 0.9);
  CHECK(took < 2.5);
  // Rank 2 watches only rank 0, which is alive.
  CHECK_FALSE(report2.wait(500ms));
}

TEST_CASE("heartbeat: a rank that finished says so and is not reported", "[parallel][heartbeat]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  LostReport report0, report1;
  Heartbeat rank0(options_for(server, secret, 0, 2, report0, 500ms));
  {
    Heartbeat rank1(options_for(server, secret, 1, 2, report1, 500ms));
    std::this_thread::sleep_for(700ms);
  }  // rank 1 ends normally
  CHECK_FALSE(report0.wait(2s));
  CHECK_FALSE(report1.message);
}

TEST_CASE("heartbeat: a rank watches rank 0 too", "[parallel][heartbeat]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  LostReport report1;
  Heartbeat rank1(options_for(server, secret, 1, 2, report1));
  StoreClient rank0("127.0.0.1", server.port(), secret, 5s);
  rank0.set("hb/0", "1 master");
  const auto message = report1.wait(5s);
  REQUIRE(message);
  CHECK_THAT(*message, Contains("rank 1 of 2: rank 0 on host master sent no heartbeat"));
}

TEST_CASE("heartbeat: a rank that cannot reach the store any more says so", "[parallel][heartbeat]") {
  const std::string secret = make_job_secret();
  auto server = std::make_unique<StoreServer>("127.0.0.1", 0, secret);
  const int port = server->port();
  LostReport report1;
  HeartbeatOptions o = options_for(*server, secret, 1, 2, report1);
  Heartbeat rank1(o);
  std::this_thread::sleep_for(300ms);
  server.reset();  // the store's host is gone
  const auto message = report1.wait(5s);
  REQUIRE(message);
  CHECK_THAT(*message, Contains("rank 1 of 2 on host host1: cannot reach the rendezvous store at 127.0.0.1:" +
                                std::to_string(port)));
}
