// Liveness of the ranks of a job, through the rendezvous store: a process that is stopped
// (SIGSTOP, a debugger), hung in the kernel, or on a host cut off from the network stops
// answering long before a collective's timeout (LMTRAIN_TIMEOUT_S, 300 s) would notice.
//
// Each rank runs a thread with its own store connection. Every timeout/5 it writes a counter
// under hb/<rank>, with its host name. Rank 0 watches every other rank, and every other rank
// watches rank 0: a watched counter that has not changed for `timeout` is a lost rank. A rank
// whose own writes have failed for `timeout` has lost the store (its host is cut off, or the
// store's host is gone). Either ends the process through on_lost (by default: the message on
// stderr, then exit code 3, kPeerLostExitCode), so that the launcher stops the job and names
// what happened. A watcher that finds a lost rank first writes it under kHeartbeatLostKey
// ("RANK HOST"), so that the launcher, which serves the store, blames that rank and not the
// ranks it had to kill. A rank that ends normally writes "done", and its silence afterwards is
// no loss.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace lmt {

inline constexpr const char* kHeartbeatLostKey = "hb/lost";

struct HeartbeatOptions {
  std::string store_host;  // the job's rendezvous store, as the worker dials it
  int store_port = 0;
  std::string secret;
  int rank = 0;
  int world_size = 1;
  std::string host;  // this rank's host, for messages ("node3 (10.0.0.3)")
  std::chrono::milliseconds timeout{60'000};
  // Called once, from the heartbeat thread, with what was lost. Default: print and exit(3).
  std::function<void(const std::string& message)> on_lost;
};

class Heartbeat {
 public:
  // Connects (throws lmt::Error when the store cannot be reached) and starts the thread.
  explicit Heartbeat(HeartbeatOptions options);
  ~Heartbeat();  // writes "done" (best effort) and stops the thread
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace lmt
