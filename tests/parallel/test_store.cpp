#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "parallel/store.h"
#include "tests/hostile_client.h"
#include "tests/test_util.h"

using namespace lmt;
using namespace lmt::testing;
using Catch::Matchers::Contains;
using lmt::testing::error_message;
using namespace std::chrono_literals;

TEST_CASE("store: set, get, check, add and wait across clients", "[parallel][store]") {
  const std::string secret = make_job_secret();
  REQUIRE(secret.size() == 32);
  CHECK(make_job_secret() != secret);
  StoreServer server("127.0.0.1", 0, secret);
  REQUIRE(server.port() > 0);
  StoreClient a("127.0.0.1", server.port(), secret, 5s);
  StoreClient b("127.0.0.1", server.port(), secret, 5s);
  a.set("greeting", std::string("hello\0world", 11));
  CHECK(b.get("greeting") == std::string("hello\0world", 11));
  CHECK(b.check("greeting"));
  CHECK_FALSE(b.check("missing"));
  CHECK(a.add("counter", 2) == 2);
  CHECK(b.add("counter", 5) == 7);
  CHECK(a.add("counter", -7) == 0);
  // A get blocks until another client sets the key.
  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(100ms);
    StoreClient c("127.0.0.1", server.port(), secret, 5s);
    c.set("late", std::string(3 << 20, 'x'));  // large values too
  });
  CHECK(a.get("late").size() == (3u << 20));
  later.get();
  b.wait({"greeting", "late"});
}

TEST_CASE("store: many clients count to the same total", "[parallel][store]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 8; ++r)
    ranks.emplace_back([&] {
      StoreClient c("127.0.0.1", server.port(), secret, 5s);
      for (int i = 0; i < 50; ++i) c.add("hits", 1);
    });
  for (auto& t : ranks) t.join();
  StoreClient check("127.0.0.1", server.port(), secret, 5s);
  CHECK(check.add("hits", 0) == 400);
}

TEST_CASE("store: a wrong secret is refused, and every failure names host and port", "[parallel][store][errors]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  const std::string where = "127.0.0.1:" + std::to_string(server.port());
  CHECK_THAT(error_message([&] { StoreClient("127.0.0.1", server.port(), "not-the-secret", 2s); }),
             Contains(where) && Contains("wrong job secret"));
  CHECK_THAT(error_message([&] { StoreClient("127.0.0.1", server.port(), "", 2s); }), Contains("wrong job secret"));
  // The refused clients did not disturb the store.
  StoreClient ok("127.0.0.1", server.port(), secret, 2s);
  ok.set("k", "v");
  CHECK(ok.get("k") == "v");

  SECTION("a key that never appears times out with its name") {
    StoreClient impatient("127.0.0.1", server.port(), secret, 300ms);
    CHECK_THAT(error_message([&] { impatient.get("rank3/ready"); }),
               Contains(where) && Contains("'rank3/ready'") && Contains("did not appear"));
  }
  SECTION("the address is in use") {
    CHECK_THAT(error_message([&] { StoreServer("127.0.0.1", server.port(), secret); }),
               Contains(where) && Contains("--master-port"));
  }
  SECTION("nobody listens") {
    const auto started = std::chrono::steady_clock::now();
    const std::string message = error_message([&] { StoreClient("127.0.0.1", 1, secret, 300ms); });
    CHECK_THAT(message, Contains("127.0.0.1:1") && Contains("cannot reach the rendezvous store"));
    CHECK(std::chrono::steady_clock::now() - started < 5s);
  }
  SECTION("the server goes away") {
    // Destroying a server closes its connections: a pending get fails instead of hanging.
    auto gone = std::make_unique<StoreServer>("127.0.0.1", 0, secret);
    StoreClient orphan("127.0.0.1", gone->port(), secret, 5s);
    auto pending = std::async(std::launch::async, [&] { return error_message([&] { orphan.get("never"); }); });
    std::this_thread::sleep_for(100ms);
    gone.reset();
    CHECK_THAT(pending.get(), Contains("lost the connection"));
  }
}

namespace {

size_t open_descriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// The store still works for the job: a fresh client sets and gets a key.
void job_still_served(int port, const std::string& secret) {
  StoreClient client("127.0.0.1", port, secret, 10s);
  client.set("still", "here");
  CHECK(client.get("still") == "here");
}

}  // namespace

