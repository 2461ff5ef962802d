// Progressive sequence length against hand-computed values of DeepSpeed's curriculum formulas:
//   fixed_root: floor((step/total)^(1/degree) * (max - min) + min), rounded down to a multiple
//   of step_multiple, capped at max; fixed_linear is degree 1. Steps count from 1 as DeepSpeed's.
#include <catch2/catch.hpp>

#include "train/seq_len_schedule.h"

namespace {

lmt::SeqLenScheduleConfig config(const std::string& type) {
  lmt::SeqLenScheduleConfig c;
  c.type = *lmt::enum_from_name<lmt::SeqLenScheduleKind>(type);
  c.min_seq_len = 16;
  c.max_seq_len = 64;
  c.total_steps = 10;
  c.step_multiple = 8;
  return c;
}

}  // namespace

TEST_CASE("fixed_linear grows linearly, rounded down to step_multiple", "[seq_len]") {
  lmt::SeqLenSchedule s(config("fixed_linear"), 64);
  // step 0 is DeepSpeed's step 1: 0.1 * 48 + 16 = 20.8 -> 20 -> 16
  CHECK(s.at(0) == 16);
  CHECK(s.at(1) == 24);   // 0.2 * 48 + 16 = 25.6 -> 25 -> 24
  CHECK(s.at(4) == 40);   // 0.5 * 48 + 16 = 40
  CHECK(s.at(6) == 48);   // 0.7 * 48 + 16 = 49.6 -> 49 -> 48
  CHECK(s.at(9) == 64);   // step 10 = total_steps
  CHECK(s.at(50) == 64);  // capped
  lmt::SeqLenScheduleConfig c = config("fixed_linear");
  c.step_multiple = 1;
  lmt::SeqLenSchedule fine(c, 64);
  CHECK(fine.at(0) == 20);
  CHECK(fine.at(6) == 49);
}

TEST_CASE("fixed_root grows like a root of the progress", "[seq_len]") {
  lmt::SeqLenScheduleConfig c = config("fixed_root");
  c.root_degree = 2;
  lmt::SeqLenSchedule s(c, 64);
  CHECK(s.at(0) == 24);  // sqrt(0.1) = 0.316 * 48 + 16 = 31.18 -> 31 -> 24
  CHECK(s.at(3) == 40);  // sqrt(0.4) = 0.632 * 48 + 16 = 46.36 -> 46 -> 40
  CHECK(s.at(8) == 56);  // sqrt(0.9) = 0.949 * 48 + 16 = 61.54 -> 61 -> 56
  CHECK(s.at(9) == 64);
}

TEST_CASE("fixed_discrete steps through its list", "[seq_len]") {
  lmt::SeqLenScheduleConfig c = config("fixed_discrete");
  c.difficulty = {16, 32, 64};
  c.max_step = {3, 6};
  lmt::SeqLenSchedule s(c, 64);
  CHECK(s.at(0) == 16);  // steps 1..3
  CHECK(s.at(2) == 16);
  CHECK(s.at(3) == 32);  // steps 4..6
  CHECK(s.at(5) == 32);
  CHECK(s.at(6) == 64);  // after the last max_step
  CHECK(s.at(1000) == 64);
}

TEST_CASE("no schedule means the full length every step", "[seq_len]") {
  lmt::SeqLenSchedule s(config("none"), 64);
  CHECK_FALSE(s.enabled());
  CHECK(s.at(0) == 64);
  CHECK(s.at(7) == 64);
}
