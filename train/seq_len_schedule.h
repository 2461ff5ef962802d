// Progressive sequence length with DeepSpeed's seqlen-curriculum semantics: fixed_linear,
// fixed_root and fixed_discrete. A pure function of the step, so resuming needs no state.
#pragma once
#include <cstdint>

#include "core/recipe.h"

namespace lmt {

class SeqLenSchedule {
 public:
  SeqLenSchedule(const SeqLenScheduleConfig& config, int64_t full_seq_len);
  bool enabled() const { return config_.type != SeqLenScheduleKind::kNone; }
  // Sequence length for the 0-based optimizer step (DeepSpeed counts steps from 1).
  int64_t at(int64_t step) const;

 private:
  SeqLenScheduleConfig config_;
  int64_t full_seq_len_;
};

}  // namespace lmt
