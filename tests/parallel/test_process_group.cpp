#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "parallel/process_group.h"
#include "parallel/store.h"
#include "tests/parallel/gloo_ranks.h"
#include "tests/test_util.h"

using namespace lmt;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;
using lmt::testing::expect;
using lmt::testing::with_ranks;

namespace {

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

TEST_CASE("gloo group: slices of a buffer all-reduced in place, and reduced onto their owners", "[parallel][gloo]") {
  for (int size : {2, 3}) {
    INFO("world size " << size);
    with_ranks(size, [size](ProcessGroup& g) {
      const int r = g.rank();
      const size_t n = 50;
      auto value = [](int rank, size_t i) { return static_cast<float>(rank * 1000 + i); };
      auto sum = [size, &value](size_t i) {
        float s = 0;
        for (int q = 0; q < size; ++q) s += value(q, i);
        return s;
      };
      std::vector<float> data(n);
      for (size_t i = 0; i < n; ++i) data[i] = value(r, i);
      // One slice (in place) and three (packed); floats outside every slice stay this rank's.
      g.all_reduce_slices(data.data(), {{2, 5}}, ReduceOp::kSum);
      g.all_reduce_slices(data.data(), {{40, 3}, {10, 4}, {20, 1}}, ReduceOp::kSum);
      for (size_t i = 0; i < n; ++i) {
        const bool inside = (i >= 2 && i < 7) || (i >= 40 && i < 43) || (i >= 10 && i < 14) || i == 20;
        expect(data[i] == (inside ? sum(i) : value(r, i)), "all_reduce_slices at " + std::to_string(i));
      }
      // Rank q owns slices {q*10, 3} and {30 + q, 1}: each rank's own hold the sums.
      for (size_t i = 0; i < n; ++i) data[i] = value(r, i);
      std::vector<std::vector<BufferSlice>> by_rank(static_cast<size_t>(size));
      for (int q = 0; q < size; ++q) by_rank[static_cast<size_t>(q)] = {{static_cast<size_t>(q) * 10, 3}, {30 + static_cast<size_t>(q), 1}};
      g.reduce_slices_to_owners(data.data(), by_rank, ReduceOp::kAvg);
      for (const BufferSlice& s : by_rank[static_cast<size_t>(r)])
        for (size_t i = s.offset; i < s.offset + s.count; ++i)
          expect(data[i] == sum(i) * (1.0f / static_cast<float>(size)), "reduce_slices_to_owners at " + std::to_string(i));
      expect(!g.asynchronous(), "gloo is not asynchronous");
    });
  }
}

TEST_CASE("gloo group: an address this host does not have is an lmt::Error naming it", "[parallel][gloo][errors]") {
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  StoreClient store("127.0.0.1", server.port(), secret, 1500ms);
  // 192.0.2.0/24 is TEST-NET-1: never a local address.
  const std::string message = lmt::testing::error_message([&] { make_gloo_group(store, 0, 2, "pg/", "192.0.2.7", 1500ms); });
  CHECK_THAT(message, Contains("192.0.2.7"));
  CHECK_THAT(message, Contains("LMTRAIN_HOST"));
}
