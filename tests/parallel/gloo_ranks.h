// In-process ranks for collective tests: each rank a thread with its own Gloo group over
// loopback, through one store.
#pragma once
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parallel/process_group.h"
#include "parallel/store.h"

namespace lmt::testing {

// Runs body(group) on `size` threads, each one rank of a Gloo group over loopback, and reports
// each rank's exception as a failure of the test.
inline void with_ranks(int size, const std::function<void(ProcessGroup&)>& body) {
  using namespace std::chrono_literals;
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
inline void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

}  // namespace lmt::testing
