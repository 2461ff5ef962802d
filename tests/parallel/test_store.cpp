#include <catch2/catch.hpp>
#include <future>
#include <thread>

#include "parallel/store.h"
#include "tests/test_util.h"

using namespace lmt;
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

TEST_CASE("store: the server's parser takes messages in pieces and refuses oversized lengths", "[parallel][store]") {
  using lmt::store_wire::Parsed;
  const auto le = [](uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
    return out;
  };
  const std::string hello = "LMTSTORE" + le(1, 4) + le(3, 4) + "abc";
  size_t consumed = 0;
  std::string secret;
  for (size_t n = 0; n < hello.size(); ++n) CHECK(lmt::store_wire::parse_hello(hello.substr(0, n), consumed, secret) == Parsed::kIncomplete);
  REQUIRE(lmt::store_wire::parse_hello(hello + "rest", consumed, secret) == Parsed::kComplete);
  CHECK(consumed == hello.size());
  CHECK(secret == "abc");
  CHECK(lmt::store_wire::parse_hello("HTTP/1.1" + le(1, 4) + le(0, 4), consumed, secret) == Parsed::kMalformed);
  CHECK(lmt::store_wire::parse_hello("LMTSTORE" + le(1, 4) + le(uint64_t{1} << 31, 4), consumed, secret) == Parsed::kMalformed);

  const std::string set = std::string(1, '\x01') + le(1, 4) + "k" + le(2, 8) + "vv";
  lmt::store_wire::Request request;
  for (size_t n = 0; n < set.size(); ++n) CHECK(lmt::store_wire::parse_request(set.substr(0, n), consumed, request) == Parsed::kIncomplete);
  REQUIRE(lmt::store_wire::parse_request(set + set, consumed, request) == Parsed::kComplete);
  CHECK((consumed == set.size() && request.op == 1 && request.key == "k" && request.value == "vv"));
  // A 4 GiB value length is refused before anything is allocated for it.
  CHECK(lmt::store_wire::parse_request(std::string(1, '\x01') + le(1, 4) + "k" + le(uint64_t{4} << 30, 8), consumed,
                                       request) == Parsed::kMalformed);
}
