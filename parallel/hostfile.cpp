#include "parallel/hostfile.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"

namespace lmt {
namespace {

std::string trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  const size_t end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

bool parse_int(std::string_view text, int& value) {
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  return result.ec == std::errc() && result.ptr == end;
}

bool valid_host_name(const std::string& host) {
  // Host names, IPv4 and IPv6 literals: nothing a shell or ssh would treat specially.
  return !host.empty() && host[0] != '-' &&
         std::all_of(host.begin(), host.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == ':';
         });
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

// Parses an include/exclude list into host -> slots (empty set: the whole host).
std::map<std::string, std::set<int>> parse_filter(const std::string& spec, const std::string& flag,
                                                 const std::vector<HostSlots>& hosts) {
  std::map<std::string, std::set<int>> out;
  for (const std::string& entry : split(spec, '@')) {
    const size_t colon = entry.find(':');
    const std::string host = entry.substr(0, colon);
    const auto known = std::find_if(hosts.begin(), hosts.end(), [&](const HostSlots& h) { return h.host == host; });
    if (host.empty())
      throw Error(fmt::format("{} '{}': empty host entry; the format is host1:0,2@host2", flag, spec));
    if (known == hosts.end())
      throw Error(fmt::format("{} '{}': host '{}' is not in the hostfile", flag, spec, host));
    if (out.count(host)) throw Error(fmt::format("{} '{}': host '{}' is listed twice", flag, spec, host));
    std::set<int>& slots = out[host];
    if (colon == std::string::npos) continue;
    const std::string list = entry.substr(colon + 1);
    if (list.empty())
      throw Error(fmt::format("{} '{}': slot '' after '{}:'; list slots like {}:0,1", flag, spec, host, host));
    for (const std::string& item : split(list, ',')) {
      int slot = -1;
      if (!parse_int(item, slot))
        throw Error(fmt::format("{} '{}': slot '{}' of host '{}' is not a number", flag, spec, item, host));
      if (std::find(known->slots.begin(), known->slots.end(), slot) == known->slots.end())
        throw Error(fmt::format("{} '{}': host '{}' has no slot {} (it has slots 0..{})", flag, spec, host, slot,
                                known->slots.empty() ? -1 : known->slots.back()));
      if (!slots.insert(slot).second)
        throw Error(fmt::format("{} '{}': slot {} of host '{}' is listed twice", flag, spec, slot, host));
    }
  }
  return out;
}

}  // namespace

std::vector<HostSlots> parse_hostfile(const std::string& text, const std::string& source) {
  std::vector<HostSlots> hosts;
  std::istringstream in(text);
  std::string raw;
  int line_number = 0;
  while (std::getline(in, raw)) {
    ++line_number;
    const std::string line = trim(raw.substr(0, raw.find('#')));
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string host, slots_field, extra;
    fields >> host >> slots_field >> extra;
    const std::string where = fmt::format("{}:{}", source, line_number);
    if (!valid_host_name(host))
      throw Error(fmt::format("{}: '{}' is not a valid host name (letters, digits, '.', '-', '_', ':')", where, host));
    if (slots_field.empty())
      throw Error(fmt::format("{}: host '{}' has no slot count; write '{} slots=N'", where, host, host));
    int slots = 0;
    if (slots_field.rfind("slots=", 0) != 0 || !parse_int(slots_field.substr(6), slots))
      throw Error(fmt::format("{}: expected 'slots=N' after the host name, got '{}'", where, slots_field));
    if (slots < 1) throw Error(fmt::format("{}: host '{}' has slots={}; it must be at least 1", where, host, slots));
    if (slots > kMaxSlotsPerHost)
      throw Error(fmt::format("{}: host '{}' has slots={}; at most {} (slots are GPUs of one host)", where, host,
                              slots, kMaxSlotsPerHost));
    if (!extra.empty())
      throw Error(fmt::format("{}: unexpected '{}' after '{}'; one host per line: 'NAME slots=N'", where, extra, slots_field));
    for (const auto& h : hosts)
      if (h.host == host) throw Error(fmt::format("{}: host '{}' appears twice in the hostfile", where, host));
    HostSlots entry{host, {}};
    for (int s = 0; s < slots; ++s) entry.slots.push_back(s);
    hosts.push_back(std::move(entry));
  }
  if (hosts.empty())
    throw Error(fmt::format("{}: the hostfile lists no hosts; add lines like 'worker-1 slots=8'", source));
  return hosts;
}

std::vector<HostSlots> filter_hosts(const std::vector<HostSlots>& hosts, const HostFilter& filter) {
  if (!filter.include.empty() && !filter.exclude.empty())
    throw Error("--include and --exclude cannot be used together; use one of them");
  if (filter.num_nodes < 0 || filter.nproc_per_node < 0)
    throw Error(fmt::format("--num-nodes ({}) and --nproc-per-node ({}) must not be negative", filter.num_nodes,
                            filter.nproc_per_node));
  std::vector<HostSlots> out;
  if (!filter.include.empty()) {
    const auto keep = parse_filter(filter.include, "--include", hosts);
    for (const auto& h : hosts) {
      auto it = keep.find(h.host);
      if (it == keep.end()) continue;
      out.push_back({h.host, it->second.empty() ? h.slots : std::vector<int>(it->second.begin(), it->second.end())});
    }
  } else if (!filter.exclude.empty()) {
    const auto drop = parse_filter(filter.exclude, "--exclude", hosts);
    for (const auto& h : hosts) {
      auto it = drop.find(h.host);
      if (it != drop.end() && it->second.empty()) continue;
      HostSlots kept{h.host, {}};
      for (int s : h.slots)
        if (it == drop.end() || !it->second.count(s)) kept.slots.push_back(s);
      if (!kept.slots.empty()) out.push_back(std::move(kept));
    }
  } else {
    out = hosts;
  }
  if (filter.num_nodes > 0) {
    if (static_cast<size_t>(filter.num_nodes) > out.size())
      throw Error(fmt::format("--num-nodes {} but only {} host{} available", filter.num_nodes, out.size(),
                              out.size() == 1 ? " is" : "s are"));
    out.resize(static_cast<size_t>(filter.num_nodes));
  }
  if (filter.nproc_per_node > 0) {
    for (auto& h : out) {
      if (static_cast<size_t>(filter.nproc_per_node) > h.slots.size())
        throw Error(fmt::format("--nproc-per-node {} but host '{}' has only {} slot{}", filter.nproc_per_node,
                                h.host, h.slots.size(), h.slots.size() == 1 ? "" : "s"));
      h.slots.resize(static_cast<size_t>(filter.nproc_per_node));
    }
  }
  if (out.empty()) throw Error("no slots left after --include/--exclude; nothing would run");
  return out;
}

}  // namespace lmt
