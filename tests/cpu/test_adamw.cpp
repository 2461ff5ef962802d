// adamw_update against a scalar hand computation over 3 steps; sum_squares accuracy and
// thread-count independence.
#include <omp.h>

#include <cmath>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

struct AdamwSettings {
  double lr = 0.05, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_scale = 0.5;
};

TEST_CASE("adamw update matches a hand computation for 3 steps", "[cpu][adamw]") {
  const AdamwSettings s;
  const std::vector<double> initial_params = {0.5, -1.25, 2.0, 0.0, -0.03125};
  const std::vector<std::vector<double>> grads_per_step = {
      {0.1, -0.2, 0.3, 4.0, -0.5}, {-0.3, 0.25, 0.1, 1.0, 0.0}, {0.2, 0.2, -0.4, -2.0, 0.7}};
  const size_t n = initial_params.size();

  // Scalar reference, written out from the formula in core/ops.h.
  std::vector<std::vector<double>> expected_params_per_step;
  std::vector<double> p = initial_params, m(n, 0.0), v(n, 0.0);
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < n; ++i) {
      const double g = grads_per_step[step - 1][i] * s.grad_scale;
      m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * g;
      v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * g * g;
      const double m_hat = m[i] / (1.0 - std::pow(s.beta1, step));
      const double v_hat = v[i] / (1.0 - std::pow(s.beta2, step));
      p[i] -= s.lr * (m_hat / (std::sqrt(v_hat) + s.eps) + s.weight_decay * p[i]);
    }
    expected_params_per_step.push_back(p);
  }
  // Step 1 in closed form: with zero moments m_hat = g and v_hat = g^2, so each parameter
  // moves by lr * (sign(g) + weight_decay * p) (g / (|g| + eps) for g = 0 is 0).
  for (size_t i = 0; i < n; ++i) {
    const double g = grads_per_step[0][i] * s.grad_scale;
    const double direction = g / (std::abs(g) + s.eps);
    const double expected =
        initial_params[i] - s.lr * (direction + s.weight_decay * initial_params[i]);
    CHECK(expected_params_per_step[0][i] == Approx(expected).epsilon(1e-14).margin(1e-15));
  }

  SECTION("double") {
    std::vector<double> params = initial_params, m_buf(n, 0.0), v_buf(n, 0.0);
    for (int step = 1; step <= 3; ++step) {
      adamw_update<double>(params.data(), grads_per_step[step - 1].data(), m_buf.data(),
                           v_buf.data(), n, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay,
                           s.grad_scale, step);
      check_close(params, expected_params_per_step[step - 1], 1e-14, 1e-13,
                  "params after step " + std::to_string(step));
    }
    check_close(m_buf, m, 1e-15, 1e-14, "m");
    check_close(v_buf, v, 1e-15, 1e-14, "v");
  }
  SECTION("float") {
    std::vector<float> params = to_float(initial_params), m_buf(n, 0.0f), v_buf(n, 0.0f);
    for (int step = 1; step <= 3; ++step) {
      adamw_update<float>(params.data(), to_float(grads_per_step[step - 1]).data(), m_buf.data(),
                          v_buf.data(), n, static_cast<float>(s.lr), static_cast<float>(s.beta1),
                          static_cast<float>(s.beta2), static_cast<float>(s.eps),
                          static_cast<float>(s.weight_decay), static_cast<float>(s.grad_scale),
                          step);
      check_close(params, expected_params_per_step[step - 1], kFloatAtol, kFloatRtol,
                  "params after step " + std::to_string(step));
    }
  }
}

TEST_CASE("sum_squares accumulates in double and ignores the thread count", "[cpu][adamw]") {
  // Enough values for several chunks; one large value that a float accumulator would swamp.
  const size_t n = 300001;
  std::mt19937 rng(81);
  std::vector<float> grads = to_float(random_vector(n, rng, 1e-2));
  grads[17] = 1e4f;
  double expected = 0.0;
  for (float g : grads) expected += double{g} * double{g};

  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one_thread = sum_squares<float>(grads.data(), n);
  omp_set_num_threads(3);
  const double three_threads = sum_squares<float>(grads.data(), n);
  omp_set_num_threads(saved_threads);

  CHECK(one_thread == Approx(expected).epsilon(1e-13));
  CHECK(one_thread == three_threads);
  CHECK(sum_squares<float>(grads.data(), 0) == 0.0);
  const std::vector<double> small = {3.0, -4.0};
  CHECK(sum_squares<double>(small.data(), small.size()) == 25.0);
}

}  // namespace
}  // namespace lmt::cpu
