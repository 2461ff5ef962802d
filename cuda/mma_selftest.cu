// The kernels behind cuda/mma_selftest.h: one warp (mma, ldmatrix) or one block (cp.async)
// exercising one building block of cuda/mma.cuh against data the test knows.
#include "cuda/mma_selftest.h"

#include "cuda/mma.cuh"

namespace lmt::cuda {
namespace {

// PTX m16n8k16 layouts (g = lane / 4, t = lane % 4), element i of a fragment.
__device__ __forceinline__ int a_row(int lane, int i) { return lane / 4 + ((i & 2) ? 8 : 0); }
__device__ __forceinline__ int a_col(int lane, int i) { return lane % 4 * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
__device__ __forceinline__ int b_row(int lane, int i) { return lane % 4 * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
__device__ __forceinline__ int c_row(int lane, int i) { return lane / 4 + (i >= 2 ? 8 : 0); }
__device__ __forceinline__ int c_col(int lane, int i) { return lane % 4 * 2 + (i & 1); }

template <typename T>
__global__ void mma_kernel(float* d, const float* a, const float* b, const float* c, int fault) {
  const int lane = threadIdx.x;
  uint32_t a_frag[4], b_frag[2];
  float acc[4];
  for (int r = 0; r < 4; ++r) {
    const int i = 2 * r;
    int row0 = a_row(lane, i), row1 = a_row(lane, i + 1);
    if (fault == static_cast<int>(FragmentFault::kARows) && r == 2) row0 = row1 = lane / 4 + 8;
    a_frag[r] = pack_pair<T>(a[row0 * 16 + a_col(lane, i)], a[row1 * 16 + a_col(lane, i + 1)]);
  }
  const int b_col = fault == static_cast<int>(FragmentFault::kBColumn) ? (lane / 4) ^ 1 : lane / 4;
  for (int r = 0; r < 2; ++r)
    b_frag[r] = pack_pair<T>(b[b_row(lane, 2 * r) * 8 + b_col], b[b_row(lane, 2 * r + 1) * 8 + b_col]);
  for (int i = 0; i < 4; ++i) acc[i] = c[c_row(lane, i) * 8 + c_col(lane, i)];
  mma_m16n8k16<T>(acc, a_frag, b_frag);
  for (int i = 0; i < 4; ++i) {
    int col = c_col(lane, i);
    if (fault == static_cast<int>(FragmentFault::kCColumns) && i < 2) col ^= 1;
    d[c_row(lane, i) * 8 + col] = acc[i];
  }
}

constexpr int kPitch = 24;  // elements per shared row: 48 bytes, rows 16-byte aligned, not contiguous

__global__ void ldmatrix_kernel(uint32_t* out, const uint16_t* matrices, int num, int trans) {
  alignas(16) __shared__ uint16_t tile[4 * 8 * kPitch];
  const int lane = threadIdx.x;
  for (int index = lane; index < num * 64; index += 32)
    tile[(index / 8) * kPitch + index % 8] = matrices[index];  // matrix j, row r at shared row 8j + r
  __syncwarp();
  const void* row = &tile[lane % (8 * num) * kPitch];
  uint32_t r[4] = {};
  if (num == 4) {
    if (trans) ldmatrix_x4_trans(r, row);
    else ldmatrix_x4(r, row);
  } else {
    if (trans) ldmatrix_x2_trans(r, row);
    else ldmatrix_x2(r, row);
  }
  for (int j = 0; j < num; ++j) out[lane * num + j] = r[j];
}

template <typename T>
__global__ void ldmatrix_mma_kernel(float* d, const float* a, const float* b, int b_stored_by_k) {
  alignas(16) __shared__ T a_tile[16 * kPitch];
  alignas(16) __shared__ T b_tile[16 * kPitch];
  const int lane = threadIdx.x;
  for (int index = lane; index < 256; index += 32) a_tile[index / 16 * kPitch + index % 16] = from_float<T>(a[index]);
  for (int index = lane; index < 128; index += 32) {
    const int k = index / 8, n = index % 8;
    if (b_stored_by_k) b_tile[k * kPitch + n] = from_float<T>(b[index]);  // row k: B's row
    else b_tile[n * kPitch + k] = from_float<T>(b[index]);               // row n: B's column
  }
  __syncwarp();
  // A by x4: matrix j = lane / 8 covers rows 8 (j % 2).., columns 8 (j / 2)..
  uint32_t a_frag[4], b_frag[2];
  const int j = lane / 8;
  ldmatrix_x4(a_frag, &a_tile[((j % 2) * 8 + lane % 8) * kPitch + (j / 2) * 8]);
  // B by x2: matrix 0 is k 0..7, matrix 1 k 8..15.
  const int half = (lane / 8) % 2;
  if (b_stored_by_k) ldmatrix_x2_trans(b_frag, &b_tile[(half * 8 + lane % 8) * kPitch]);
  else ldmatrix_x2(b_frag, &b_tile[(lane % 8) * kPitch + half * 8]);
  float acc[4] = {};
  mma_m16n8k16<T>(acc, a_frag, b_frag);
  for (int i = 0; i < 4; ++i) d[c_row(lane, i) * 8 + c_col(lane, i)] = acc[i];
}

__global__ void cp_async_kernel(float* out, const float* src, int mode) {
  alignas(16) __shared__ float tile[256];
  const int tid = threadIdx.x;  // 64 threads
  if (mode == 0 || mode == 3) {
    cp_async_16(&tile[4 * tid], &src[4 * tid]);
    cp_async_commit();
    if (mode == 0) cp_async_wait<0>();
    __syncthreads();
    for (int i = tid; i < 256; i += 64) out[i] = tile[i];
    if (mode == 3) {  // too late, after every thread's read: nothing may stay pending at exit
      __syncthreads();
      cp_async_wait<0>();
    }
    return;
  }
  if (tid < 32) cp_async_16(&tile[4 * tid], &src[4 * tid]);
  cp_async_commit();
  for (int i = 128 + tid; i < 256; i += 64) cp_async_4(&tile[i], &src[i], i % 5 != 0);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();
  for (int i = tid; i < 128; i += 64) out[i] = tile[i];
  if (mode == 1) cp_async_wait<0>();
  __syncthreads();
  for (int i = 128 + tid; i < 256; i += 64) out[i] = tile[i];
  if (mode == 2) {
    __syncthreads();
    cp_async_wait<0>();
  }
}

// Device copies of host vectors, freed at scope exit.
class Buffers {
 public:
  ~Buffers() {
    for (void* p : owned_) cudaFree(p);
  }
  template <typename V>
  V* put(const std::vector<V>& host) {
    V* p = alloc<V>(host.size());
    CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice));
    return p;
  }
  template <typename V>
  V* alloc(size_t n) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, n * sizeof(V)));
    owned_.push_back(p);
    return static_cast<V*>(p);
  }
  template <typename V>
  std::vector<V> get(const V* p, size_t n) {
    std::vector<V> host(n);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(host.data(), p, n * sizeof(V), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  std::vector<void*> owned_;
};

}  // namespace

