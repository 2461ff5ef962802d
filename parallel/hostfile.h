// DeepSpeed-style hostfiles and --include / --exclude / --num-nodes / --nproc-per-node filters:
// which hosts a job runs on and which slots (GPUs) of each it uses.
//
// Hostfile: one host per line, `NAME slots=N`; `#` starts a comment; blank lines are ignored.
//   worker-1 slots=8
//   worker-2 slots=8   # the second node
// Filters: `host1:0,2@host2` lists hosts separated by `@`, each optionally followed by `:` and
// its slots. --include keeps only what it lists (a bare host: all its slots); --exclude drops
// what it lists (a bare host: the whole host).
#pragma once
#include <string>
#include <vector>

namespace lmt {

// Workers (GPUs) on one host: far beyond any machine, low enough that a typo cannot start
// processes or allocate by the million.
inline constexpr int kMaxSlotsPerHost = 1024;

struct HostSlots {
  std::string host;
  std::vector<int> slots;  // ascending slot indices (CUDA device ordinals)
  bool operator==(const HostSlots&) const = default;
};

// Parses hostfile text; `source` names the file in errors, which also give the line number.
// Hosts keep their order in the file. Throws lmt::Error.
std::vector<HostSlots> parse_hostfile(const std::string& text, const std::string& source);

// Whether `host` is an IPv4 loopback address (127.0.0.0/8 as a dotted quad). A host name that
// merely starts with "127." (127.example.com) is not.
bool is_ipv4_loopback(const std::string& host);

struct HostFilter {
  std::string include;    // empty: no include filter
  std::string exclude;    // empty: no exclude filter
  int num_nodes = 0;      // > 0: the first N hosts (after include/exclude)
  int nproc_per_node = 0; // > 0: the first N remaining slots of each host
};

// Applies the filters in DeepSpeed's order (include or exclude, then num_nodes, then
// nproc_per_node). Hosts left without slots are dropped. Throws lmt::Error naming the flag and
// the entry for an unknown host or slot, a malformed list, both include and exclude, or a
// result with no slots at all.
std::vector<HostSlots> filter_hosts(const std::vector<HostSlots>& hosts, const HostFilter& filter);

}  // namespace lmt
