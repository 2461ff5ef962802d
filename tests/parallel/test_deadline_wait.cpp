// The wait that bounds every NCCL collective and communicator set-up (cuda/process_group_nccl):
// driven here by fakes, since the machines that run CI have no GPU and no NCCL peer to kill.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "core/error.h"
#include "parallel/deadline_wait.h"

using namespace lmt;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

TEST_CASE("deadline wait: returns once the work is done, without aborting", "[parallel][deadline]") {
  int polls = 0, aborts = 0;
  wait_with_deadline([&](std::string*) { return ++polls < 4 ? Progress::kPending : Progress::kDone; }, 10s,
                     [&] { ++aborts; }, "nccl all_reduce");
  CHECK(polls == 4);
  CHECK(aborts == 0);
}

TEST_CASE("deadline wait: a peer that never answers costs the timeout, one abort and a PeerLostError",
          "[parallel][deadline]") {
  int polls = 0, aborts = 0;
  const auto start = std::chrono::steady_clock::now();
  try {
    wait_with_deadline([&](std::string*) { return ++polls, Progress::kPending; }, 300ms, [&] { ++aborts; },
                       "rank 1 of 2: nccl all_reduce");
    FAIL("no PeerLostError");
  } catch (const PeerLostError& e) {
    CHECK_THAT(e.what(), Contains("rank 1 of 2: nccl all_reduce did not finish in 0.3 s") &&
                             Contains("LMTRAIN_TIMEOUT_S"));
  }
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);  // it did not give up early
  CHECK(aborts == 1);
  CHECK(polls > 1);
}

TEST_CASE("deadline wait: a failure reported by the poll aborts at once and says why", "[parallel][deadline]") {
  int polls = 0, aborts = 0;
  try {
    wait_with_deadline(
        [&](std::string* why) {
          if (++polls < 3) return Progress::kPending;
          *why = "remote process exited or there was a network error";
          return Progress::kFailed;
        },
        10s, [&] { ++aborts; }, "rank 0 of 4: ncclCommInitRank");
    FAIL("no PeerLostError");
  } catch (const PeerLostError& e) {
    CHECK_THAT(e.what(), Contains("rank 0 of 4: ncclCommInitRank failed: remote process exited"));
  }
  CHECK(polls == 3);
  CHECK(aborts == 1);
}
