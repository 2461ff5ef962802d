// local_address_towards: the address of this machine that a host on the route sees.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>

#include "parallel/net_address.h"

TEST_CASE("local_address_towards: loopback for loopback, an interface's own address for itself, none for no name",
          "[parallel][net_address]") {
  CHECK(lmt::local_address_towards("127.0.0.1") == "127.0.0.1");
  CHECK(lmt::local_address_towards("127.0.0.5") == "127.0.0.1");
  CHECK_FALSE(lmt::local_address_towards("no-such-host.invalid").has_value());
  CHECK_FALSE(lmt::local_address_towards("").has_value());
  // Every IPv4 address of a non-loopback interface that is up: the route to it leaves from it.
  ifaddrs* all = nullptr;
  REQUIRE(::getifaddrs(&all) == 0);
  int checked = 0;
  for (ifaddrs* a = all; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof(text));
    if (std::string(text).rfind("127.", 0) == 0) continue;
    INFO(a->ifa_name << " " << text);
    CHECK(lmt::local_address_towards(text) == std::string(text));
    ++checked;
  }
  ::freeifaddrs(all);
  if (checked == 0) WARN("no non-loopback IPv4 interface here: only the loopback cases ran");
}
