// The rendezvous store: a small TCP key-value store through which the ranks of a job find each
// other (process-group setup, NCCL unique ids, barriers at start-up). One process serves it (the
// launcher, or rank 0 under other launchers); every rank connects as a client.
//
// Every connection must first present the job's secret (LMTRAIN_JOB_SECRET, random per job):
// a process that does not know it, for example a stale worker of an earlier job on the same
// port, is refused and told so.
//
// Wire format (little-endian): the client sends "LMTSTORE" u32 version, u32 secret length,
// secret; the server answers one status byte (0 = accepted, 1 = wrong secret). Then requests:
// u8 op, u32 key length, key, u64 value length, value; answers: u8 status, u64 length, payload.
//
// The server is reachable by anyone on the network, so a stranger's connection must cost the
// job nothing: each connection's thread and descriptor are released when it ends, the handshake
// must complete within a deadline, strangers hold a bounded number of handshakes at once, a
// started request must arrive whole within a deadline, and sizes are capped before anything is
// allocated. A connection that breaks a rule is closed; the job's own clients never do.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmt {

struct StoreLimits {
  std::chrono::milliseconds handshake_timeout{5000};  // hello + secret, from the connect
  std::chrono::milliseconds message_timeout{30000};   // the rest of a request once it started
  int max_unauthenticated = 64;                       // handshakes in progress at once
  uint64_t max_key_bytes = 4096;
  uint64_t max_value_bytes = uint64_t{64} << 20;      // 64 MiB
};

// The server's reading of the wire format, on bytes already received, so that it is tested
// (and fuzzed, fuzz/fuzz_store.cpp) without a socket. Each parse looks at the start of `bytes`:
// kIncomplete asks for more bytes, kMalformed ends the connection, kComplete sets `consumed` to
// the message's length. A length beyond the limits is malformed as soon as it is read, before
// its bytes arrive or anything is allocated.
namespace store_wire {
enum class Parsed { kIncomplete, kComplete, kMalformed };
// The client's hello: "LMTSTORE", version, secret length (at most 1 KiB), secret.
Parsed parse_hello(std::string_view bytes, size_t& consumed, std::string& secret);
struct Request {
  uint8_t op = 0;
  std::string key, value;
};
// One request: op, key length, key, value length, value (within limits' key and value caps).
Parsed parse_request(std::string_view bytes, size_t& consumed, Request& request, const StoreLimits& limits = {});
}  // namespace store_wire

class StoreServer {
 public:
  // Listens on host:port (port 0: any free port; see port()). Throws lmt::Error naming host and
  // port when the address is in use or cannot be bound.
  StoreServer(const std::string& host, int port, std::string secret, StoreLimits limits = {});
  ~StoreServer();  // stops accepting and closes every connection
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  int port() const;
  // Connections closed for a wrong secret, bad bytes, a deadline or the handshake limit.
  int64_t refused_connections() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class StoreClient {
 public:
  // Connects, retrying until `timeout` (the server may start after the client, or be closing
  // strangers' connections at its limit), then presents the secret. Throws lmt::Error naming
  // host and port on timeout or a refused secret.
  StoreClient(const std::string& host, int port, const std::string& secret,
              std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::string& value);
  // The value of `key`, waiting until some client sets it. Throws lmt::Error after the timeout
  // given at construction, naming the key.
  std::string get(const std::string& key);
  // Waits until every key exists (same timeout).
  void wait(const std::vector<std::string>& keys);
  // Atomically adds `delta` to the integer stored under key (missing: 0) and returns the sum.
  int64_t add(const std::string& key, int64_t delta);
  // Whether `key` exists now (no waiting).
  bool check(const std::string& key);

 private:
  std::string request(uint8_t op, const std::string& key, const std::string& value);
  int fd_ = -1;
  std::string where_;  // "host:port" for messages
  std::chrono::milliseconds timeout_;
};

// A random secret for a new job: 32 hex digits from /dev/urandom.
std::string make_job_secret();

}  // namespace lmt
