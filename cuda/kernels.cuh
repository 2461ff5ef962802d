// The raw launchers of cuda/*.cu: device pointers, dims and the stream; no shape checks (the
// backend's public entries in cuda_backend.cu do those). One section per op file.
#pragma once
#include "cuda/common.cuh"

namespace lmt::cuda {

// A grow-only device buffer for an op's temporaries (partial sums, index lists). Every op runs on
// the backend's one stream, so a buffer can be reused by the next op without waiting.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch() {
    if (ptr_) cudaFree(ptr_);
  }
  void* get(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_) CUDA_CHECK(cudaFree(ptr_));  // cudaFree waits for the kernels that used it
      bytes_ = (bytes + 255) / 256 * 256;
      CUDA_CHECK(cudaMalloc(&ptr_, bytes_));
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Templates over the element type T of activations and of the compute copy of the parameters
// (float, __nv_bfloat16, __half); parameter gradients and statistics are fp32. Each .cu
// instantiates its launchers for the three types.

// encoder.cu
template <typename T>
void launch_encoder_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int T_, int C,
                            cudaStream_t stream);
template <typename T>
void launch_encoder_backward(float* dwte, float* dwpe, const T* dout, const int32_t* tokens, int B, int T_, int C,
                             DeviceScratch& scratch, cudaStream_t stream);

// layernorm.cu
template <typename T>
void launch_layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N,
                              int C, cudaStream_t stream);
template <typename T>
void launch_layernorm_backward(T* dinp, float* dweight, float* dbias, const T* dout, const T* inp, const T* weight,
                               const float* mean, const float* rstd, int N, int C, DeviceScratch& scratch,
                               cudaStream_t stream);

// column_sum.cu: out (C) += sum over rows of inp (N, C), deterministic (bias gradients).
template <typename T>
void launch_column_sum(float* out, const T* inp, int N, int C, DeviceScratch& scratch, cudaStream_t stream);
// out (C) += sum over chunks of partial (num_chunks, C), in chunk order.
void launch_add_chunk_sums(float* out, const float* partial, int num_chunks, int C, cudaStream_t stream);

// attention.cu
template <typename T>
void launch_attention_forward(T* out, float* lse, const T* qkv, int B, int T_, int C, int NH, cudaStream_t stream);
template <typename T>
void launch_attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B, int T_,
                               int C, int NH, DeviceScratch& scratch, cudaStream_t stream);
bool attention_head_size_supported(int HS);
// Opts every attention kernel in to the dynamic shared memory it launches with (over 48 KiB at
// head size 128), on the current device. The CUDA backend calls it for the device it is made
// for, so no launch pays for it and a second device gets its own opt-in.
void allow_attention_shared_memory();

// attention_mma.cu: the same op on tensor cores (mma.sync, ldmatrix, cp.async; sm_80 and later)
// for T = __nv_bfloat16 or __half at head sizes 64 and 128 (attention_mma_head_size_supported).
// qkv, out, dout and dqkv must be 16-byte aligned. The backward's scratch holds delta (B, NH, T).
template <typename T>
void launch_attention_mma_forward(T* out, float* lse, const T* qkv, int B, int T_, int C, int NH, cudaStream_t stream);
template <typename T>
void launch_attention_mma_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int B, int T_,
                                   int C, int NH, DeviceScratch& scratch, cudaStream_t stream);
bool attention_mma_head_size_supported(int HS);
// As allow_attention_shared_memory, for these kernels (all but the forward at head size 64 need it).
void allow_attention_mma_shared_memory();

// attention_cached.cu: generation's attention against a KV cache (core/ops.def). Its shared
// memory is (keys + HS) floats, keys = pos + Tn.
template <typename T>
void launch_attention_cached_forward(T* out, T* k_cache, T* v_cache, const T* qkv, int B, int Tn, int pos,
                                     int capacity, int C, int NH, cudaStream_t stream);
size_t attention_cached_shared_bytes(int keys, int HS);

// gelu.cu and residual.cu
template <typename T>
void launch_gelu_forward(T* out, const T* inp, size_t n, cudaStream_t stream);
template <typename T>
void launch_gelu_backward(T* dinp, const T* inp, const T* dout, size_t n, cudaStream_t stream);
template <typename T>
void launch_residual_forward(T* out, const T* inp1, const T* inp2, size_t n, cudaStream_t stream);

// classifier.cu
template <typename T>
void launch_classifier(T* dlogits, float* losses, const T* logits, const int32_t* targets, float dloss, int N, int V,
                       int Vp, cudaStream_t stream);

// adamw.cu: the sum of squares is returned to the host (it synchronizes); non-finite when any
// value is. convert: dst (n, T) = src (n, fp32) rounded to nearest even.
double sum_squares(const float* values, size_t n, DeviceScratch& scratch, cudaStream_t stream);
void launch_adamw(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, float grad_scale, float bias_correction1,
                  float bias_correction2, cudaStream_t stream);
template <typename T>
void launch_convert_from_f32(T* dst, const float* src, size_t n, cudaStream_t stream);

}  // namespace lmt::cuda
