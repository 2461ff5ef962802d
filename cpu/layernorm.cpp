// Layer normalization over the last dimension, eps = 1e-5.
// Gradient rule: dweight and dbias are parameter gradients and accumulate (+=); dinp also
// accumulates (+=) because layernorm's input is the residual stream, whose gradient is the sum
// of this branch and the skip connection.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {
constexpr double kLayernormEps = 1e-5;

// Row sums in double over kLanes interleaved partial sums, added in a fixed order at the end.
// A single running sum is one dependent add per element (the add latency, ~4 cycles, per
// channel); the lanes vectorize and run in parallel, and the result still does not depend on
// anything but the row.
constexpr int kLanes = 8;

double combine_lanes(const double (&lanes)[kLanes]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// sum of f(c) over c in [0, C)
template <typename Term>
[[gnu::always_inline]] inline double lane_sum(int C, Term term) {
  double lanes[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += term(c + l);
  }
  for (int l = 0; c < C; ++c, ++l) lanes[l] += term(c);
  return combine_lanes(lanes);
}


template <typename Real>
[[gnu::always_inline]] inline void forward_row(Real* out_row, Real* mean, Real* rstd,
                                               const Real* inp_row, const Real* weight,
                                               const Real* bias, int C) {
  // Statistics in double: the two-pass variance avoids the cancellation of E[x^2] - E[x]^2,
  // and double keeps the float path close to the double reference.
  const double row_mean = lane_sum(C, [inp_row](int c) { return double{inp_row[c]}; }) / C;
  const double sum_sq_dev = lane_sum(C, [inp_row, row_mean](int c) {
    const double deviation = inp_row[c] - row_mean;
    return deviation * deviation;
  });
  const double row_rstd = 1.0 / std::sqrt(sum_sq_dev / C + kLayernormEps);
  // The per-channel pass in the element type (statistics rounded to it once).
  const Real mean_r = static_cast<Real>(row_mean);
  const Real rstd_r = static_cast<Real>(row_rstd);
  for (int c = 0; c < C; ++c) out_row[c] = (inp_row[c] - mean_r) * rstd_r * weight[c] + bias[c];
  *mean = static_cast<Real>(row_mean);
  *rstd = static_cast<Real>(row_rstd);
}

// dinp_row += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
template <typename Real>
[[gnu::always_inline]] inline void backward_row(Real* dinp_row, const Real* dout_row,
                                                const Real* inp_row, const Real* weight,
                                                double row_mean, double row_rstd, int C) {
  // Products in the element type, row sums in double, the per-channel pass in the element type.
  const Real mean_r = static_cast<Real>(row_mean);
  const Real rstd_r = static_cast<Real>(row_rstd);
  const double sum_dnorm =
      lane_sum(C, [weight, dout_row](int c) { return double{weight[c] * dout_row[c]}; });
  const double sum_dnorm_norm = lane_sum(C, [=](int c) {
    const Real norm = (inp_row[c] - mean_r) * rstd_r;
    return double{weight[c] * dout_row[c] * norm};
  });
  const Real dnorm_mean = static_cast<Real>(sum_dnorm / C);
  const Real dnorm_norm_mean = static_cast<Real>(sum_dnorm_norm / C);
  for (int c = 0; c < C; ++c) {
    const Real norm = (inp_row[c] - mean_r) * rstd_r;
    const Real dnorm = weight[c] * dout_row[c];
    dinp_row[c] += rstd_r * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
  }
}

// float rows: compiled for AVX-512 too (cpu/vec_math.h).
LMT_AVX512_CLONES void forward_row_f32(float* out_row, float* mean, float* rstd,
                                       const float* inp_row, const float* weight,
                                       const float* bias, int C) {
  forward_row(out_row, mean, rstd, inp_row, weight, bias, C);
}
LMT_AVX512_CLONES void backward_row_f32(float* dinp_row, const float* dout_row,
                                        const float* inp_row, const float* weight,
                                        double row_mean, double row_rstd, int C) {
  backward_row(dinp_row, dout_row, inp_row, weight, row_mean, row_rstd, C);
}
void run_forward_row(float* out_row, float* mean, float* rstd, const float* inp_row,
                     const float* weight, const float* bias, int C) {
  forward_row_f32(out_row, mean, rstd, inp_row, weight, bias, C);
}
void run_forward_row(double* out_row, double* mean, double* rstd, const double* inp_row,
                     const double* weight, const double* bias, int C) {
  forward_row(out_row, mean, rstd, inp_row, weight, bias, C);
}
void run_backward_row(float* dinp_row, const float* dout_row, const float* inp_row,
                      const float* weight, double row_mean, double row_rstd, int C) {
  backward_row_f32(dinp_row, dout_row, inp_row, weight, row_mean, row_rstd, C);
}
void run_backward_row(double* dinp_row, const double* dout_row, const double* inp_row,
                      const double* weight, double row_mean, double row_rstd, int C) {
  backward_row(dinp_row, dout_row, inp_row, weight, row_mean, row_rstd, C);
}

}  // namespace

template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                       const Real* bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    run_forward_row(out + int64_t{n} * C, mean + n, rstd + n, inp + int64_t{n} * C, weight, bias,
                    C);
  }
}

template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int N, int C) {
  // dinp: rows are independent.
  //   norm = (x - mean) * rstd, dnorm = weight * dout
  //   dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    run_backward_row(dinp + int64_t{n} * C, dout + int64_t{n} * C, inp + int64_t{n} * C, weight,
                     double{mean[n]}, double{rstd[n]}, C);
  }

  // dweight, dbias: sums over rows. Each thread owns a block of channels and walks the rows in
  // order, so the result does not depend on the thread count.
  constexpr int kChannelBlock = 64;
  const int num_blocks = (C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static)
  for (int block = 0; block < num_blocks; ++block) {
    const int c_begin = block * kChannelBlock;
    const int c_end = std::min(C, c_begin + kChannelBlock);
    double dweight_sum[kChannelBlock] = {};
    double dbias_sum[kChannelBlock] = {};
    for (int n = 0; n < N; ++n) {
      const Real* inp_row = inp + int64_t{n} * C;    // (C)
      const Real* dout_row = dout + int64_t{n} * C;  // (C)
      const double row_mean = mean[n];
      const double row_rstd = rstd[n];
      for (int c = c_begin; c < c_end; ++c) {
        const double norm = (inp_row[c] - row_mean) * row_rstd;
        dweight_sum[c - c_begin] += norm * dout_row[c];
        dbias_sum[c - c_begin] += dout_row[c];
      }
    }
    for (int c = c_begin; c < c_end; ++c) {
      dweight[c] += static_cast<Real>(dweight_sum[c - c_begin]);
      dbias[c] += static_cast<Real>(dbias_sum[c - c_begin]);
    }
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, int, int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int);

}  // namespace lmt::cpu
