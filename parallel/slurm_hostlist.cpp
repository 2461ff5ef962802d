#include "parallel/slurm_hostlist.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>

#include "core/error.h"

namespace lmt {
namespace {

// Numbers in a bracket: up to 18 digits, so that HIGH + 1 cannot overflow.
constexpr size_t kMaxDigits = 18;

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

class Expander {
 public:
  Expander(const std::string& nodelist, const std::string& variable) : list_(nodelist), variable_(variable) {}

  std::vector<std::string> run() {
    if (list_.empty()) fail("is empty");
    size_t start = 0;
    while (true) {
      const size_t end = entry_end(start);
      if (end == start) fail(fmt::format("has an empty entry at offset {}", start));
      expand_entry(start, end);
      if (end == list_.size()) break;
      start = end + 1;
      if (start == list_.size()) fail("ends with a ','");
    }
    return std::move(hosts_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("{} '{}' {}; expected host names and ranges such as node[01-04,07],gpu1", variable_,
                            list_, what));
  }

  // The ',' that ends the entry starting at `start` (outside brackets), or the list's end.
  size_t entry_end(size_t start) const {
    bool open = false;
    for (size_t i = start; i < list_.size(); ++i) {
      const char c = list_[i];
      if (c == '[') {
        if (open) fail(fmt::format("has a '[' inside brackets at offset {}", i));
        open = true;
      } else if (c == ']') {
        if (!open) fail(fmt::format("has a ']' without its '[' at offset {}", i));
        open = false;
      } else if (c == ',' && !open) {
        return i;
      }
    }
    if (open) fail("has an unclosed '['");
    return list_.size();
  }

  uint64_t number(std::string_view digits, size_t offset) const {
    if (digits.empty()) fail(fmt::format("has an empty number in a range at offset {}", offset));
    if (digits.size() > kMaxDigits || digits.find_first_not_of("0123456789") != std::string_view::npos)
      fail(fmt::format("has '{}' in brackets at offset {}, not a number of at most {} digits", digits, offset,
                       kMaxDigits));
    uint64_t value = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return value;
  }

  // The numbers of one bracket group's contents [begin, end), each as padded text.
  std::vector<std::string> group(size_t begin, size_t end) const {
    std::vector<std::string> out;
    if (begin == end) fail(fmt::format("has empty brackets at offset {}", begin - 1));
    const std::string_view body(list_.data() + begin, end - begin);
    size_t piece_start = 0;
    while (true) {
      const size_t comma = body.find(',', piece_start);
      const std::string_view piece = body.substr(piece_start, comma == std::string_view::npos ? body.npos : comma - piece_start);
      const size_t offset = begin + piece_start;
      if (piece.empty()) fail(fmt::format("has an empty range in brackets at offset {}", offset));
      const size_t dash = piece.find('-');
      const std::string_view low_text = piece.substr(0, dash);
      const uint64_t low = number(low_text, offset);
      uint64_t high = low;
      if (dash != std::string_view::npos) {
        high = number(piece.substr(dash + 1), offset + dash + 1);
        if (high < low) fail(fmt::format("has the descending range '{}' at offset {}", piece, offset));
      }
      if (high - low >= kMaxSlurmHosts || out.size() + (high - low + 1) > kMaxSlurmHosts) too_many();
      for (uint64_t n = low; n <= high; ++n) out.push_back(fmt::format("{:0{}}", n, low_text.size()));
      if (comma == std::string_view::npos) break;
      piece_start = comma + 1;
    }
    return out;
  }

  [[noreturn]] void too_many() const { fail(fmt::format("expands to more than {} hosts", kMaxSlurmHosts)); }

  // One entry, e.g. rack[1-2]-node[01-02]: literal parts and bracket groups, combined with the
  // first group varying slowest.
  void expand_entry(size_t begin, size_t end) {
    std::vector<std::string> names = {""};
    size_t i = begin;
    while (i < end) {
      const size_t open = list_.find('[', i);
      const size_t literal_end = open < end ? open : end;
      for (size_t k = i; k < literal_end; ++k)
        if (!is_host_char(list_[k]))
          fail(fmt::format("has '{}' at offset {}, which cannot be part of a host name", list_[k], k));
      const std::string literal = list_.substr(i, literal_end - i);
      for (auto& name : names) name += literal;
      if (literal_end == end) break;
      const size_t close = list_.find(']', open);  // entry_end checked that it exists before `end`
      const std::vector<std::string> numbers = group(open + 1, close);
      if (names.size() * numbers.size() + hosts_.size() > kMaxSlurmHosts) too_many();
      std::vector<std::string> combined;
      combined.reserve(names.size() * numbers.size());
      for (const auto& name : names)
        for (const auto& n : numbers) combined.push_back(name + n);
      names = std::move(combined);
      i = close + 1;
    }
    hosts_.insert(hosts_.end(), names.begin(), names.end());
  }

  const std::string& list_;
  const std::string& variable_;
  std::vector<std::string> hosts_;
};

}  // namespace

std::vector<std::string> expand_slurm_hostlist(const std::string& nodelist, const std::string& variable) {
  return Expander(nodelist, variable).run();
}

}  // namespace lmt
