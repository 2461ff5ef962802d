// Slurm's compressed node lists (SLURM_JOB_NODELIST, SLURM_NODELIST) expanded into host names,
// as `scontrol show hostnames` prints them:
//   node[01-04,07]          node01 node02 node03 node04 node07   (the zero padding is kept)
//   a[1-2],b3               a1 a2 b3
//   rack[1-2]-node[01-02]   rack1-node01 rack1-node02 rack2-node01 rack2-node02
// Entries are separated by commas outside brackets; an entry may hold several bracket groups,
// each a comma list of numbers and ascending ranges LOW-HIGH, padded to the width of LOW.
// Several groups expand to every combination, the first group varying slowest.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace lmt {

// More hosts than any allocation holds (Slurm's own limit on one range is 65536): a list that
// expands past it is refused rather than allocated.
inline constexpr size_t kMaxSlurmHosts = 65536;

// The hosts of `nodelist` in order, duplicates kept. `variable` names the list in errors
// (e.g. "SLURM_JOB_NODELIST"). Throws lmt::Error for a malformed list: an empty entry, an
// unclosed or unopened bracket, an empty or descending range, a character that cannot be part
// of a host name, or more than kMaxSlurmHosts hosts.
std::vector<std::string> expand_slurm_hostlist(const std::string& nodelist,
                                               const std::string& variable = "SLURM_JOB_NODELIST");

}  // namespace lmt
