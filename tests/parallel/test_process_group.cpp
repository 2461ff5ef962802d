#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "parallel/process_group.h"
#include "parallel/store.h"
#include "tests/test_util.h"

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
    INFO("rank " << r << ": " << failures[r]);
    CHECK(failures[r].empty());
  }
}

// Catch2's assertions are not thread-safe: rank threads check with this instead, and with_ranks
// reports what failed from the test's own thread.
void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

bool close_to(double value, double expected, double rel) { return std::abs(value - expected) <= rel * std::abs(expected); }

}  // namespace

TEST_CASE("gloo group: all_reduce, reduce_scatter, all_gather, broadcast, barrier", "[parallel][gloo]") {
  for (int size : {2, 3}) {
    INFO("world size " << size);
    with_ranks(size, [size](ProcessGroup& g) {
      const int r = g.rank();
      expect(g.size() == size, "size()");
      expect(g.name() == "gloo", "name()");
      // Values that are not exactly representable sums, across a few thousand elements.
      const size_t n = 3001;
      std::vector<float> data(n), avg(n);
      for (size_t i = 0; i < n; ++i) data[i] = avg[i] = 0.1f * static_cast<float>(r + 1) + static_cast<float>(i);
      g.all_reduce(data.data(), n, ReduceOp::kSum);
      g.all_reduce(avg.data(), n, ReduceOp::kAvg);
      for (size_t i = 0; i < n; i += 97) {
        double expected = 0;
        for (int q = 0; q < size; ++q) expected += 0.1 * (q + 1) + static_cast<double>(i);
        expect(close_to(data[i], expected, 1e-6), "all_reduce sum at " + std::to_string(i));
        expect(close_to(avg[i], expected / size, 1e-6), "all_reduce avg at " + std::to_string(i));
      }
      // Every rank holds bit-identical sums.
      std::vector<float> gathered(n * size);
      g.all_gather(data.data(), gathered.data(), n);
      for (int q = 0; q < size; ++q)
        expect(std::equal(data.begin(), data.end(), gathered.begin() + static_cast<long>(q * n)),
               "all_gather block " + std::to_string(q));

      const size_t block = 5;
      std::vector<float> input(block * size), mine(block);
      for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(r * 100 + i);
      g.reduce_scatter(input.data(), mine.data(), block, ReduceOp::kSum);
      for (size_t i = 0; i < block; ++i) {
        float expected = 0;
        for (int q = 0; q < size; ++q) expected += static_cast<float>(q * 100 + r * block + i);
        expect(mine[i] == expected, "reduce_scatter at " + std::to_string(i));
      }
      std::vector<float> b(4, static_cast<float>(r));
      g.broadcast(b.data(), b.size(), size - 1);
      expect(b == std::vector<float>(4, static_cast<float>(size - 1)), "broadcast");
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