TEST_CASE("store: strangers cost the job nothing", "[parallel][store][hostile]") {
  const std::string secret = make_job_secret();
  StoreLimits limits;
  limits.handshake_timeout = 300ms;
  limits.message_timeout = 300ms;
  StoreServer server("127.0.0.1", 0, secret, limits);
  const int port = server.port();
  StoreClient job("127.0.0.1", port, secret, 10s);  // a rank connected before the attack
  job.set("before", "1");

  SECTION("connections that come and go release their descriptors") {
    const size_t before = open_descriptors();
    for (int i = 0; i < 700; ++i) ::close(raw_connect(port));
    for (int i = 0; i < 50 && open_descriptors() > before + 2; ++i) std::this_thread::sleep_for(20ms);
    CHECK(open_descriptors() <= before + 2);
    job_still_served(port, secret);
  }
  SECTION("running out of descriptors pauses accepting; it does not end it") {
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit low = saved;
    low.rlim_cur = open_descriptors() + 16;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> held;  // client and accepted ends share this process's descriptors
    for (int i = 0; i < 64; ++i)
      if (const int fd = try_raw_connect(port); fd >= 0) held.push_back(fd);
    std::this_thread::sleep_for(300ms);  // the server meets EMFILE accepting the rest
    for (int fd : held) ::close(fd);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    job_still_served(port, secret);
  }
  SECTION("random bytes, a 4 GiB length and bad magic are closed at once") {
    std::mt19937 rng(7);
    for (int i = 0; i < 100; ++i) {
      const int fd = raw_connect(port);
      std::string noise(1 + rng() % 200, '\0');
      for (char& c : noise) c = static_cast<char>(rng());
      send_bytes(fd, noise);
      ::close(fd);
    }
    const int huge = raw_connect(port);
    send_bytes(huge, "LMTSTORE" + le_bytes(1, 4) + le_bytes(0xffffffffu, 4));
    CHECK(closed_by_server(huge, 2s));
    ::close(huge);
    job_still_served(port, secret);
  }
  SECTION("half a handshake, or half a request, then silence, is closed after the deadline") {
    const int half = raw_connect(port);
    send_bytes(half, "LMTST");
    CHECK(closed_by_server(half, 3s));
    ::close(half);
    const int member = raw_connect(port);  // knows the secret, then stalls mid-request
    send_bytes(member, store_hello(secret));
    char status = 1;
    REQUIRE(::recv(member, &status, 1, 0) == 1);
    CHECK(status == 0);
    send_bytes(member, std::string(1, '\1') + le_bytes(3, 4) + "ke");
    CHECK(closed_by_server(member, 3s));
    ::close(member);
    // A request larger than the caps is closed before anything is allocated.
    const int greedy = raw_connect(port);
    send_bytes(greedy, store_hello(secret));
    REQUIRE(::recv(greedy, &status, 1, 0) == 1);
    send_bytes(greedy, std::string(1, '\1') + le_bytes(1, 4) + "k" + le_bytes(uint64_t{4} << 30, 8));
    CHECK(closed_by_server(greedy, 2s));
    ::close(greedy);
    job_still_served(port, secret);
  }
  SECTION("a wrong secret 1000 times") {
    for (int i = 0; i < 1000; ++i) {
      const int fd = raw_connect(port);
      send_bytes(fd, store_hello("guess" + std::to_string(i)));
      char status = 0;
      CHECK(::recv(fd, &status, 1, 0) == 1);
      CHECK(status == 1);
      ::close(fd);
    }
    // The server counts a refusal after answering it: give the last one a moment.
    for (int i = 0; i < 100 && server.refused_connections() < 1000; ++i) std::this_thread::sleep_for(10ms);
    CHECK(server.refused_connections() >= 1000);
    job_still_served(port, secret);
  }
  SECTION("500 simultaneous connects that send nothing") {
    std::vector<int> idle;
    for (int i = 0; i < 500; ++i) idle.push_back(raw_connect(port));
    // The job's own clients get through: the strangers beyond the limit are closed at once and
    // the rest after the handshake deadline.
    job_still_served(port, secret);
    for (int fd : idle) ::close(fd);
  }
  // The rank connected before the attack is untouched.
  CHECK(job.get("before") == "1");
  job.set("after", "2");
  CHECK(job.get("after") == "2");
}

TEST_CASE("store: the server's parser takes messages in pieces and refuses oversized lengths", "[parallel][store]") {
  using lmt::store_wire::Parsed;
  const std::string hello = "LMTSTORE" + le_bytes(1, 4) + le_bytes(3, 4) + "abc";
  size_t consumed = 0;
  std::string secret;
  for (size_t n = 0; n < hello.size(); ++n) CHECK(lmt::store_wire::parse_hello(hello.substr(0, n), consumed, secret) == Parsed::kIncomplete);
  REQUIRE(lmt::store_wire::parse_hello(hello + "rest", consumed, secret) == Parsed::kComplete);
  CHECK(consumed == hello.size());
  CHECK(secret == "abc");
  CHECK(lmt::store_wire::parse_hello("HTTP/1.1" + le_bytes(1, 4) + le_bytes(0, 4), consumed, secret) == Parsed::kMalformed);
  CHECK(lmt::store_wire::parse_hello("LMTSTORE" + le_bytes(1, 4) + le_bytes(uint64_t{1} << 31, 4), consumed, secret) == Parsed::kMalformed);

  const std::string set = std::string(1, '\x01') + le_bytes(1, 4) + "k" + le_bytes(2, 8) + "vv";
  lmt::store_wire::Request request;
  for (size_t n = 0; n < set.size(); ++n) CHECK(lmt::store_wire::parse_request(set.substr(0, n), consumed, request) == Parsed::kIncomplete);
  REQUIRE(lmt::store_wire::parse_request(set + set, consumed, request) == Parsed::kComplete);
  CHECK((consumed == set.size() && request.op == 1 && request.key == "k" && request.value == "vv"));
  // A 4 GiB value length is refused before anything is allocated for it.
  CHECK(lmt::store_wire::parse_request(std::string(1, '\x01') + le_bytes(1, 4) + "k" + le_bytes(uint64_t{4} << 30, 8), consumed,
                                       request) == Parsed::kMalformed);
}
