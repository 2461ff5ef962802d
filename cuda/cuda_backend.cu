// CudaBackend: device memory, one stream for every op, and the public op entries that check
// shapes before calling the raw launchers of cuda/kernels.cuh.
#include "cuda/cuda_backend.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "cuda/common.cuh"
#ifndef LMTRAIN_CUDA_EMU
#include "cuda/device.h"
#endif
#include "cuda/kernels.cuh"
#include "cuda/matmul.cuh"

namespace lmt::cuda {
namespace {

template <typename T>
struct Tag {
  using type = T;
};

// Calls fn(Tag<T>{}) with T the element type of `dtype`.
template <typename Fn>
void with_type(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32: fn(Tag<float>{}); return;
    case DType::kBF16: fn(Tag<__nv_bfloat16>{}); return;
    case DType::kF16: fn(Tag<__half>{}); return;
  }
}

cudaDataType_t cuda_type(DType dtype) {
  return dtype == DType::kF32 ? CUDA_R_32F : dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
}

class CudaBackend final : public lmt::Backend {
 public:
  // A GPU that is busy, in exclusive-process mode, out of memory or not there is the user's
  // situation to fix, not a bug: every failure here is an lmt::Error naming the device.
  explicit CudaBackend(const CudaOptions& options)
      : device_(options.device),
        dtype_(options.dtype),
        fuse_gelu_(options.fuse_gelu),
        tensor_core_attention_(options.tensor_core_attention) {
    check_setup(cudaSetDevice(device_), "cudaSetDevice");
    allow_attention_shared_memory();
    allow_attention_mma_shared_memory();
    check_setup(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
    try {
      gemm_ = std::make_unique<Gemm>(stream_, options.allow_tf32);
    } catch (...) {
      cudaStreamDestroy(stream_);
      throw;
    }
  }
  ~CudaBackend() override {
    gemm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return is_emulator() ? "cuda-emulator" : "cuda:" + std::to_string(device_); }
  DType compute_dtype() const override { return dtype_; }

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
  cudaStream_t stream() const { return stream_; }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void convert_from_f32(void* dst, const float* src, size_t n) override {
    if (n == 0 || dst == src) return;
    with_type(dtype_, [&](auto tag) {
      using T = typename decltype(tag)::type;
      launch_convert_from_f32(static_cast<T*>(dst), src, n, stream_);
    });
  }

  void encoder_forward(void* out, const int32_t* tokens, const void* wte, const void* wpe, int B, int T, int C) override {
    if (B * T == 0) return;
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_encoder_forward(static_cast<E*>(out), tokens, static_cast<const E*>(wte), static_cast<const E*>(wpe), B, T,
                             C, stream_);
    });
  }
  void encoder_backward(float* dwte, float* dwpe, const void* dout, const int32_t* tokens, int B, int T,
                        int C) override {
    if (B * T == 0) return;
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_encoder_backward(dwte, dwpe, static_cast<const E*>(dout), tokens, B, T, C, scratch_, stream_);
    });
  }
  void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight, const void* bias,
                         int N, int C) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_layernorm_forward(static_cast<E*>(out), mean, rstd, static_cast<const E*>(inp),
                               static_cast<const E*>(weight), static_cast<const E*>(bias), N, C, stream_);
    });
  }
  void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                          const void* weight, const float* mean, const float* rstd, int N, int C) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_layernorm_backward(static_cast<E*>(dinp), dweight, dbias, static_cast<const E*>(dout),
                                static_cast<const E*>(inp), static_cast<const E*>(weight), mean, rstd, N, C, scratch_,
                                stream_);
    });
  }

  // Row-major out (N, OC) = inp (N, C) @ weight (OC, C)^T is column-major out^T (OC x N) =
  // weight^T (op T of the C x OC column-major view of weight) times inp^T (C x N).
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N, int C,
                      int OC) override {
    if (N == 0) return;
    const cudaDataType_t type = cuda_type(dtype_);
    gemm_->run(true, false, OC, N, C, weight, C, inp, C, out, OC, 0.0f, bias, type, type);
  }
  void matmul_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                       const void* weight, int N, int C, int OC) override {
    if (N == 0) return;
    const cudaDataType_t type = cuda_type(dtype_);
    // dinp (N, C) = dout (N, OC) @ weight (OC, C): column-major dinp^T (C x N) = weight^T (C x OC) dout^T (OC x N)
    if (dinp) gemm_->run(false, false, C, N, OC, weight, C, dout, OC, dinp, C, 0.0f, nullptr, type, type);
    weight_gradients(dweight, dbias, dout, inp, N, C, OC);
  }
  // The MLP's first layer: out = gelu(pre), pre = inp @ weight^T + bias, both in one GEMM
  // (cuBLASLt's GELU_AUX_BIAS epilogue writes out and keeps pre as its aux output).
  void matmul_gelu_forward(void* pre, void* out, const void* inp, const void* weight, const void* bias, int N, int C,
                           int OC) override {
    if (N == 0) return;
    if (fuse_gelu_ && gemm_->run_gelu(Epilogue::kGeluAux, true, false, OC, N, C, weight, C, inp, C, out, OC, bias,
                                      pre, cuda_type(dtype_)))
      return;
    Backend::matmul_gelu_forward(pre, out, inp, weight, bias, N, C, OC);
  }
  // model.recompute mlp. The fused forward's out is cuBLASLt's GELU of the fp32 accumulator, which
  // gelu_forward of the stored (in bf16/fp16, rounded) pre does not give bit for bit: the product
  // runs again, through the same path as the forward, with pre's copy in scratch. Unfused, the
  // forward's out was gelu_forward(pre), which the default computes.
  void matmul_gelu_recompute(void* out, void* scratch, const void* pre, const void* inp, const void* weight,
                             const void* bias, int N, int C, int OC) override {
    if (N == 0) return;
    if (fuse_gelu_) return matmul_gelu_forward(scratch, out, inp, weight, bias, N, C, OC);
    Backend::matmul_gelu_recompute(out, scratch, pre, inp, weight, bias, N, C, OC);
  }
  // Its backward: dpre = (dout @ weight) * gelu'(pre) in one GEMM (the DGELU epilogue).
  void matmul_backward_gelu(void* dpre, float* dweight, float* dbias, const void* dout, const void* inp,
                            const void* weight, const void* pre, int N, int C, int OC) override {
    if (N == 0) return;
    if (fuse_gelu_ && gemm_->run_gelu(Epilogue::kDGelu, false, false, C, N, OC, weight, C, dout, OC, dpre, C, nullptr,
                                      const_cast<void*>(pre), cuda_type(dtype_))) {
      weight_gradients(dweight, dbias, dout, inp, N, C, OC);
      return;
    }
    Backend::matmul_backward_gelu(dpre, dweight, dbias, dout, inp, weight, pre, N, C, OC);
  }
  void matmul_residual_forward(void* out, const void* residual, const void* inp, const void* weight,
                               const void* bias, int N, int C, int OC) override {
    if (N == 0) return;
    const cudaDataType_t type = cuda_type(dtype_);
    CUDA_CHECK(cudaMemcpyAsync(out, residual, static_cast<size_t>(N) * OC * dtype_size(dtype_),
                               cudaMemcpyDeviceToDevice, stream_));
    gemm_->run(true, false, OC, N, C, weight, C, inp, C, out, OC, 1.0f, bias, type, type);
  }

  void attention_forward(void* out, float* lse, const void* qkv, int B, int T, int C, int NH) override {
    check_heads(C, NH);
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      if constexpr (!std::is_same_v<E, float>) {
        if (use_mma_attention(C / NH, {out, qkv})) {
          launch_attention_mma_forward(static_cast<E*>(out), lse, static_cast<const E*>(qkv), B, T, C, NH, stream_);
          return;
        }
      }
      launch_attention_forward(static_cast<E*>(out), lse, static_cast<const E*>(qkv), B, T, C, NH, stream_);
    });
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out, const float* lse, int B,
                          int T, int C, int NH) override {
    check_heads(C, NH);
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      if constexpr (!std::is_same_v<E, float>) {
        if (use_mma_attention(C / NH, {dqkv, dout, qkv, out})) {
          launch_attention_mma_backward(static_cast<E*>(dqkv), static_cast<const E*>(dout),
                                        static_cast<const E*>(qkv), static_cast<const E*>(out), lse, B, T, C, NH,
                                        scratch_, stream_);
          return;
        }
      }
      launch_attention_backward(static_cast<E*>(dqkv), static_cast<const E*>(dout), static_cast<const E*>(qkv),
                                static_cast<const E*>(out), lse, B, T, C, NH, scratch_, stream_);
    });
  }
  void attention_cached_forward(void* out, void* k_cache, void* v_cache, const void* qkv, int B, int Tn, int pos,
                                int capacity, int C, int NH) override {
    if (NH <= 0 || C % NH != 0) throw Error("attention: n_embd must be a multiple of n_head");
    // Up to 48 KiB of shared memory without an opt-in: 12,000 and more keys cached.
    if (attention_cached_shared_bytes(pos + Tn, C / NH) > 48 * 1024)
      throw Error("CUDA generation supports contexts of up to 12,000 tokens; this one has " +
                  std::to_string(pos + Tn) + " (generate with --device cpu)");
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_attention_cached_forward(static_cast<E*>(out), static_cast<E*>(k_cache), static_cast<E*>(v_cache),
                                      static_cast<const E*>(qkv), B, Tn, pos, capacity, C, NH, stream_);
    });
  }
  void gelu_forward(void* out, const void* inp, size_t n) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_gelu_forward(static_cast<E*>(out), static_cast<const E*>(inp), n, stream_);
    });
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, size_t n) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_gelu_backward(static_cast<E*>(dinp), static_cast<const E*>(inp), static_cast<const E*>(dout), n, stream_);
    });
  }
  void residual_forward(void* out, const void* inp1, const void* inp2, size_t n) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_residual_forward(static_cast<E*>(out), static_cast<const E*>(inp1), static_cast<const E*>(inp2), n,
                              stream_);
    });
  }
  void classifier_forward_backward(void* dlogits, float* losses, const void* logits, const int32_t* targets,
                                   float dloss, int N, int V, int Vp) override {
    with_type(dtype_, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch_classifier(static_cast<E*>(dlogits), losses, static_cast<const E*>(logits), targets, dloss, N, V, Vp,
                        stream_);
    });
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
  // dweight (OC, C) += dout^T (OC, N) @ inp (N, C): column-major dweight^T (C x OC) += inp^T
  // (C x N) dout (N x OC), accumulated in fp32 whatever the input type; dbias += column sums.
  void weight_gradients(float* dweight, float* dbias, const void* dout, const void* inp, int N, int C, int OC) {
    gemm_->run(false, true, C, OC, N, inp, C, dout, OC, dweight, C, 1.0f, nullptr, cuda_type(dtype_), CUDA_R_32F);
    if (dbias)
      with_type(dtype_, [&](auto tag) {
        using E = typename decltype(tag)::type;
        launch_column_sum(dbias, static_cast<const E*>(dout), N, OC, scratch_, stream_);
      });
  }

  void check_setup(cudaError_t err, const char* what) const {
    if (err == cudaSuccess) return;
    cudaGetLastError();  // a failed setup call leaves its error behind
    throw Error("CUDA device " + std::to_string(device_) + " cannot be used: " + what + " failed: " +
                cudaGetErrorString(err) +
                " (is it busy or in exclusive-process mode? `nvidia-smi` shows what runs on it; pick another GPU "
                "with CUDA_VISIBLE_DEVICES, or train with --device cpu)");
  }

  // The tensor-core kernels (16-bit types only) copy rows 16 bytes at a time.
  bool use_mma_attention(int HS, std::initializer_list<const void*> buffers) const {
    if (!tensor_core_attention_ || !attention_mma_head_size_supported(HS)) return false;
    for (const void* p : buffers)
      if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
    return true;
  }

  static void check_heads(int C, int NH) {
    if (NH <= 0 || C % NH != 0 || !attention_head_size_supported(C / NH))
      throw Error("the CUDA attention kernels support head sizes 32, 64 and 128; this model has n_embd " +
                  std::to_string(C) + " / n_head " + std::to_string(NH) +
                  " (change model.n_embd or model.n_head, or train with --device cpu)");
  }

  int device_;
  DType dtype_;
  bool fuse_gelu_;
  bool tensor_core_attention_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  DeviceScratch scratch_;
};

}  // namespace

void* backend_stream(lmt::Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  return cuda ? static_cast<void*>(cuda->stream()) : nullptr;
}

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

int visible_device_count() {
#ifdef LMTRAIN_CUDA_EMU
  return 1;
#else
  return static_cast<int>(query_runtime().devices.size());
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
