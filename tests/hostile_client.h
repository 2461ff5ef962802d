// A stranger on the rendezvous store's port (parallel/store.h), for the tests that check it
// costs the job nothing: raw connections and the wire format's pieces, and attack_store(), which
// runs every kind of abuse in a loop until told to stop.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace lmt::testing {

// A raw TCP connection to 127.0.0.1:port; -1 when nothing listens (yet).
inline int try_raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A raw TCP connection to the store, as a stranger would open it.
inline int raw_connect(int port) {
  const int fd = try_raw_connect(port);
  REQUIRE(fd >= 0);
  return fd;
}

inline void send_bytes(int fd, const std::string& bytes) { (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

inline std::string le_bytes(uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

inline std::string store_hello(const std::string& secret) { return "LMTSTORE" + le_bytes(1, 4) + le_bytes(secret.size(), 4) + secret; }

// Whether the server closes `fd` within `within` (recv returns 0 or an error).
inline bool closed_by_server(int fd, std::chrono::milliseconds within) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(within.count())) <= 0) return false;
  char buffer[64];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) return n == 0 || errno != EAGAIN;
  }
}

// Until `stop`: random bytes, a 4 GiB secret length, half a handshake left hanging, wrong
// secrets, and bursts of 500 connections that send nothing, against 127.0.0.1:port. Returns how
// many connections it opened.
inline int64_t attack_store(int port, const std::atomic<bool>& stop) {
  std::mt19937 rng(1234);
  int64_t opened = 0;
  std::vector<int> hanging;
  while (!stop) {
    const int probe = try_raw_connect(port);
    if (probe < 0) {  // not listening yet
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    ::close(probe);
    for (int i = 0; i < 20 && !stop; ++i) {
      std::vector<int> fds;
      for (int kind = 0; kind < 4; ++kind) {
        const int fd = try_raw_connect(port);
        if (fd < 0) continue;
        ++opened;
        std::string bytes;
        if (kind == 0) {
          bytes.resize(1 + rng() % 300);
          for (char& c : bytes) c = static_cast<char>(rng());
        } else if (kind == 1) {
          bytes = "LMTSTORE" + le_bytes(1, 4) + le_bytes(0xffffffffu, 4);
        } else if (kind == 2) {
          bytes = "LMTSTO";
        } else {
          bytes = store_hello("wrong-" + std::to_string(rng()));
        }
        send_bytes(fd, bytes);
        (kind == 2 ? hanging : fds).push_back(fd);
      }
      for (int fd : fds) ::close(fd);
    }
    std::vector<int> burst;
    for (int i = 0; i < 500 && !stop; ++i)
      if (const int fd = try_raw_connect(port); fd >= 0) burst.push_back(fd);
    opened += static_cast<int64_t>(burst.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int fd : burst) ::close(fd);
    if (hanging.size() > 100) {
      for (int fd : hanging) ::close(fd);
      hanging.clear();
    }
  }
  for (int fd : hanging) ::close(fd);
  return opened;
}

}  // namespace lmt::testing
