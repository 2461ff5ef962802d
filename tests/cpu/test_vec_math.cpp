// exp_fast and tanh_fast (cpu/vec_math.h) against double libm over the float range.
#include <cmath>

#include "cpu/vec_math.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

TEST_CASE("exp_fast is within 2e-7 relative of exp on [-87, 88]", "[cpu][vec_math]") {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
    const double expected = std::exp(double{x});
    worst = std::max(worst, std::abs(exp_fast(x) - expected) / expected);
  }
  CHECK(worst < 2e-7);
  CHECK(exp_fast(0.0f) == 1.0f);
  // Far below the range it returns a tiny positive number, never 0, NaN or a negative.
  CHECK(exp_fast(-1000.0f) > 0.0f);
  CHECK(exp_fast(-1000.0f) < 1e-37f);
  CHECK(std::isfinite(exp_fast(1000.0f)));
}

TEST_CASE("tanh_fast is within 3e-7 of tanh everywhere and saturates", "[cpu][vec_math]") {
  double worst = 0.0;
  for (float x = -60.0f; x <= 60.0f; x += 0.000373f) {
    worst = std::max(worst, std::abs(tanh_fast(x) - std::tanh(double{x})));
  }
  CHECK(worst < 3e-7);
  CHECK(tanh_fast(100.0f) == 1.0f);
  CHECK(tanh_fast(-100.0f) == -1.0f);
  CHECK(std::abs(tanh_fast(0.0f)) < 1e-7f);
}

}  // namespace
}  // namespace lmt::cpu
