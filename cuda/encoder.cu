// Token + position embedding.
// Gradient rule: dwte and dwpe are parameter gradients and accumulate (+=); tokens are integers,
// so there is no activation gradient.
//
// Determinism: a token that occurs several times adds several rows into one row of dwte. Instead
// of atomics (whose order, and so whose float sum, changes from run to run) the host groups the
// positions by token (a counting sort of B*T ids) and one thread per (token, channel) adds its
// positions in ascending order. dwpe has one row per position: a thread per (t, c) adds the B
// rows in order.
#include <algorithm>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace lmt::cuda {
namespace {

// Both element-wise kernels stride over their elements: B*T*C (and T*C) can need more blocks
// than a grid holds (2^31 - 1 of 256 threads: 2^39 elements).
// occupancy: at least 8 blocks of 256 threads per SM
template <typename T>
__global__ void encoder_forward_kernel(T* out, const int32_t* tokens, const T* wte, const T* wpe, int BT, int seq_len,
                                       int C) {
  const long long n = static_cast<long long>(BT) * C;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; index < n; index += stride) {
    const int row = static_cast<int>(index / C), c = static_cast<int>(index % C);
    const int t = row % seq_len;
    out[index] = from_float<T>(to_float(wte[static_cast<long long>(tokens[row]) * C + c]) +
                               to_float(wpe[static_cast<long long>(t) * C + c]));
  }
}

// dwpe (maxT, C) += sum over b of dout (B, T, C)
template <typename T>
__global__ void encoder_position_backward_kernel(float* dwpe, const T* dout, int B, int seq_len, int C) {
  const long long n = static_cast<long long>(seq_len) * C;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; index < n; index += stride) {
    float sum = 0.0f;
    for (int b = 0; b < B; ++b) sum += to_float(dout[static_cast<long long>(b) * seq_len * C + index]);
    dwpe[index] += sum;
  }
}

// Enough blocks of `threads` to fill any GPU, never more than n elements need.
int strided_blocks(long long n, int threads) {
  constexpr long long kMaxBlocks = 65536;
  return static_cast<int>(std::max(1LL, std::min((n + threads - 1) / threads, kMaxBlocks)));
}

// One block row per distinct token: positions[bucket_begin[u] .. bucket_begin[u+1]) are the rows
// of dout whose token is bucket_token[u], ascending.
template <typename T>
__global__ void encoder_token_backward_kernel(float* dwte, const T* dout, const int32_t* bucket_token,
                                              const int32_t* bucket_begin, const int32_t* positions, int C) {
  const int bucket = blockIdx.y;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (int i = bucket_begin[bucket]; i < bucket_begin[bucket + 1]; ++i)
    sum += to_float(dout[static_cast<long long>(positions[i]) * C + c]);
  dwte[static_cast<long long>(bucket_token[bucket]) * C + c] += sum;
}

}  // namespace

template <typename T>
void launch_encoder_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int seq_len, int C,
                            cudaStream_t stream) {
  const long long total = static_cast<long long>(B) * seq_len * C;
  constexpr int kThreads = 256;
  LMT_LAUNCH(encoder_forward_kernel<T>, strided_blocks(total, kThreads), kThreads, 0, stream)(out, tokens, wte, wpe,
                                                                                               B * seq_len, seq_len, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_encoder_backward(float* dwte, float* dwpe, const T* dout, const int32_t* tokens, int B, int seq_len,
                             int C, DeviceScratch& scratch, cudaStream_t stream) {
  constexpr int kThreads = 256;
  LMT_LAUNCH(encoder_position_backward_kernel<T>, strided_blocks(static_cast<long long>(seq_len) * C, kThreads),
             kThreads, 0, stream)(dwpe, dout, B, seq_len, C);
  CUDA_CHECK_LAUNCH();

  // Group positions by token on the host (B*T ints: small next to the step).
  const int BT = B * seq_len;
  std::vector<int32_t> host_tokens(static_cast<size_t>(BT));
  CUDA_CHECK(cudaMemcpyAsync(host_tokens.data(), tokens, host_tokens.size() * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  const int32_t max_token = *std::max_element(host_tokens.begin(), host_tokens.end());
  std::vector<int32_t> counts(static_cast<size_t>(max_token) + 1, 0);
  for (int32_t token : host_tokens) ++counts[static_cast<size_t>(token)];
  // Layout of the upload: bucket_token (U) | bucket_begin (U + 1) | positions (BT).
  std::vector<int32_t> bucket_token, bucket_begin;
  std::vector<int32_t> start(counts.size(), 0);
  int32_t running = 0;
  for (size_t token = 0; token < counts.size(); ++token) {
    if (counts[token] == 0) continue;
    bucket_token.push_back(static_cast<int32_t>(token));
    bucket_begin.push_back(running);
    start[token] = running;
    running += counts[token];
  }
  bucket_begin.push_back(running);
  // Sizes and offsets of the upload in size_t: 2 * buckets + 1 + BT passes 2^31 before BT does.
  const int num_buckets = static_cast<int>(bucket_token.size());
  const size_t positions_offset = 2 * static_cast<size_t>(num_buckets) + 1;
  std::vector<int32_t> upload;
  upload.reserve(positions_offset + static_cast<size_t>(BT));
  upload.insert(upload.end(), bucket_token.begin(), bucket_token.end());
  upload.insert(upload.end(), bucket_begin.begin(), bucket_begin.end());
  upload.resize(upload.size() + static_cast<size_t>(BT));
  int32_t* positions = upload.data() + positions_offset;
  for (int row = 0; row < BT; ++row) positions[start[static_cast<size_t>(host_tokens[row])]++] = row;

  int32_t* device = static_cast<int32_t*>(scratch.get(upload.size() * sizeof(int32_t)));
  CUDA_CHECK(cudaMemcpyAsync(device, upload.data(), upload.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  // The host vector must outlive the asynchronous copy.
  CUDA_CHECK(cudaStreamSynchronize(stream));
  constexpr int kChannels = 128;
  // Grid y is limited to 65535 buckets per launch.
  for (int first = 0; first < num_buckets; first += 65535) {
    const int count = std::min(65535, num_buckets - first);
    LMT_LAUNCH(encoder_token_backward_kernel<T>, dim3(ceil_div(C, kChannels), count), kChannels, 0, stream)(
        dwte, dout, device + first, device + num_buckets + first, device + positions_offset, C);
    CUDA_CHECK_LAUNCH();
  }
}

#define LMT_INSTANTIATE(T)                                                                                  \
  template void launch_encoder_forward<T>(T*, const int32_t*, const T*, const T*, int, int, int, cudaStream_t); \
  template void launch_encoder_backward<T>(float*, float*, const T*, const int32_t*, int, int, int, DeviceScratch&, \
                                           cudaStream_t);
LMT_INSTANTIATE_FOR_TYPES(LMT_INSTANTIATE)

}  // namespace lmt::cuda
