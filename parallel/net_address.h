// Which of this machine's addresses another host can dial: the one the kernel would send from
// on the way to that host (its route), instead of a name that may resolve to loopback
// (Debian maps the host name to 127.0.1.1) or to an interface the other side cannot reach.
#pragma once
#include <optional>
#include <string>

namespace lmt {

// The local address (numeric, IPv4 or IPv6) of the route to `host` (a name or an address),
// found with a connected UDP socket, which sends nothing. nullopt when the name does not
// resolve or there is no route. A host on this machine gives this machine's address for it
// (127.0.0.1 for a loopback name).
std::optional<std::string> local_address_towards(const std::string& host);

}  // namespace lmt
