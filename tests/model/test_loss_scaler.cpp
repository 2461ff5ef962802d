// fp16 dynamic loss scaling: DeepSpeed's schedule (hysteresis, window, minimum) step by step.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "model/loss_scaler.h"

using lmt::LossScaler;
using lmt::LossScalerConfig;

TEST_CASE("a disabled loss scaler keeps scale 1 and only reports finiteness", "[loss_scaler]") {
  LossScaler scaler(false, LossScalerConfig{});
  CHECK(scaler.scale() == 1.0);
  CHECK(scaler.update(true));
  CHECK_FALSE(scaler.update(false));
  CHECK(scaler.scale() == 1.0);
}

TEST_CASE("overflows spend the hysteresis, then halve the scale; a clean window doubles it", "[loss_scaler]") {
  LossScalerConfig config;  // 2^16, window 1000, hysteresis 2, min 1
  LossScaler scaler(true, config);
  CHECK(scaler.scale() == 65536.0);
  CHECK_FALSE(scaler.update(false));  // first overflow: hysteresis 2 -> 1, scale kept
  CHECK(scaler.scale() == 65536.0);
  CHECK(scaler.state().hysteresis_left == 1);
  CHECK_FALSE(scaler.update(false));  // second: halved
  CHECK(scaler.scale() == 32768.0);
  CHECK_FALSE(scaler.update(false));  // hysteresis is not restored by an overflow: halved again
  CHECK(scaler.scale() == 16384.0);
  CHECK(scaler.skipped_steps() == 3);
  // The last overflow was iteration 2: the scale doubles at iteration 1002, after 999 clean steps
  // (iterations 3..1001) and on the 1000th.
  for (int i = 0; i < 999; ++i) CHECK(scaler.update(true));
  CHECK(scaler.scale() == 16384.0);
  CHECK(scaler.update(true));
  CHECK(scaler.scale() == 32768.0);
  CHECK(scaler.state().hysteresis_left == 2);  // restored with the growth
  CHECK(scaler.skipped_steps() == 3);
}

TEST_CASE("from the start the scale doubles after exactly `window` clean steps", "[loss_scaler]") {
  LossScalerConfig config;
  config.window = 4;
  LossScaler scaler(true, config);
  for (int i = 0; i < 3; ++i) scaler.update(true);
  CHECK(scaler.scale() == 65536.0);
  scaler.update(true);
  CHECK(scaler.scale() == 131072.0);
}

TEST_CASE("an overflow at the minimum scale stops the run with a clear message", "[loss_scaler]") {
  LossScalerConfig config;
  config.initial_scale = 4.0;
  config.hysteresis = 1;
  config.min_scale = 2.0;
  LossScaler scaler(true, config);
  CHECK_FALSE(scaler.update(false));
  CHECK(scaler.scale() == 2.0);
  CHECK_THROWS_WITH(scaler.update(false), Catch::Contains("minimum loss scale 2") &&
                                              Catch::Contains("precision.dtype=bf16"));
}

TEST_CASE("the scaler state round-trips (checkpoints)", "[loss_scaler]") {
  LossScaler a(true, LossScalerConfig{});
  a.update(false);
  a.update(true);
  LossScaler b(true, LossScalerConfig{});
  b.set_state(a.state());
  for (int i = 0; i < 1500; ++i) {
    const bool finite = i % 700 != 5;
    CHECK(a.update(finite) == b.update(finite));
    CHECK(a.scale() == b.scale());
  }
}
