#include "parallel/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMagic[8] = {'L', 'M', 'T', 'S', 'T', 'O', 'R', 'E'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxSecretBytes = 1024;
enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCheck = 4 };
enum Status : uint8_t { kOk = 0, kRefused = 1, kBadRequest = 2 };

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly n bytes. deadline == nullptr: wait as long as it takes (server side).
// Returns false on EOF, error or timeout (timed_out says which).
bool read_all(int fd, void* buffer, size_t n, const Clock::time_point* deadline, bool* timed_out = nullptr) {
  auto* out = static_cast<char*>(buffer);
  size_t done = 0;
  while (done < n) {
    if (deadline != nullptr) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      pollfd p{fd, POLLIN, 0};
      const int ready = left > 0 ? ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30))) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        if (timed_out) *timed_out = true;
        return false;
      }
    }
    const ssize_t got = ::recv(fd, out + done, n - done, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<size_t>(got);
  }
  return true;
}

bool secrets_equal(const std::string& a, const std::string& b) {
  // Constant time in the content, so timing does not reveal a prefix of the secret.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string describe_errno(int err) { return std::strerror(err); }

}  // namespace

// ---- wire format, server side ------------------------------------------------------------------

namespace store_wire {

Parsed parse_hello(std::string_view bytes, size_t& consumed, std::string& secret) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 16) return Parsed::kIncomplete;
  if (std::memcmp(p, kMagic, 8) != 0 || get_le(p + 8, 4) != kVersion) return Parsed::kMalformed;
  const uint64_t secret_bytes = get_le(p + 12, 4);
  if (secret_bytes > kMaxSecretBytes) return Parsed::kMalformed;
  if (bytes.size() < 16 + secret_bytes) return Parsed::kIncomplete;
  secret.assign(bytes.substr(16, secret_bytes));
  consumed = 16 + secret_bytes;
  return Parsed::kComplete;
}

Parsed parse_request(std::string_view bytes, size_t& consumed, Request& request, const StoreLimits& limits) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 5) return Parsed::kIncomplete;
  const uint64_t key_bytes = get_le(p + 1, 4);
  if (key_bytes > limits.max_key_bytes) return Parsed::kMalformed;
  if (bytes.size() < 5 + key_bytes + 8) return Parsed::kIncomplete;
  const uint64_t value_bytes = get_le(p + 5 + key_bytes, 8);
  if (value_bytes > limits.max_value_bytes) return Parsed::kMalformed;
  if (bytes.size() < 13 + key_bytes + value_bytes) return Parsed::kIncomplete;
  request.op = p[0];
  request.key.assign(bytes.substr(5, key_bytes));
  request.value.assign(bytes.substr(13 + key_bytes, value_bytes));
  consumed = 13 + key_bytes + value_bytes;
  return Parsed::kComplete;
}

}  // namespace store_wire

// ---- server --------------------------------------------------------------------------------------

struct StoreServer::State {
  std::string secret;
  StoreLimits limits;
  int listen_fd = -1;
  int port = 0;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, std::string> data;
  std::atomic<bool> stopping{false};
  // One thread per connection; finished ones are joined and closed by the acceptor, so a
  // stranger's connections cost neither file descriptors nor threads once they end.
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
    std::atomic<bool> authenticated{false};
  };
  std::list<Connection> connections;  // guarded by mutex
  std::thread acceptor;
  std::atomic<int64_t> refused{0};    // connections closed for a limit, a deadline or bad bytes

  void accept_loop();
  void reap_finished();  // caller holds mutex
  int unauthenticated() const;  // caller holds mutex
  void serve(Connection& c);
  bool handshake(int fd, std::string& received);
  bool handle(int fd, uint8_t op, const std::string& key, const std::string& value);
};

