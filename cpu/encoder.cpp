// Token + position embedding.
// Gradient rule: dwte and dwpe are parameter gradients and accumulate (+=). The op has no
// activation input to differentiate (tokens are integers).
#include <algorithm>
#include <cstdint>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

template <typename Real>
void encoder_forward(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B,
                     int T, int C) {
  const int64_t num_rows = int64_t{B} * T;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < num_rows; ++row) {
    const int64_t position = row % T;
    const Real* token_embedding = wte + int64_t{tokens[row]} * C;  // (C)
    const Real* position_embedding = wpe + position * C;           // (C)
    Real* out_row = out + row * C;                                 // (C)
    for (int c = 0; c < C; ++c) out_row[c] = token_embedding[c] + position_embedding[c];
  }
}

template <typename Real>
void encoder_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* tokens, int B, int T,
                      int C) {
  // The same token can occur many times, so rows of dwte are shared between (b, t). Split the
  // work by channel instead: each thread owns a block of channels of every row of dwte and
  // dwpe and walks the tokens in order, so there are no races and the summation order (b, t
  // ascending) is the same for any thread count.
  constexpr int kChannelBlock = 64;
  const int num_blocks = (C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static)
  for (int block = 0; block < num_blocks; ++block) {
    const int c_begin = block * kChannelBlock;
    const int c_end = std::min(C, c_begin + kChannelBlock);
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < T; ++t) {
        const int64_t row = int64_t{b} * T + t;
        const Real* dout_row = dout + row * C;             // (C)
        Real* dwte_row = dwte + int64_t{tokens[row]} * C;  // (C)
        Real* dwpe_row = dwpe + int64_t{t} * C;            // (C)
        for (int c = c_begin; c < c_end; ++c) {
          dwte_row[c] += dout_row[c];
          dwpe_row[c] += dout_row[c];
        }
      }
    }
  }
}

template void encoder_forward<float>(float*, const int32_t*, const float*, const float*, int, int,
                                     int);
template void encoder_forward<double>(double*, const int32_t*, const double*, const double*, int,
                                      int, int);
template void encoder_backward<float>(float*, float*, const float*, const int32_t*, int, int, int);
template void encoder_backward<double>(double*, double*, const double*, const int32_t*, int, int,
                                       int);

}  // namespace lmt::cpu
