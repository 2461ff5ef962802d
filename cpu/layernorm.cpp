// Layer normalization over the last dimension, eps = 1e-5.
// Gradient rule: dweight and dbias are parameter gradients and accumulate (+=); dinp also
// accumulates (+=) because layernorm's input is the residual stream, whose gradient is the sum
// of this branch and the skip connection.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

namespace {
constexpr double kLayernormEps = 1e-5;
}  // namespace

template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                       const Real* bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const Real* inp_row = inp + int64_t{n} * C;  // (C)
    Real* out_row = out + int64_t{n} * C;        // (C)
    // Statistics in double: the two-pass variance avoids the cancellation of E[x^2] - E[x]^2,
    // and double keeps the float path close to the double reference.
    double sum = 0.0;
    for (int c = 0; c < C; ++c) sum += inp_row[c];
    const double row_mean = sum / C;
    double sum_sq_dev = 0.0;
    for (int c = 0; c < C; ++c) {
      const double deviation = inp_row[c] - row_mean;
      sum_sq_dev += deviation * deviation;
    }
    const double row_rstd = 1.0 / std::sqrt(sum_sq_dev / C + kLayernormEps);
    for (int c = 0; c < C; ++c) {
      const double normalized = (inp_row[c] - row_mean) * row_rstd;
      out_row[c] = static_cast<Real>(normalized * weight[c] + bias[c]);
    }
    mean[n] = static_cast<Real>(row_mean);
    rstd[n] = static_cast<Real>(row_rstd);
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
    const Real* inp_row = inp + int64_t{n} * C;    // (C)
    const Real* dout_row = dout + int64_t{n} * C;  // (C)
    Real* dinp_row = dinp + int64_t{n} * C;        // (C)
    const double row_mean = mean[n];
    const double row_rstd = rstd[n];
    double sum_dnorm = 0.0;
    double sum_dnorm_norm = 0.0;
    for (int c = 0; c < C; ++c) {
      const double norm = (inp_row[c] - row_mean) * row_rstd;
      const double dnorm = double{weight[c]} * dout_row[c];
      sum_dnorm += dnorm;
      sum_dnorm_norm += dnorm * norm;
    }
    const double dnorm_mean = sum_dnorm / C;
    const double dnorm_norm_mean = sum_dnorm_norm / C;
    for (int c = 0; c < C; ++c) {
      const double norm = (inp_row[c] - row_mean) * row_rstd;
      const double dnorm = double{weight[c]} * dout_row[c];
      dinp_row[c] += static_cast<Real>(row_rstd * (dnorm - dnorm_mean - norm * dnorm_norm_mean));
    }
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
