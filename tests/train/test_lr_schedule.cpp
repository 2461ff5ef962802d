#include <catch2/catch.hpp>

#include <cmath>

#include "train/lr_schedule.h"

namespace {

lmt::ScheduleConfig schedule(const std::string& decay, int64_t warmup, double min_lr,
                             double fraction = 0.0) {
  lmt::ScheduleConfig s;
  s.decay = *lmt::enum_from_name<lmt::LrDecay>(decay);
  s.warmup_steps = warmup;
  s.min_lr = min_lr;
  s.decay_fraction = fraction;
  return s;
}

}  // namespace

TEST_CASE("warmup is linear and reaches the peak at the last warmup step", "[schedule]") {
  lmt::LrSchedule lr(schedule("cosine", 100, 1e-4), 1e-3, 2000);
  CHECK(lr.at(0) == Approx(1e-5));
  CHECK(lr.at(49) == Approx(5e-4));
  CHECK(lr.at(99) == Approx(1e-3));
}

TEST_CASE("cosine decays from the peak to min_lr like nanoGPT", "[schedule]") {
  lmt::LrSchedule lr(schedule("cosine", 100, 1e-4), 1e-3, 2000);
  CHECK(lr.at(100) == Approx(1e-3));
  const double progress = (1000.0 - 100.0) / 1899.0;
  CHECK(lr.at(1000) == Approx(1e-4 + 0.5 * (1 + std::cos(M_PI * progress)) * 9e-4));
  CHECK(lr.at(1999) == Approx(1e-4));  // the last step lands on min_lr
  CHECK(lr.at(5000) == Approx(1e-4));  // past the end it stays at the minimum
  for (int64_t s = 101; s < 2000; ++s) REQUIRE(lr.at(s) <= lr.at(s - 1));
}

TEST_CASE("linear, constant and wsd shapes", "[schedule]") {
  lmt::LrSchedule linear(schedule("linear", 0, 0.0), 1.0, 100);
  CHECK(linear.at(0) == Approx(1.0));
  CHECK(linear.at(33) == Approx(1.0 - 33.0 / 99.0));
  CHECK(linear.at(99) == Approx(0.0).margin(1e-12));
  lmt::LrSchedule constant(schedule("constant", 10, 0.0), 2.0, 100);
  CHECK(constant.at(4) == Approx(1.0));
  CHECK(constant.at(99) == Approx(2.0));
  // wsd: stable until the last 20% of the post-warmup steps, then linear to min_lr
  lmt::LrSchedule wsd(schedule("wsd", 0, 0.1), 1.0, 100);
  CHECK(wsd.decay_start() == 80);
  CHECK(wsd.at(79) == Approx(1.0));
  CHECK(wsd.at(80) == Approx(1.0));
  CHECK(wsd.at(89) == Approx(1.0 - (9.0 / 19.0) * 0.9));
  CHECK(wsd.at(99) == Approx(0.1));
  lmt::LrSchedule wsd_half(schedule("wsd", 0, 0.0, 0.5), 1.0, 100);
  CHECK(wsd_half.decay_start() == 50);
  CHECK(wsd_half.at(99) == Approx(0.0).margin(1e-12));
}