bool StoreServer::State::handle(int fd, uint8_t op, const std::string& key, const std::string& value) {
  std::string payload;
  uint8_t status = kOk;
  {
    std::unique_lock<std::mutex> lock(mutex);
    switch (op) {
      case kSet:
        data[key] = value;
        changed.notify_all();
        break;
      case kGet:
        changed.wait(lock, [&] { return stopping.load() || data.count(key) > 0; });
        if (stopping) return false;
        payload = data[key];
        break;
      case kAdd: {
        int64_t delta = 0, current = 0;
        if (value.size() != 8) {
          status = kBadRequest;
          break;
        }
        delta = static_cast<int64_t>(get_le(reinterpret_cast<const unsigned char*>(value.data()), 8));
        auto it = data.find(key);
        if (it != data.end() && it->second.size() == 8)
          current = static_cast<int64_t>(get_le(reinterpret_cast<const unsigned char*>(it->second.data()), 8));
        std::string sum;
        put_u64(sum, static_cast<uint64_t>(current + delta));
        data[key] = sum;
        payload = sum;
        changed.notify_all();
        break;
      }
      case kCheck:
        payload.assign(1, data.count(key) > 0 ? '1' : '0');
        break;
      default:
        status = kBadRequest;
    }
  }
  std::string answer(1, static_cast<char>(status));
  put_u64(answer, payload.size());
  answer += payload;
  return write_all(fd, answer);
}

// Appends what the client has sent to `received`, waiting at most until `deadline` (nullptr:
// as long as it takes); false on EOF, an error or the deadline.
static bool receive_some(int fd, std::string& received, const Clock::time_point* deadline) {
  char chunk[64 * 1024];
  for (;;) {
    if (deadline != nullptr) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      pollfd p{fd, POLLIN, 0};
      const int ready = left > 0 ? ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30))) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
    }
    const ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    received.append(chunk, static_cast<size_t>(got));
    return true;
  }
}

// The hello and the secret, within the handshake deadline; what follows them stays in `received`.
bool StoreServer::State::handshake(int fd, std::string& received) {
  const auto deadline = Clock::now() + limits.handshake_timeout;
  size_t consumed = 0;
  std::string presented;
  for (;;) {
    const store_wire::Parsed parsed = store_wire::parse_hello(received, consumed, presented);
    if (parsed == store_wire::Parsed::kMalformed) return false;
    if (parsed == store_wire::Parsed::kComplete) break;
    if (!receive_some(fd, received, &deadline)) return false;
  }
  received.erase(0, consumed);
  const bool accepted = secrets_equal(presented, secret);
  return write_all(fd, std::string(1, static_cast<char>(accepted ? kOk : kRefused))) && accepted;
}

void StoreServer::State::serve(Connection& c) {
  const int fd = c.fd;
  std::string received;
  if (!handshake(fd, received)) {
    refused++;
    return;
  }
  c.authenticated = true;
  // Between requests a client may wait as long as it likes (ranks idle while they train); once
  // a request has started, the rest of it must arrive within the message deadline.
  Clock::time_point deadline;
  bool started = false;
  while (!stopping) {
    store_wire::Request request;
    size_t consumed = 0;
    const store_wire::Parsed parsed = store_wire::parse_request(received, consumed, request, limits);
    if (parsed == store_wire::Parsed::kMalformed) return;
    if (parsed == store_wire::Parsed::kIncomplete) {
      if (!received.empty() && !started) {
        deadline = Clock::now() + limits.message_timeout;
        started = true;
      }
      if (!receive_some(fd, received, started ? &deadline : nullptr)) return;
      continue;
    }
    received.erase(0, consumed);
    started = false;
    if (!handle(fd, request.op, request.key, request.value)) return;
  }
}

void StoreServer::State::reap_finished() {
  for (auto it = connections.begin(); it != connections.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    ::close(it->fd);
    it = connections.erase(it);
  }
}

int StoreServer::State::unauthenticated() const {
  int count = 0;
  for (const auto& c : connections) count += !c.done && !c.authenticated;
  return count;
}

