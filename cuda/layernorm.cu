// Layer normalization over the last dimension, eps = 1e-5, statistics in fp32.
// Gradient rule: dweight and dbias are parameter gradients and accumulate (+=); dinp also
// accumulates (+=): layernorm's input is the residual stream, whose gradient is the sum of this
// branch and the skip connection.
//
// One warp per row for the statistics and dinp. dweight/dbias are column sums over the rows; they
// use the deterministic chunked scheme of column_sum.cu (no atomics).
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr float kEps = 1e-5f;
constexpr int kRowsPerBlock = 8;  // warps per block

// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                                         const T* bias, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;  // a whole warp leaves together
  const T* x = inp + static_cast<long long>(row) * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += 32) sum += to_float(x[c]);
  const float row_mean = warp_sum(sum) / C;
  // Two passes: E[(x - mean)^2] does not cancel the way E[x^2] - mean^2 does.
  float squares = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_float(x[c]) - row_mean;
    squares += d * d;
  }
  const float row_rstd = rsqrtf(warp_sum(squares) / C + kEps);
  T* y = out + static_cast<long long>(row) * C;
  for (int c = lane; c < C; c += 32)
    y[c] = from_float<T>((to_float(x[c]) - row_mean) * row_rstd * to_float(weight[c]) + to_float(bias[c]));
  if (lane == 0) {
    mean[row] = row_mean;
    rstd[row] = row_rstd;
  }
}

// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void layernorm_backward_input_kernel(T* dinp, const T* dout, const T* inp, const T* weight,
                                                const float* mean, const float* rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const long long offset = static_cast<long long>(row) * C;
  const T* x = inp + offset;
  const T* dy = dout + offset;
  const float row_mean = mean[row], row_rstd = rstd[row];
  // dnorm = dy * weight; dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
  float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float norm = (to_float(x[c]) - row_mean) * row_rstd;
    const float dnorm = to_float(dy[c]) * to_float(weight[c]);
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * norm;
  }
  const float dnorm_mean = warp_sum(dnorm_sum) / C;
  const float dnorm_norm_mean = warp_sum(dnorm_norm_sum) / C;
  T* dx = dinp + offset;
  for (int c = lane; c < C; c += 32) {
    const float norm = (to_float(x[c]) - row_mean) * row_rstd;
    const float dnorm = to_float(dy[c]) * to_float(weight[c]);
    dx[c] = from_float<T>(to_float(dx[c]) + (dnorm - dnorm_mean - norm * dnorm_norm_mean) * row_rstd);
  }
}

constexpr int kChunkRows = 256;
constexpr int kColumns = 32;
constexpr int kRowThreads = 8;
constexpr int kMaxGridY = 65535;

// partial_weight/partial_bias (num_chunks, C): per chunk of rows, sum of dy * norm and of dy.
// Grid y strides over the chunks: there are N / 256 of them, more than grid y's 65535 from
// 16.8M rows on.
// occupancy: at least 6 blocks of 256 threads per SM
template <typename T>
__global__ void layernorm_param_partial_kernel(float* partial_weight, float* partial_bias, const T* dout, const T* inp,
                                               const float* mean, const float* rstd, int N, int C) {
  LMT_SHARED(float, weight_sums, [kRowThreads][kColumns + 1]);
  LMT_SHARED(float, bias_sums, [kRowThreads][kColumns + 1]);
  const int c = blockIdx.x * kColumns + threadIdx.x;
  const long long num_chunks = (static_cast<long long>(N) + kChunkRows - 1) / kChunkRows;
  for (long long chunk = blockIdx.y; chunk < num_chunks; chunk += gridDim.y) {
    const long long row_end = min(static_cast<long long>(N), (chunk + 1) * kChunkRows);
    float dw = 0.0f, db = 0.0f;
    if (c < C)
      for (long long row = chunk * kChunkRows + threadIdx.y; row < row_end; row += kRowThreads) {
        const long long index = row * C + c;
        const float dy = to_float(dout[index]);
        dw += dy * (to_float(inp[index]) - mean[row]) * rstd[row];
        db += dy;
      }
    __syncthreads();  // the previous chunk's sums have been read
    weight_sums[threadIdx.y][threadIdx.x] = dw;
    bias_sums[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
      float total_w = 0.0f, total_b = 0.0f;
      for (int i = 0; i < kRowThreads; ++i) {
        total_w += weight_sums[i][threadIdx.x];
        total_b += bias_sums[i][threadIdx.x];
      }
      partial_weight[chunk * C + c] = total_w;
      partial_bias[chunk * C + c] = total_b;
    }
  }
}

}  // namespace

template <typename T>
void launch_layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N,
                              int C, cudaStream_t stream) {
  if (N == 0) return;
  LMT_LAUNCH(layernorm_forward_kernel<T>, ceil_div(N, kRowsPerBlock), kRowsPerBlock * 32, 0, stream)(
      out, mean, rstd, inp, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_layernorm_backward(T* dinp, float* dweight, float* dbias, const T* dout, const T* inp, const T* weight,
                               const float* mean, const float* rstd, int N, int C, DeviceScratch& scratch,
                               cudaStream_t stream) {
  if (N == 0) return;
  LMT_LAUNCH(layernorm_backward_input_kernel<T>, ceil_div(N, kRowsPerBlock), kRowsPerBlock * 32, 0, stream)(
      dinp, dout, inp, weight, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  const int num_chunks = ceil_div(N, kChunkRows);
  float* partial = static_cast<float*>(scratch.get(2 * static_cast<size_t>(num_chunks) * C * sizeof(float)));
  float* partial_bias = partial + static_cast<size_t>(num_chunks) * C;
  LMT_LAUNCH(layernorm_param_partial_kernel<T>, dim3(ceil_div(C, kColumns), std::min(num_chunks, kMaxGridY)),
             dim3(kColumns, kRowThreads), 0, stream)(partial, partial_bias, dout, inp, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  launch_add_chunk_sums(dweight, partial, num_chunks, C, stream);
  launch_add_chunk_sums(dbias, partial_bias, num_chunks, C, stream);
}

#define LMT_INSTANTIATE(T)                                                                                     \
  template void launch_layernorm_forward<T>(T*, float*, float*, const T*, const T*, const T*, int, int, cudaStream_t); \
  template void launch_layernorm_backward<T>(T*, float*, float*, const T*, const T*, const T*, const float*,          \
                                             const float*, int, int, DeviceScratch&, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
