#include "train/seq_len_schedule.h"

#include <algorithm>
#include <cmath>

namespace lmt {

SeqLenSchedule::SeqLenSchedule(const SeqLenScheduleConfig& config, int64_t full_seq_len)
    : config_(config), full_seq_len_(full_seq_len) {}

int64_t SeqLenSchedule::at(int64_t step) const {
  const auto& c = config_;
  const int64_t global_step = step + 1;
  if (c.type == SeqLenScheduleKind::kFixedDiscrete) {
    for (size_t i = 0; i < c.max_step.size(); ++i)
      if (global_step <= c.max_step[i]) return c.difficulty[i];
    return c.difficulty.back();
  }
  if (c.type == SeqLenScheduleKind::kFixedLinear || c.type == SeqLenScheduleKind::kFixedRoot) {
    const double degree = c.type == SeqLenScheduleKind::kFixedLinear ? 1.0 : static_cast<double>(c.root_degree);
    const double progress =
        std::pow(static_cast<double>(global_step) / static_cast<double>(c.total_steps), 1.0 / degree);
    int64_t length = static_cast<int64_t>(
        std::floor(progress * static_cast<double>(c.max_seq_len - c.min_seq_len) + static_cast<double>(c.min_seq_len)));
    length -= length % c.step_multiple;
    return std::min(length, c.max_seq_len);
  }
  return full_seq_len_;
}

}  // namespace lmt