void StoreServer::State::accept_loop() {
  while (!stopping) {
    // Wake up now and then to reap finished connections even when nobody connects.
    pollfd p{listen_fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, 200);
    {
      std::lock_guard<std::mutex> lock(mutex);
      reap_finished();
    }
    if (ready <= 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping || errno == EBADF || errno == EINVAL) return;  // the listening socket was shut down
      // EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, EINTR: transient; keep serving.
      if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping) {
      ::close(fd);
      return;
    }
    // Strangers may hold at most max_unauthenticated handshakes at once; the rest are closed at
    // once (a client of this job retries until its timeout).
    if (unauthenticated() >= limits.max_unauthenticated) {
      ::close(fd);
      refused++;
      continue;
    }
    Connection& c = connections.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c] {
      serve(c);
      ::shutdown(c.fd, SHUT_RDWR);
      c.done = true;
    });
  }
}

StoreServer::StoreServer(const std::string& host, int port, std::string secret, StoreLimits limits)
    : state_(std::make_unique<State>()) {
  state_->secret = std::move(secret);
  state_->limits = limits;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &found); rc != 0)
    throw Error(fmt::format("rendezvous store: cannot resolve '{}': {}", host, ::gai_strerror(rc)));
  int err = 0;
  for (addrinfo* a = found; a != nullptr && state_->listen_fd < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      state_->listen_fd = fd;
    } else {
      err = errno;
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (state_->listen_fd < 0)
    throw Error(fmt::format("rendezvous store: cannot listen on {}:{}: {}{}", host, port, describe_errno(err),
                            err == EADDRINUSE ? "; another job (or a leftover process) uses this port: pick "
                                                "another with --master-port"
                                              : ""));
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  ::getsockname(state_->listen_fd, reinterpret_cast<sockaddr*>(&bound), &length);
  state_->port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  State* s = state_.get();
  s->acceptor = std::thread([s] { s->accept_loop(); });
}

int StoreServer::port() const { return state_->port; }

int64_t StoreServer::refused_connections() const { return state_->refused; }

StoreServer::~StoreServer() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
    for (auto& c : state_->connections) ::shutdown(c.fd, SHUT_RDWR);
    state_->changed.notify_all();
  }
  ::shutdown(state_->listen_fd, SHUT_RDWR);
  if (state_->acceptor.joinable()) state_->acceptor.join();
  for (auto& c : state_->connections) {
    c.thread.join();
    ::close(c.fd);
  }
  ::close(state_->listen_fd);
}

// ---- client --------------------------------------------------------------------------------------

