// Small string helpers shared by error messages and reports.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmt {

size_t edit_distance(std::string_view a, std::string_view b);

// The candidates close enough to `word` to be a likely typo, best first (may be empty).
std::vector<std::string> closest_matches(std::string_view word,
                                         const std::vector<std::string>& candidates,
                                         size_t max_results = 3);

// " (did you mean 'x'?)" or "" when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// 124439808 -> "124,439,808"
std::string with_commas(int64_t value);
// 1536 -> "1.50 KiB", 5e9 -> "4.66 GiB"
std::string human_bytes(double bytes);
// 1.2e12 -> "1.20 T"
std::string human_count(double value);
// seconds -> "1h02m", "3m05s", "42s"
std::string human_duration(double seconds);

}  // namespace lmt
