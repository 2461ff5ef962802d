#include "parallel/heartbeat.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "parallel/store.h"

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

std::string beat_key(int rank) { return fmt::format("hb/{}", rank); }

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void print_and_exit(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  std::fflush(stderr);
  // The main thread may be blocked in a collective with the lost rank: end the process here.
  std::_Exit(kPeerLostExitCode);
}

}  // namespace

struct Heartbeat::State {
  HeartbeatOptions o;
  std::unique_ptr<StoreClient> client;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  struct Watched {
    std::string last;  // the counter and host as last read
    Clock::time_point changed;
    bool done = false;
  };

  void run() {
    const auto interval = std::max(o.timeout / 5, std::chrono::milliseconds(50));
    std::vector<int> watched_ranks;
    if (o.rank == 0)
      for (int r = 1; r < o.world_size; ++r) watched_ranks.push_back(r);
    else
      watched_ranks.push_back(0);
    std::map<int, Watched> watched;
    int64_t counter = 0;
    Clock::time_point last_ok = Clock::now();
    std::string store_error;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        if (wake.wait_for(lock, interval, [this] { return stopping; })) return;
      }
      try {
        client->set(beat_key(o.rank), fmt::format("{} {}", ++counter, o.host));
        for (int r : watched_ranks) {
          Watched& w = watched[r];
          if (w.done || !client->check(beat_key(r))) continue;  // not started yet, or finished
          const std::string value = client->get(beat_key(r));
          const auto seen = Clock::now();
          if (value == "done") {
            w.done = true;
            continue;
          }
          if (value != w.last || w.changed == Clock::time_point{}) {
            w.last = value;
            w.changed = seen;
          } else if (seen - w.changed > o.timeout) {
            const size_t space = value.find(' ');
            const std::string host = space == std::string::npos ? "?" : value.substr(space + 1);
            try {
              if (!client->check(kHeartbeatLostKey)) client->set(kHeartbeatLostKey, fmt::format("{} {}", r, host));
            } catch (const Error&) {
              // The store is going too: the message below still names the rank.
            }
            lost(fmt::format("rank {} of {}: rank {} on host {} sent no heartbeat for {:.1f} s (stopped, hung or "
                             "cut off from the network; run.heartbeat_timeout is {:.0f} s); stopping the job",
                             o.rank, o.world_size, r, host, seconds(seen - w.changed), seconds(o.timeout)));
            return;
          }
        }
        last_ok = Clock::now();
      } catch (const Error& e) {
        store_error = e.what();
        // Under torchrun or Slurm rank 0 serves the store: once it has finished, the store goes.
        if (o.rank != 0 && watched[0].done) return;
        const auto now = Clock::now();
        if (now - last_ok > o.timeout) {
          lost(fmt::format("rank {} of {} on host {}: cannot reach the rendezvous store at {}:{} for {:.1f} s "
                           "(this host may be cut off, or the store's host is gone; run.heartbeat_timeout is "
                           "{:.0f} s): {}",
                           o.rank, o.world_size, o.host, o.store_host, o.store_port, seconds(now - last_ok),
                           seconds(o.timeout), store_error));
          return;
        }
      }
    }
  }

  void lost(const std::string& message) {
    if (o.on_lost)
      o.on_lost(message);
    else
      print_and_exit(message);
  }
};

Heartbeat::Heartbeat(HeartbeatOptions options) : state_(std::make_unique<State>()) {
  state_->o = std::move(options);
  // Each request waits at most half the timeout: a cut-off link fails a read instead of
  // blocking, and the loss is reported within about 1.5 timeouts.
  state_->client = std::make_unique<StoreClient>(state_->o.store_host, state_->o.store_port, state_->o.secret,
                                                 std::max(state_->o.timeout / 2, std::chrono::milliseconds(100)));
  state_->client->set(beat_key(state_->o.rank), fmt::format("0 {}", state_->o.host));
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
  try {
    state_->client->set(beat_key(state_->o.rank), "done");
  } catch (const Error&) {
    // The store is gone already: nobody is left to watch.
  }
}

}  // namespace lmt
