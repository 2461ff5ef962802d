// attention_forward / attention_backward: against a naive materialized causal softmax, finite
// differences in double (dqkv overwritten), float vs double agreement, determinism.
#include <omp.h>

#include <cmath>
#include <limits>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

// softmax(Q K^T / sqrt(HS) + causal mask) V with the full (T,T) matrix, in double.
void naive_attention(std::vector<double>& out, std::vector<double>& lse,
                     const std::vector<double>& qkv, int B, int T, int C, int NH) {
  const int HS = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  out.assign(static_cast<size_t>(B) * T * C, 0.0);
  lse.assign(static_cast<size_t>(B) * NH * T, 0.0);
  auto at = [&](int b, int t, int third, int h, int d) {
    return qkv[(static_cast<size_t>(b) * T + t) * 3 * C + static_cast<size_t>(third) * C +
               static_cast<size_t>(h) * HS + d];
  };
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      std::vector<double> scores(static_cast<size_t>(T) * T);  // (T,T), masked entries -inf
      for (int t = 0; t < T; ++t) {
        for (int key_t = 0; key_t < T; ++key_t) {
          double score = -std::numeric_limits<double>::infinity();
          if (key_t <= t) {
            score = 0.0;
            for (int d = 0; d < HS; ++d) score += at(b, t, 0, h, d) * at(b, key_t, 1, h, d);
            score *= scale;
          }
          scores[static_cast<size_t>(t) * T + key_t] = score;
        }
      }
      for (int t = 0; t < T; ++t) {
        double max_score = -std::numeric_limits<double>::infinity();
        for (int key_t = 0; key_t < T; ++key_t) {
          max_score = std::max(max_score, scores[static_cast<size_t>(t) * T + key_t]);
        }
        double sum_exp = 0.0;
        for (int key_t = 0; key_t < T; ++key_t) {
          sum_exp +=
              std::exp(scores[static_cast<size_t>(t) * T + key_t] - max_score);  // exp(-inf) = 0
        }
        lse[(static_cast<size_t>(b) * NH + h) * T + t] = max_score + std::log(sum_exp);
        for (int key_t = 0; key_t < T; ++key_t) {
          const double probability =
              std::exp(scores[static_cast<size_t>(t) * T + key_t] - max_score) / sum_exp;
          for (int d = 0; d < HS; ++d) {
            out[(static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * HS + d] +=
                probability * at(b, key_t, 2, h, d);
          }
        }
      }
    }
  }
}

TEST_CASE("attention forward matches a naive causal softmax", "[cpu][attention]") {
  const int B = 2, T = 7, C = 12, NH = 3;
  std::mt19937 rng(31);
  const std::vector<double> qkv = random_vector(static_cast<size_t>(B) * T * 3 * C, rng, 1.5);
  std::vector<double> out(static_cast<size_t>(B) * T * C), lse(static_cast<size_t>(B) * NH * T);
  attention_forward<double>(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  std::vector<double> expected_out, expected_lse;
  naive_attention(expected_out, expected_lse, qkv, B, T, C, NH);
  check_close(out, expected_out, 1e-12, 1e-12, "attention out (double)");
  check_close(lse, expected_lse, 1e-12, 1e-12, "attention lse (double)");
  // The first query attends only to itself: out = v_0 exactly.
  for (int d = 0; d < C / NH; ++d) CHECK(out[d] == qkv[2 * C + d]);
}

TEST_CASE("attention backward matches finite differences", "[cpu][attention]") {
  const int B = 2, T = 7, C = 12, NH = 3;
  std::mt19937 rng(37);
  std::vector<double> qkv =
      random_vector(static_cast<size_t>(B) * T * 3 * C, rng, 1.5);  // (B,T,3C)
  const std::vector<double> upstream =
      random_vector(static_cast<size_t>(B) * T * C, rng);  // (B,T,C)
  std::vector<double> out(static_cast<size_t>(B) * T * C), lse(static_cast<size_t>(B) * NH * T);
  auto loss = [&] {
    attention_forward<double>(out.data(), lse.data(), qkv.data(), B, T, C, NH);
    return weighted_sum(upstream, out);
  };
  const std::vector<double> numeric_dqkv = numerical_gradient(qkv, loss);

  loss();
  std::vector<double> dqkv = nan_vector(qkv.size());  // overwritten
  attention_backward<double>(dqkv.data(), upstream.data(), qkv.data(), out.data(), lse.data(), B, T,
                             C, NH);
  check_close(dqkv, numeric_dqkv, kGradAtol, kGradRtol, "dqkv");
}

TEST_CASE("attention agrees in float and double at odd shapes", "[cpu][attention]") {
  const int B = 2, T = 37, C = 96, NH = 3;
  std::mt19937 rng(41);
  const std::vector<float> qkv = to_float(random_vector(static_cast<size_t>(B) * T * 3 * C, rng));
  const std::vector<float> upstream = to_float(random_vector(static_cast<size_t>(B) * T * C, rng));

  std::vector<float> out_f(static_cast<size_t>(B) * T * C), lse_f(static_cast<size_t>(B) * NH * T);
  attention_forward<float>(out_f.data(), lse_f.data(), qkv.data(), B, T, C, NH);
  std::vector<double> out_naive, lse_naive;
  naive_attention(out_naive, lse_naive, to_double(qkv), B, T, C, NH);
  check_close(out_f, out_naive, kFloatAtol, kFloatRtol, "attention out (float vs naive)");
  check_close(lse_f, lse_naive, kFloatAtol, kFloatRtol, "attention lse (float vs naive)");

  std::vector<double> out_d(out_f.size()), lse_d(lse_f.size());
  attention_forward<double>(out_d.data(), lse_d.data(), to_double(qkv).data(), B, T, C, NH);
  check_close(out_f, out_d, kFloatAtol, kFloatRtol, "attention out (float vs double)");

  std::vector<float> dqkv_f(qkv.size());
  std::vector<double> dqkv_d(qkv.size());
  attention_backward<float>(dqkv_f.data(), upstream.data(), qkv.data(), out_f.data(), lse_f.data(),
                            B, T, C, NH);
  attention_backward<double>(dqkv_d.data(), to_double(upstream).data(), to_double(qkv).data(),
                             out_d.data(), lse_d.data(), B, T, C, NH);
  check_close(dqkv_f, dqkv_d, kFloatAtol, kFloatRtol, "attention dqkv (float vs double)");
}

// The backward from the formula, query by query and key by key, in double.
std::vector<double> naive_attention_backward(const std::vector<double>& qkv,
                                             const std::vector<double>& dout,
                                             const std::vector<double>& out,
                                             const std::vector<double>& lse, int B, int T, int C,
                                             int NH) {
  const int HS = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<double> dqkv(qkv.size(), 0.0);
  auto index = [&](int b, int t, int third, int h) {
    return (static_cast<size_t>(b) * T + t) * 3 * C + static_cast<size_t>(third) * C +
           static_cast<size_t>(h) * HS;
  };
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      for (int t = 0; t < T; ++t) {
        const size_t row = (static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * HS;
        double dout_dot_out = 0.0;
        for (int d = 0; d < HS; ++d) dout_dot_out += dout[row + d] * out[row + d];
        for (int j = 0; j <= t; ++j) {
          double score = 0.0, dp = 0.0;
          for (int d = 0; d < HS; ++d) {
            score += qkv[index(b, t, 0, h) + d] * qkv[index(b, j, 1, h) + d];
            dp += dout[row + d] * qkv[index(b, j, 2, h) + d];
          }
          const double p = std::exp(score * scale - lse[(static_cast<size_t>(b) * NH + h) * T + t]);
          const double ds = p * (dp - dout_dot_out) * scale;
          for (int d = 0; d < HS; ++d) {
            dqkv[index(b, t, 0, h) + d] += ds * qkv[index(b, j, 1, h) + d];
            dqkv[index(b, j, 1, h) + d] += ds * qkv[index(b, t, 0, h) + d];
            dqkv[index(b, j, 2, h) + d] += p * dout[row + d];
          }
        }
      }
    }
  }
  return dqkv;
}

