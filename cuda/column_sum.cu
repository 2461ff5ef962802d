// Column sums of a row-major (N, C) matrix, added into out (C): the bias gradients of the dense
// layers. Gradient rule: out is a parameter gradient and accumulates (+=).
//
// Deterministic: rows are cut into fixed chunks of kChunkRows (the cut depends on N only), each
// chunk's sum per column is written to scratch, and a second kernel adds the chunk sums in chunk
// order. No atomics, so the same inputs give the same bits on every run.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

constexpr int kChunkRows = 256;
constexpr int kColumns = 32;  // threadIdx.x: one column each, so a warp reads 32 adjacent floats
constexpr int kRowThreads = 8;
constexpr int kMaxGridY = 65535;

// partial (num_chunks, C): the sum of rows [chunk * kChunkRows, ...) of column c. Grid y strides
// over the chunks: there are N / 256 of them, more than grid y's 65535 from 16.8M rows on.
// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void column_partial_kernel(float* partial, const T* inp, int N, int C) {
  LMT_SHARED(float, sums, [kRowThreads][kColumns + 1]);
  const int c = blockIdx.x * kColumns + threadIdx.x;
  const long long num_chunks = (static_cast<long long>(N) + kChunkRows - 1) / kChunkRows;
  for (long long chunk = blockIdx.y; chunk < num_chunks; chunk += gridDim.y) {
    const long long row_end = min(static_cast<long long>(N), (chunk + 1) * kChunkRows);
    float sum = 0.0f;
    if (c < C)
      for (long long row = chunk * kChunkRows + threadIdx.y; row < row_end; row += kRowThreads)
        sum += to_float(inp[row * C + c]);
    __syncthreads();  // the previous chunk's sums have been read
    sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
      float total = 0.0f;
      for (int i = 0; i < kRowThreads; ++i) total += sums[i][threadIdx.x];
      partial[chunk * C + c] = total;
    }
  }
}

// out (C) += sum over the chunks of partial (num_chunks, C), in chunk order.
__global__ void add_chunk_sums_kernel(float* out, const float* partial, int num_chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float total = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk) total += partial[static_cast<long long>(chunk) * C + c];
  out[c] += total;
}

}  // namespace

void launch_add_chunk_sums(float* out, const float* partial, int num_chunks, int C, cudaStream_t stream) {
  LMT_LAUNCH(add_chunk_sums_kernel, ceil_div(C, 256), 256, 0, stream)(out, partial, num_chunks, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_column_sum(float* out, const T* inp, int N, int C, DeviceScratch& scratch, cudaStream_t stream) {
  if (N == 0) return;
  const int num_chunks = ceil_div(N, kChunkRows);
  float* partial = static_cast<float*>(scratch.get(static_cast<size_t>(num_chunks) * C * sizeof(float)));
  LMT_LAUNCH(column_partial_kernel<T>, dim3(ceil_div(C, kColumns), std::min(num_chunks, kMaxGridY)),
             dim3(kColumns, kRowThreads), 0, stream)(partial, inp, N, C);
  CUDA_CHECK_LAUNCH();
  launch_add_chunk_sums(out, partial, num_chunks, C, stream);
}

#define LMT_INSTANTIATE(T) \
  template void launch_column_sum<T>(float*, const T*, int, int, DeviceScratch&, cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