std::vector<float> mma_selftest(DType dtype, const std::vector<float>& a, const std::vector<float>& b,
                                const std::vector<float>& c, FragmentFault fault) {
  Buffers buffers;
  float* d = buffers.alloc<float>(128);
  const float *a_dev = buffers.put(a), *b_dev = buffers.put(b), *c_dev = buffers.put(c);
  if (dtype == DType::kBF16)
    LMT_LAUNCH(mma_kernel<__nv_bfloat16>, 1, 32, 0, 0)(d, a_dev, b_dev, c_dev, static_cast<int>(fault));
  else
    LMT_LAUNCH(mma_kernel<__half>, 1, 32, 0, 0)(d, a_dev, b_dev, c_dev, static_cast<int>(fault));
  CUDA_CHECK_LAUNCH();
  return buffers.get(d, 128);
}

std::vector<uint32_t> ldmatrix_selftest(const std::vector<uint16_t>& matrices, int num, bool trans) {
  Buffers buffers;
  uint32_t* out = buffers.alloc<uint32_t>(32 * static_cast<size_t>(num));
  LMT_LAUNCH(ldmatrix_kernel, 1, 32, 0, 0)(out, buffers.put(matrices), num, trans ? 1 : 0);
  CUDA_CHECK_LAUNCH();
  return buffers.get(out, 32 * static_cast<size_t>(num));
}

std::vector<float> ldmatrix_mma_selftest(DType dtype, const std::vector<float>& a, const std::vector<float>& b,
                                         bool b_stored_by_k) {
  Buffers buffers;
  float* d = buffers.alloc<float>(128);
  const float *a_dev = buffers.put(a), *b_dev = buffers.put(b);
  if (dtype == DType::kBF16)
    LMT_LAUNCH(ldmatrix_mma_kernel<__nv_bfloat16>, 1, 32, 0, 0)(d, a_dev, b_dev, b_stored_by_k ? 1 : 0);
  else
    LMT_LAUNCH(ldmatrix_mma_kernel<__half>, 1, 32, 0, 0)(d, a_dev, b_dev, b_stored_by_k ? 1 : 0);
  CUDA_CHECK_LAUNCH();
  return buffers.get(d, 128);
}

std::vector<float> cp_async_selftest(const std::vector<float>& src, int mode) {
  Buffers buffers;
  float* out = buffers.alloc<float>(256);
  LMT_LAUNCH(cp_async_kernel, 1, 64, 0, 0)(out, buffers.put(src), mode);
  CUDA_CHECK_LAUNCH();
  return buffers.get(out, 256);
}

}  // namespace lmt::cuda
