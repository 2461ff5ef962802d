// `lmtrain launch --hostfile F [--include S | --exclude S] [--num-nodes N] [--nproc-per-node N]`:
// parse_hostfile, then filter_hosts. Leading lines "--include S", "--exclude S", "--num-nodes N"
// and "--nproc-per-node N" set the filter (numbers as the first byte after the flag); the rest
// is the hostfile.
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "parallel/hostfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = lmt::fuzz::as_text(data, size);
  lmt::HostFilter filter;
  while (input.starts_with("--")) {
    const auto split = lmt::fuzz::split_first_line(input);
    const std::string_view line = split.first, rest = split.second;
    if (line.empty()) break;
    const auto number = [&](size_t at) { return at < line.size() ? static_cast<unsigned char>(line[at]) % 16 : 0; };
    if (line.starts_with("--include ")) filter.include = line.substr(10);
    else if (line.starts_with("--exclude ")) filter.exclude = line.substr(10);
    else if (line.starts_with("--num-nodes ")) filter.num_nodes = number(12);
    else if (line.starts_with("--nproc-per-node ")) filter.nproc_per_node = number(17);
    else break;
    input = rest;
  }
  try {
    const auto hosts = lmt::parse_hostfile(std::string(input), "fuzz-hostfile");
    lmt::filter_hosts(hosts, filter);
  } catch (const lmt::Error&) {
  }
  return 0;
}