namespace {

// One connection attempt to host:port; returns the socket or -1 with errno set.
int try_connect(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      const int err = errno;
      ::close(fd);
      fd = -1;
      errno = err;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

}  // namespace

StoreClient::StoreClient(const std::string& host, int port, const std::string& secret,
                         std::chrono::milliseconds timeout)
    : where_(fmt::format("{}:{}", host, port)), timeout_(timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string hello(kMagic, sizeof(kMagic));
  put_u32(hello, kVersion);
  put_u32(hello, static_cast<uint32_t>(secret.size()));
  hello += secret;
  int last_error = 0;
  bool closed_in_handshake = false;
  // A store that is slow to appear (rank 0 still starting, or never started) is said once, so a
  // worker does not sit silent for the whole timeout.
  const auto started = Clock::now();
  const auto notice_after = std::min<std::chrono::milliseconds>(std::chrono::seconds(10), timeout / 4);
  bool noticed = false;
  while (true) {
    if (!noticed && Clock::now() - started >= notice_after) {
      noticed = true;
      std::fprintf(stderr,
                   "lmtrain: waiting for the rendezvous store at %s (rank 0 or the launcher starts it); giving up "
                   "after %.0f s\n",
                   where_.c_str(), timeout.count() / 1000.0);
      std::fflush(stderr);
    }
    fd_ = try_connect(host, port);
    if (fd_ >= 0) {
      const int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      unsigned char status = 255;
      bool timed_out = false;
      if (write_all(fd_, hello) && read_all(fd_, &status, 1, &deadline, &timed_out)) {
        if (status == kOk) return;
        ::close(fd_);
        fd_ = -1;
        throw Error(fmt::format("rendezvous store at {} refused this process: wrong job secret "
                                "(LMTRAIN_JOB_SECRET). Another job is using this address; pick another --master-port",
                                where_));
      }
      ::close(fd_);
      fd_ = -1;
      if (timed_out)
        throw Error(fmt::format("rendezvous store at {} did not answer during the handshake; is that port another "
                                "service?", where_));
      // Closed before answering: a server at its limit of strangers' handshakes does that; retry.
      closed_in_handshake = true;
    } else {
      last_error = errno;
    }
    if (Clock::now() >= deadline) {
      if (closed_in_handshake)
        throw Error(fmt::format("rendezvous store at {} closed the connection during the handshake until the "
                                "timeout; is that port another service?", where_));
      throw Error(fmt::format("cannot reach the rendezvous store at {} within {} s ({}); check MASTER_ADDR and "
                              "MASTER_PORT, and that rank 0 or the launcher is running",
                              where_, timeout.count() / 1000.0, describe_errno(last_error)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::string StoreClient::request(uint8_t op, const std::string& key, const std::string& value) {
  const StoreLimits limits;
  if (key.size() > limits.max_key_bytes || value.size() > limits.max_value_bytes)
    throw Error(fmt::format("rendezvous store: key '{}' ({} bytes) with a {}-byte value exceeds the store's limits "
                            "({} and {} bytes)",
                            key.substr(0, 64), key.size(), value.size(), limits.max_key_bytes, limits.max_value_bytes));
  std::string message(1, static_cast<char>(op));
  put_u32(message, static_cast<uint32_t>(key.size()));
  message += key;
  put_u64(message, value.size());
  message += value;
  if (!write_all(fd_, message))
    throw PeerLostError(fmt::format("lost the connection to the rendezvous store at {} (did rank 0 or the launcher exit?)", where_));
  const auto deadline = Clock::now() + timeout_;
  unsigned char header[9];
  bool timed_out = false;
  if (!read_all(fd_, header, sizeof(header), &deadline, &timed_out)) {
    if (timed_out)
      throw Error(fmt::format("rendezvous store at {}: key '{}' did not appear within {} s (a rank did not start "
                              "or failed; see its log)", where_, key, timeout_.count() / 1000.0));
    throw PeerLostError(fmt::format("lost the connection to the rendezvous store at {} (did rank 0 or the launcher exit?)", where_));
  }
  if (header[0] != kOk) throw Error(fmt::format("rendezvous store at {} rejected a request for '{}'", where_, key));
  std::string payload(get_le(header + 1, 8), '\0');
  if (!read_all(fd_, payload.data(), payload.size(), &deadline))
    throw PeerLostError(fmt::format("lost the connection to the rendezvous store at {}", where_));
  return payload;
}

void StoreClient::set(const std::string& key, const std::string& value) { request(kSet, key, value); }
std::string StoreClient::get(const std::string& key) { return request(kGet, key, ""); }
void StoreClient::wait(const std::vector<std::string>& keys) {
  for (const auto& key : keys) request(kGet, key, "");
}
bool StoreClient::check(const std::string& key) { return request(kCheck, key, "") == "1"; }
int64_t StoreClient::add(const std::string& key, int64_t delta) {
  std::string value;
  put_u64(value, static_cast<uint64_t>(delta));
  const std::string sum = request(kAdd, key, value);
  return static_cast<int64_t>(get_le(reinterpret_cast<const unsigned char*>(sum.data()), 8));
}

std::string make_job_secret() {
  unsigned char bytes[16];
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::read(fd, bytes, sizeof(bytes)) != static_cast<ssize_t>(sizeof(bytes))) {
    if (fd >= 0) ::close(fd);
    throw Error("cannot read /dev/urandom for the job secret");
  }
  ::close(fd);
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

}  // namespace lmt