TEST_CASE("attention over several query blocks (T = 150) matches the naive formulas", "[cpu][attention]") {
  // Queries go in blocks of 64, so T = 150 has blocks of 64, 64 and 22 with causal offsets, and
  // dk / dv accumulate over blocks.
  const int B = 1, T = 150, C = 64, NH = 2;
  std::mt19937 rng(47);
  const std::vector<float> qkv = to_float(random_vector(static_cast<size_t>(B) * T * 3 * C, rng));
  const std::vector<float> upstream = to_float(random_vector(static_cast<size_t>(B) * T * C, rng));
  std::vector<float> out(static_cast<size_t>(B) * T * C, 7.0f), lse(static_cast<size_t>(B) * NH * T, 7.0f);
  attention_forward<float>(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  std::vector<double> out_naive, lse_naive;
  naive_attention(out_naive, lse_naive, to_double(qkv), B, T, C, NH);
  check_close(out, out_naive, kFloatAtol, kFloatRtol, "attention out (T = 150)");
  check_close(lse, lse_naive, kFloatAtol, kFloatRtol, "attention lse (T = 150)");
  std::vector<float> dqkv(qkv.size(), 7.0f);  // poisoned: every element must be written
  attention_backward<float>(dqkv.data(), upstream.data(), qkv.data(), out.data(), lse.data(), B, T, C, NH);
  const std::vector<double> expected =
      naive_attention_backward(to_double(qkv), to_double(upstream), out_naive, lse_naive, B, T, C, NH);
  check_close(dqkv, expected, kFloatAtol, kFloatRtol, "attention dqkv (T = 150)");
}

TEST_CASE("attention backward gives the same bits for any thread count", "[cpu][attention]") {
  const int B = 2, T = 37, C = 96, NH = 3;
  std::mt19937 rng(43);
  const std::vector<float> qkv = to_float(random_vector(static_cast<size_t>(B) * T * 3 * C, rng));
  const std::vector<float> upstream = to_float(random_vector(static_cast<size_t>(B) * T * C, rng));
  std::vector<float> out(static_cast<size_t>(B) * T * C), lse(static_cast<size_t>(B) * NH * T);
  attention_forward<float>(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  const int saved_threads = omp_get_max_threads();
  auto run = [&](int num_threads) {
    omp_set_num_threads(num_threads);
    std::vector<float> dqkv(qkv.size(), 123.0f);
    attention_backward<float>(dqkv.data(), upstream.data(), qkv.data(), out.data(), lse.data(), B,
                              T, C, NH);
    return dqkv;
  };
  const std::vector<float> one_thread = run(1);
  const std::vector<float> four_threads = run(4);
  omp_set_num_threads(saved_threads);
  CHECK(one_thread == four_threads);
}

}  // namespace
}  // namespace lmt::cpu
