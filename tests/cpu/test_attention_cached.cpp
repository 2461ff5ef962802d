// attention_cached_forward: a prefill and one-token steps against a KV cache give, position for
// position, what attention_forward gives over the whole sequence (in double, and in float
// within the usual float tolerance); the cache holds exactly the new keys and values.
#include <cmath>
#include <limits>

#include "cpu/cpu_ops.h"
#include "tests/cpu/cpu_test_util.h"

namespace lmt::cpu {
using namespace lmt::testing;
namespace {

// Feeds positions [0, T) of qkv (B, T, 3C) in chunks `steps` (their sum is T) through the cache
// and returns out (B, T, C) assembled from each chunk's output.
template <typename Real>
std::vector<Real> cached_attention(const std::vector<Real>& qkv, int B, int T, int C, int NH, int capacity,
                                   const std::vector<int>& steps, std::vector<Real>* k_cache_out = nullptr) {
  std::vector<Real> k_cache(static_cast<size_t>(B) * capacity * C, std::numeric_limits<Real>::quiet_NaN());
  std::vector<Real> v_cache(k_cache.size(), std::numeric_limits<Real>::quiet_NaN());
  std::vector<Real> out(static_cast<size_t>(B) * T * C);
  int pos = 0;
  for (const int Tn : steps) {
    std::vector<Real> chunk(static_cast<size_t>(B) * Tn * 3 * C), chunk_out(static_cast<size_t>(B) * Tn * C);
    for (int b = 0; b < B; ++b)
      std::copy_n(qkv.begin() + (static_cast<long>(b) * T + pos) * 3 * C, static_cast<long>(Tn) * 3 * C,
                  chunk.begin() + static_cast<long>(b) * Tn * 3 * C);
    attention_cached_forward<Real>(chunk_out.data(), k_cache.data(), v_cache.data(), chunk.data(), B, Tn, pos,
                                   capacity, C, NH);
    for (int b = 0; b < B; ++b)
      std::copy_n(chunk_out.begin() + static_cast<long>(b) * Tn * C, static_cast<long>(Tn) * C,
                  out.begin() + (static_cast<long>(b) * T + pos) * C);
    pos += Tn;
  }
  if (k_cache_out) *k_cache_out = k_cache;
  return out;
}

}  // namespace

TEST_CASE("attention_cached_forward: prefill plus steps equals full causal attention", "[cpu][attention][generate]") {
  for (const auto& [B, T, C, NH, steps] :
       {std::tuple{2, 9, 12, 3, std::vector<int>{4, 1, 1, 1, 1, 1}}, std::tuple{1, 7, 8, 1, std::vector<int>{1, 1, 1, 1, 1, 1, 1}},
        std::tuple{3, 6, 16, 2, std::vector<int>{6}}, std::tuple{2, 10, 12, 2, std::vector<int>{3, 5, 2}}}) {
    DYNAMIC_SECTION("B=" << B << " T=" << T << " C=" << C << " NH=" << NH << " chunks=" << steps.size()) {
      std::mt19937 rng(static_cast<unsigned>(B * 31 + T));
      const std::vector<double> qkv = random_vector(static_cast<size_t>(B) * T * 3 * C, rng);
      std::vector<double> full(static_cast<size_t>(B) * T * C), lse(static_cast<size_t>(B) * NH * T);
      attention_forward<double>(full.data(), lse.data(), qkv.data(), B, T, C, NH);
      const int capacity = T + 3;
      std::vector<double> k_cache;
      check_close(cached_attention(qkv, B, T, C, NH, capacity, steps, &k_cache), full, 1e-12, 1e-12,
                  "cached vs full attention (double)");
      // The cache holds k of every fed position, (B, NH, capacity, HS); the rest is untouched.
      const int HS = C / NH;
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
          for (int j = 0; j < capacity; ++j)
            for (int d = 0; d < HS; ++d) {
              const double cached = k_cache[((static_cast<size_t>(b) * NH + h) * capacity + j) * HS + d];
              if (j < T)
                CHECK(cached == qkv[(static_cast<size_t>(b) * T + j) * 3 * C + C + h * HS + d]);
              else
                CHECK(std::isnan(cached));
            }
      const std::vector<float> full_f = to_float(full);
      check_close(cached_attention(to_float(qkv), B, T, C, NH, capacity, steps), full_f, kFloatAtol, kFloatRtol,
                  "cached attention in float vs double");
    }
  }
}

}  // namespace lmt::cpu
