#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <thread>

#include "parallel/process_group.h"
#include "parallel/store.h"
#include "tests/error_message.h"

using namespace lmt;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace {

// Runs body(group) on `size` threads, each one rank of a Gloo group over loopback.
void with_ranks(int size, const std::function<void(ProcessGroup&)>& body) {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  std::vector<std::thread> threads;
  std::vector<std::string> failures(size);
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        StoreClient store("127.0.0.1", server.port(), secret, 20s);
        auto group = make_gloo_group(store, r, size, "pg/", "127.0.0.1", 20s);
        body(*group);
      } catch (const std::exception& e) {
        failures[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) {
    INFO("rank " << r);
    CHECK(failures[r].empty());
    if (!failures[r].empty()) WARN(failures[r]);
  }
}

}  // namespace

TEST_CASE("gloo group: all_reduce, reduce_scatter, all_gather, broadcast, barrier", "[parallel][gloo]") {
  for (int size : {2, 3}) {
    INFO("world size " << size);
    with_ranks(size, [size](ProcessGroup& g) {
      const int r = g.rank();
      REQUIRE(g.size() == size);
      CHECK(g.name() == "gloo");
      // Values that are not exactly representable sums, across a few thousand elements.
      const size_t n = 3001;
      std::vector<float> data(n), avg(n);
      for (size_t i = 0; i < n; ++i) data[i] = avg[i] = 0.1f * static_cast<float>(r + 1) + static_cast<float>(i);
      g.all_reduce(data.data(), n, ReduceOp::kSum);
      g.all_reduce(avg.data(), n, ReduceOp::kAvg);
      for (size_t i = 0; i < n; i += 97) {
        double expected = 0;
        for (int q = 0; q < size; ++q) expected += 0.1 * (q + 1) + static_cast<double>(i);
        REQUIRE(data[i] == Approx(expected).epsilon(1e-6));
        REQUIRE(avg[i] == Approx(expected / size).epsilon(1e-6));
      }
      // Every rank holds bit-identical sums.
      std::vector<float> gathered(n * size);
      g.all_gather(data.data(), gathered.data(), n);
      for (int q = 0; q < size; ++q)
        CHECK(std::equal(data.begin(), data.end(), gathered.begin() + static_cast<long>(q * n)));

      const size_t block = 5;
      std::vector<float> input(block * size), mine(block);
      for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(r * 100 + i);
      g.reduce_scatter(input.data(), mine.data(), block, ReduceOp::kSum);
      for (size_t i = 0; i < block; ++i) {
        float expected = 0;
        for (int q = 0; q < size; ++q) expected += static_cast<float>(q * 100 + r * block + i);
        CHECK(mine[i] == expected);
      }
      std::vector<float> b(4, static_cast<float>(r));
      g.broadcast(b.data(), b.size(), size - 1);
      CHECK(b == std::vector<float>(4, static_cast<float>(size - 1)));
      g.barrier();
    });
  }
}

TEST_CASE("single-process group: collectives are the identity", "[parallel][gloo]") {
  auto g = make_single_process_group();
  std::vector<float> x = {1, 2, 3}, y(3);
  g->all_reduce(x.data(), 3, ReduceOp::kAvg);
  g->reduce_scatter(x.data(), y.data(), 3, ReduceOp::kSum);
  CHECK(y == x);
  g->all_gather(x.data(), y.data(), 3);
  CHECK(y == x);
  CHECK(g->size() == 1);
}

TEST_CASE("gloo group: a rank that never arrives is a timeout, not a hang", "[parallel][gloo][errors]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  StoreClient store("127.0.0.1", server.port(), secret, 1500ms);
  const auto started = std::chrono::steady_clock::now();
  const std::string message =
      lmt::testing::error_message([&] { make_gloo_group(store, 0, 2, "pg/", "127.0.0.1", 1500ms); });
  CHECK_THAT(message, Contains("did not appear"));
  CHECK(std::chrono::steady_clock::now() - started < 20s);
}
