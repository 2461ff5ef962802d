// The tensor-core building blocks of cuda/mma.cuh (mma.sync m16n8k16, ldmatrix, cp.async) on
// data whose every fragment element is known: in the emulator these check its model of the PTX
// fragment layouts (a fragment element read from the wrong index must change the result), on a
// GPU they check the same expectations against the hardware.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/mma_selftest.h"
#include "tests/cuda_ops/cuda_test_util.h"

namespace {

// Multiples of 1/4 in [-4, 4]: exact in bf16 and fp16, and so are their products and the fp32
// sums of 16 of them, so D must equal the CPU's product bit for bit.
std::vector<float> quarters(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(-16, 16);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(dist(rng)) / 4.0f;
  return values;
}

// D (16x8) = A (16x16) B (16x8) + C, row-major.
std::vector<float> cpu_mma(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c) {
  std::vector<float> d(128);
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      double sum = c.empty() ? 0.0 : c[m * 8 + n];
      for (int k = 0; k < 16; ++k) sum += static_cast<double>(a[m * 16 + k]) * b[k * 8 + n];
      d[m * 8 + n] = static_cast<float>(sum);
    }
  return d;
}

size_t count_differences(const std::vector<float>& x, const std::vector<float>& y) {
  size_t n = 0;
  for (size_t i = 0; i < x.size(); ++i) n += x[i] == y[i] ? 0 : 1;  // NaN counts as different
  return n;
}

}  // namespace

TEST_CASE("cuda mma.sync m16n8k16: fragments by the PTX layout give the CPU's product", "[cuda][mma]") {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(31);
  for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      for (int trial = 0; trial < 3; ++trial) {
        const auto a = quarters(256, rng), b = quarters(128, rng), c = quarters(128, rng);
        const auto expected = cpu_mma(a, b, c);
        CHECK(count_differences(lmt::cuda::mma_selftest(dtype, a, b, c, lmt::cuda::FragmentFault::kNone), expected) ==
              0);
        // One wrong fragment index anywhere (A, B or the accumulator) must show.
        for (const auto fault : {lmt::cuda::FragmentFault::kARows, lmt::cuda::FragmentFault::kBColumn,
                                 lmt::cuda::FragmentFault::kCColumns}) {
          INFO("fault " << static_cast<int>(fault));
          CHECK(count_differences(lmt::cuda::mma_selftest(dtype, a, b, c, fault), expected) > 0);
        }
      }
    }
  }
}

TEST_CASE("cuda ldmatrix: x4 and x2, plain and .trans, give each lane the PTX layout's elements", "[cuda][mma]") {
  SKIP_WITHOUT_GPU();
  std::vector<uint16_t> matrices(4 * 64);
  for (size_t i = 0; i < matrices.size(); ++i) matrices[i] = static_cast<uint16_t>(1000 + i);  // (j, row, col)
  for (const int num : {4, 2}) {
    for (const bool trans : {false, true}) {
      DYNAMIC_SECTION("x" << num << (trans ? ".trans" : "")) {
        const auto got = lmt::cuda::ldmatrix_selftest(matrices, num, trans);
        REQUIRE(got.size() == static_cast<size_t>(32 * num));
        size_t wrong = 0;
        for (int lane = 0; lane < 32; ++lane)
          for (int j = 0; j < num; ++j) {
            auto at = [&](int row, int col) { return static_cast<uint32_t>(matrices[j * 64 + row * 8 + col]); };
            const int g = lane / 4, t = lane % 4;
            const uint32_t expected = trans ? at(2 * t, g) | at(2 * t + 1, g) << 16 : at(g, 2 * t) | at(g, 2 * t + 1) << 16;
            if (got[lane * num + j] != expected) {
              if (++wrong <= 4) UNSCOPED_INFO("lane " << lane << " register " << j << ": " << got[lane * num + j]
                                                      << ", expected " << expected);
            }
          }
        CHECK(wrong == 0);
      }
    }
  }
}

TEST_CASE("cuda ldmatrix into mma.sync: A by x4, B by x2 or x2.trans, give the CPU's product", "[cuda][mma]") {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(32);
  for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
    for (const bool b_stored_by_k : {false, true}) {
      DYNAMIC_SECTION(lmt::dtype_name(dtype) << (b_stored_by_k ? " B rows by k (.trans)" : " B rows by n")) {
        const auto a = quarters(256, rng), b = quarters(128, rng);
        CHECK(count_differences(lmt::cuda::ldmatrix_mma_selftest(dtype, a, b, b_stored_by_k), cpu_mma(a, b, {})) == 0);
      }
    }
  }
}

TEST_CASE("cuda cp.async: 16- and 4-byte copies land at wait_group, zero-filled where asked", "[cuda][mma]") {
  SKIP_WITHOUT_GPU();
  std::vector<float> src(256);
  for (size_t i = 0; i < src.size(); ++i) src[i] = 0.5f + static_cast<float>(i);
  std::vector<float> zero_filled = src;
  for (size_t i = 128; i < 256; ++i)
    if (i % 5 == 0) zero_filled[i] = 0.0f;
  CHECK(count_differences(lmt::cuda::cp_async_selftest(src, 0), src) == 0);
  CHECK(count_differences(lmt::cuda::cp_async_selftest(src, 1), zero_filled) == 0);
#ifdef LMTRAIN_CUDA_EMU
  // A tile read before the wait_group that covers it: the emulator lands copies only there and
  // poisons their destinations when they are issued, so the read sees NaN.
  const auto early = lmt::cuda::cp_async_selftest(src, 2);
  CHECK(count_differences(std::vector<float>(early.begin(), early.begin() + 128),
                          std::vector<float>(src.begin(), src.begin() + 128)) == 0);
  size_t nan_second_half = 0, nan_all = 0;
  for (size_t i = 128; i < 256; ++i) nan_second_half += std::isnan(early[i]) ? 1 : 0;
  CHECK(nan_second_half == 128);
  for (const float v : lmt::cuda::cp_async_selftest(src, 3)) nan_all += std::isnan(v) ? 1 : 0;
  CHECK(nan_all == 256);
#endif
}
