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

// encoder.cu
void launch_encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                            int C, cudaStream_t stream);
void launch_encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                             int C, DeviceScratch& scratch, cudaStream_t stream);

// layernorm.cu
void launch_layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int N, int C, cudaStream_t stream);
void launch_layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int N, int C,
                               DeviceScratch& scratch, cudaStream_t stream);

// column_sum.cu: out (C) += sum over rows of inp (N, C), deterministic (bias gradients).
void launch_column_sum(float* out, const float* inp, int N, int C, DeviceScratch& scratch, cudaStream_t stream);
// out (C) += sum over chunks of partial (num_chunks, C), in chunk order.
void launch_add_chunk_sums(float* out, const float* partial, int num_chunks, int C, cudaStream_t stream);

// attention.cu
void launch_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH,
                              cudaStream_t stream);
void launch_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                               const float* lse, int B, int T, int C, int NH, DeviceScratch& scratch,
                               cudaStream_t stream);
bool attention_head_size_supported(int HS);

// gelu.cu and residual.cu
void launch_gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream);
void launch_gelu_backward(float* dinp, const float* inp, const float* dout, size_t n, cudaStream_t stream);
void launch_residual_forward(float* out, const float* inp1, const float* inp2, size_t n, cudaStream_t stream);

// classifier.cu
void launch_classifier(float* dlogits, float* losses, const float* logits, const int32_t* targets, float dloss,
                       int N, int V, int Vp, cudaStream_t stream);

// adamw.cu: the sum of squares is returned to the host (it synchronizes).
double sum_squares(const float* values, size_t n, DeviceScratch& scratch, cudaStream_t stream);
void launch_adamw(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, float grad_scale, float bias_correction1,
                  float bias_correction2, cudaStream_t stream);

}  // namespace lmt::cuda
