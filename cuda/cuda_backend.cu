// CudaBackend: device memory, one stream for every op, and the public op entries that check
// shapes before calling the raw launchers of cuda/kernels.cuh.
#include "cuda/cuda_backend.h"

#include <cmath>
#include <memory>
#include <string>

#include "core/error.h"
#include "cuda/common.cuh"
#ifndef LMTRAIN_CUDA_EMU
#include "cuda/device.h"
#endif
#include "cuda/kernels.cuh"
#include "cuda/matmul.cuh"

namespace lmt::cuda {
namespace {

class CudaBackend final : public lmt::Backend {
 public:
  explicit CudaBackend(const CudaOptions& options) : device_(options.device) {
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<Gemm>(stream_, options.allow_tf32);
  }
  ~CudaBackend() override {
    gemm_.reset();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return is_emulator() ? "cuda-emulator" : "cuda:" + std::to_string(device_); }

  void* alloc(size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes == 0 ? 256 : bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error of a failed allocation
      throw Error("CUDA device " + std::to_string(device_) + ": cannot allocate " +
                  std::to_string(bytes >> 20) + " MiB (" + cudaGetErrorString(err) +
                  "); lower run.micro_batch_size or run.seq_len (`lmtrain plan` shows the memory a recipe needs)");
    }
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
    return ptr;
  }
  void free(void* ptr) override {
    if (ptr) CUDA_CHECK(cudaFree(ptr));
  }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may reuse host_src at once
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void zero(void* ptr, size_t bytes) override {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
  }
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                       int C) override {
    launch_encoder_forward(out, tokens, wte, wpe, B, T, C, stream_);
  }
  void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                        int C) override {
    if (B * T == 0) return;
    launch_encoder_backward(dwte, dwpe, dout, tokens, B, T, C, scratch_, stream_);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C) override {
    launch_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, stream_);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int N, int C) override {
    launch_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, scratch_, stream_);
  }

  // Row-major out (N, OC) = inp (N, C) @ weight (OC, C)^T is column-major out^T (OC x N) =
  // weight^T (op T of the C x OC column-major view of weight) times inp^T (C x N).
  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                      int OC) override {
    if (N == 0) return;
    gemm_->run(true, false, OC, N, C, weight, C, inp, C, out, OC, 0.0f, bias);
  }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC) override {
    if (N == 0) return;
    // dinp (N, C) = dout (N, OC) @ weight (OC, C): column-major dinp^T (C x N) = weight^T (C x OC) dout^T (OC x N)
    if (dinp) gemm_->run(false, false, C, N, OC, weight, C, dout, OC, dinp, C, 0.0f, nullptr);
    // dweight (OC, C) += dout^T (OC, N) @ inp (N, C): column-major dweight^T (C x OC) += inp^T (C x N) dout (N x OC)
    gemm_->run(false, true, C, OC, N, inp, C, dout, OC, dweight, C, 1.0f, nullptr);
    if (dbias) launch_column_sum(dbias, dout, N, OC, scratch_, stream_);
  }
  void matmul_residual_forward(float* out, const float* residual, const float* inp, const float* weight,
                               const float* bias, int N, int C, int OC) override {
    if (N == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(out, residual, static_cast<size_t>(N) * OC * sizeof(float), cudaMemcpyDeviceToDevice,
                               stream_));
    gemm_->run(true, false, OC, N, C, weight, C, inp, C, out, OC, 1.0f, bias);
  }

  void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH) override {
    check_heads(C, NH);
    launch_attention_forward(out, lse, qkv, B, T, C, NH, stream_);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                          int B, int T, int C, int NH) override {
    check_heads(C, NH);
    launch_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch_, stream_);
  }
  void gelu_forward(float* out, const float* inp, size_t n) override { launch_gelu_forward(out, inp, n, stream_); }
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) override {
    launch_gelu_backward(dinp, inp, dout, n, stream_);
  }
  void residual_forward(float* out, const float* inp1, const float* inp2, size_t n) override {
    launch_residual_forward(out, inp1, inp2, n, stream_);
  }
  void classifier_forward_backward(float* dlogits, float* losses, const float* logits, const int32_t* targets,
                                   float dloss, int N, int V, int Vp) override {
    launch_classifier(dlogits, losses, logits, targets, dloss, N, V, Vp, stream_);
  }
  double sum_squares(const float* grads, size_t n) override { return cuda::sum_squares(grads, n, scratch_, stream_); }
  void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, float grad_scale, int t) override {
    // Bias corrections in double, as on the CPU: b^t for b near 1 loses digits in float.
    const float bias_correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), t));
    const float bias_correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), t));
    launch_adamw(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bias_correction1,
                 bias_correction2, stream_);
  }

 private:
  static void check_heads(int C, int NH) {
    if (NH <= 0 || C % NH != 0 || !attention_head_size_supported(C / NH))
      throw Error("the CUDA attention kernels support head sizes 32, 64 and 128; this model has n_embd " +
                  std::to_string(C) + " / n_head " + std::to_string(NH) +
                  " (change model.n_embd or model.n_head, or train with --device cpu)");
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  DeviceScratch scratch_;
};

}  // namespace

std::unique_ptr<lmt::Backend> make_cuda_backend(const CudaOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

bool attention_supports_head_size(int HS) { return attention_head_size_supported(HS); }

std::string unavailable_reason() {
#ifdef LMTRAIN_CUDA_EMU
  return "";
#else
  const RuntimeStatus status = query_runtime();
  if (!status.driver_ok) return status.message.empty() ? "no CUDA driver" : status.message;
  if (status.devices.empty()) return "no CUDA device is visible";
  return "";
#endif
}

bool is_emulator() {
#ifdef LMTRAIN_CUDA_EMU
  return true;
#else
  return false;
#endif
}

}  // namespace lmt::cuda
