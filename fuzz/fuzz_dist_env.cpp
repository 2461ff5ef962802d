// A worker's environment as torchrun or srun sets it: the whole input is a SLURM_NODELIST for
// expand_slurm_hostlist and first_slurm_host, then its lines (KEY=VALUE) are the environment read_dist_env sees.
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "parallel/dist_env.h"
#include "parallel/slurm_hostlist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = lmt::fuzz::as_text(data, size);
  try {
    const std::vector<std::string> hosts = lmt::expand_slurm_hostlist(std::string(input));
    lmt::fuzz::require(!hosts.empty() && hosts.size() <= lmt::kMaxSlurmHosts, "a node list of 1 to 65536 hosts");
    lmt::fuzz::require(lmt::first_slurm_host(std::string(input)) == hosts.front(), "first_slurm_host is the first host");
  } catch (const lmt::Error&) {
  }
  std::map<std::string, std::string> env;
  for (std::string_view rest = input; !rest.empty();) {
    auto [line, tail] = lmt::fuzz::split_first_line(rest);
    if (line.empty() && tail == rest) line = rest, tail = {};
    if (const size_t eq = line.find('='); eq != std::string_view::npos)
      env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    rest = tail;
  }
  try {
    lmt::read_dist_env([&](const std::string& key) -> std::optional<std::string> {
      const auto it = env.find(key);
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
  } catch (const lmt::Error&) {
  }
  return 0;
}
