#include "model/gpt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "model/gpt_tensors.h"

namespace lmt {
namespace {

// Indices into parameter_layout and activation_layout: both come from model/gpt_tensors.h.
#define LMT_TENSOR_ID(id, ...) id,
enum P { LMT_GPT_PARAMETERS(LMT_TENSOR_ID) kNumParameterTensors };
enum A { LMT_GPT_ACTIVATIONS(LMT_TENSOR_ID) kNumActivationBuffers };
#undef LMT_TENSOR_ID

}  // namespace

// One block's parameters (the compute copy) or gradients (fp32): the layer's slice of each
// stacked (L, ...) tensor of the arena.
template <class Ptr>
struct GPT::BlockTensors {
  Ptr ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};

// One block's activations: its input (the previous block's residual3, or the embedding) and the
// layer's slice of each buffer saved for backward.
struct GPT::BlockActivations {
  const void* input;
  void *ln1, *qkv, *atty, *residual2, *ln2, *fch, *fch_gelu, *residual3;
  float *ln1_mean, *ln1_rstd, *att_lse, *ln2_mean, *ln2_rstd;
};

namespace {

// A block's tensors in BlockTensors order, `slice(index)` giving each one's layer slice.
template <class Tensors, class Slice>
Tensors block_tensors(Slice slice) {
  return {slice(kLn1w), slice(kLn1b), slice(kQkvw), slice(kQkvb), slice(kAttprojw), slice(kAttprojb),
          slice(kLn2w), slice(kLn2b), slice(kFcw),  slice(kFcb),  slice(kFcprojw),  slice(kFcprojb)};
}

}  // namespace

GPT::BlockTensors<const void*> GPT::block_params(size_t l) const {
  return block_tensors<BlockTensors<const void*>>(
      [&](int index) { return param(index, l * (layout_[index].numel / cfg_.num_layers)); });
}

GPT::BlockTensors<float*> GPT::block_grads(size_t l) {
  return block_tensors<BlockTensors<float*>>(
      [&](int index) { return grad(index, l * (layout_[index].numel / cfg_.num_layers)); });
}

GPT::BlockActivations GPT::block_activations(size_t l) const {
  // A buffer that all layers share (model.recompute) has stride 0: every layer gets its one slice.
  auto a = [&](int index) { return act(index, l * act_layer_stride_[index]); };
  auto s = [&](int index) { return stat(index, l * act_layer_stride_[index]); };
  BlockActivations b;
  b.input = l == 0 ? act(aEncoded) : act(aResidual3, (l - 1) * act_layer_stride_[aResidual3]);
  b.ln1 = a(aLn1);
  b.qkv = a(aQkv);
  b.atty = a(aAtty);
  b.residual2 = a(aResidual2);
  b.ln2 = a(aLn2);
  b.fch = a(aFch);
  b.fch_gelu = a(aFchGelu);
  b.residual3 = a(aResidual3);
  b.ln1_mean = s(aLn1Mean);
  b.ln1_rstd = s(aLn1Rstd);
  b.att_lse = s(aAttLse);
  b.ln2_mean = s(aLn2Mean);
  b.ln2_rstd = s(aLn2Rstd);
  return b;
}

GPT::GPT(Backend& backend, const GPTConfig& cfg) : backend_(backend), cfg_(cfg), dtype_(backend.compute_dtype()) {
  if (cfg.channels % cfg.num_heads != 0)
    throw Error(fmt::format("n_embd {} is not divisible by n_head {}", cfg.channels, cfg.num_heads));
  if (cfg.padded_vocab_size < cfg.vocab_size)
    throw Error("padded vocab size is smaller than the vocab size");
  layout_ = parameter_layout(cfg_);
  LMT_CHECK(layout_.size() == static_cast<size_t>(kNumParameterTensors), "parameter_layout does not follow model/gpt_tensors.h");
  num_params_ = parameter_storage_count(cfg_);
  params_ = static_cast<float*>(backend_.alloc(num_params_ * sizeof(float)));
  grads_ = static_cast<float*>(backend_.alloc(num_params_ * sizeof(float)));
  params_compute_ = dtype_ == DType::kF32 ? params_ : backend_.alloc(num_params_ * dtype_size(dtype_));
}

GPT::~GPT() {
  if (params_compute_ != params_) backend_.free(params_compute_);
  backend_.free(params_);
  backend_.free(grads_);
  if (act_memory_) backend_.free(act_memory_);
  if (kv_memory_) backend_.free(kv_memory_);
}

void GPT::init_weights(uint64_t seed, double std) {
  // Written through a host buffer of at most 1M values: a copy of the whole arena would add 4
  // bytes per parameter to the process's peak memory (on the CPU, beside the arena itself).
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<float> host(std::min(kChunk, num_params_));
  const double residual_std = std / std::sqrt(2.0 * cfg_.num_layers);
  for (size_t i = 0; i < layout_.size(); ++i) {
    const ParamTensor& t = layout_[i];
    // Elements [0, random) are N(0, scale) draws, the rest `constant`.
    size_t random = 0;
    double scale = 0.0;
    float constant = 0.0f;  // biases start at zero
    switch (i) {
      case kWte:
        random = static_cast<size_t>(cfg_.vocab_size) * cfg_.channels;  // padded rows stay zero
        scale = std;
        break;
      case kWpe: case kQkvw: case kFcw:
        random = t.numel;
        scale = std;
        break;
      case kAttprojw: case kFcprojw:
        random = t.numel;
        scale = residual_std;
        break;
      case kLn1w: case kLn2w: case kLnfw:
        constant = 1.0f;
        break;
      default:
        break;
    }
    // Each tensor has its own stream, so adding a tensor never shifts the others' values.
    Rng rng(hash_combine(seed, 0x6770742D696E6974ull, i));
    for (size_t begin = 0; begin < t.numel; begin += kChunk) {
      const size_t n = std::min(kChunk, t.numel - begin);
      for (size_t k = 0; k < n; ++k)
        host[k] = begin + k < random ? static_cast<float>(rng.normal() * scale) : constant;
      backend_.copy_to_device(params_ + t.offset + begin, host.data(), n * sizeof(float));
    }
  }
  parameters_changed();
}

void GPT::set_parameters(const std::vector<float>& host) {
  if (host.size() != num_params_)
    throw Error(fmt::format("parameter array has {} values, the model needs {}", host.size(),
                            num_params_));
  backend_.copy_to_device(params_, host.data(), num_params_ * sizeof(float));
  parameters_changed();
}

void GPT::parameters_changed() {
  if (params_compute_ != params_) backend_.convert_from_f32(params_compute_, params_, num_params_);
}

std::vector<float> GPT::get_parameters() const {
  std::vector<float> host(num_params_);
  backend_.copy_to_host(host.data(), params_, num_params_ * sizeof(float));
  return host;
}

void GPT::copy_parameters_to_host(size_t first, size_t count, float* dst) const {
  LMT_CHECK(first <= num_params_ && count <= num_params_ - first,
            fmt::format("copy_parameters_to_host: [{}, {}) is outside the {} parameters", first, first + count,
                        num_params_));
  backend_.copy_to_host(dst, params_ + first, count * sizeof(float));
}

void GPT::copy_parameters_from_host(size_t first, size_t count, const float* src) {
  LMT_CHECK(first <= num_params_ && count <= num_params_ - first,
            fmt::format("copy_parameters_from_host: [{}, {}) is outside the {} parameters", first, first + count,
                        num_params_));
  backend_.copy_to_device(params_ + first, src, count * sizeof(float));
}

std::vector<float> GPT::get_gradients() const {
  std::vector<float> host(num_params_);
  backend_.copy_to_host(host.data(), grads_, num_params_ * sizeof(float));
  return host;
}

std::vector<float> GPT::get_logits() const { return logits_rows(static_cast<size_t>(last_B_) * last_T_); }

std::vector<float> GPT::get_losses() const {
  std::vector<float> losses(static_cast<size_t>(last_B_) * last_T_);
  backend_.copy_to_host(losses.data(), stat(aLosses), losses.size() * sizeof(float));
  return losses;
}

std::vector<float> GPT::logits_rows(size_t rows) const {
  const size_t Vp = cfg_.padded_vocab_size, V = cfg_.vocab_size;
  std::vector<char> raw(rows * Vp * dtype_size(dtype_));
  backend_.copy_to_host(raw.data(), act_ptrs_[aLogits], raw.size());
  std::vector<float> padded(rows * Vp);
  convert_to_f32(padded.data(), raw.data(), dtype_, padded.size());
  std::vector<float> out(rows * V);
  for (size_t r = 0; r < rows; ++r)
    std::copy(padded.begin() + r * Vp, padded.begin() + r * Vp + V, out.begin() + r * V);
  return out;
}

void GPT::zero_grad() { backend_.zero(grads_, num_params_ * sizeof(float)); }

void GPT::ensure_activations(int B, int T) {
  if (T > cfg_.max_seq_len)
    throw Error(fmt::format("sequence length {} exceeds the model's max_seq_len {}", T,
                            cfg_.max_seq_len));
  if (act_memory_ && B <= act_B_ && T <= act_T_ &&
      static_cast<size_t>(B) * T <= static_cast<size_t>(act_B_) * act_T_) {
    return;
  }
  if (act_memory_) {
    backend_.free(act_memory_);
    act_memory_ = nullptr;  // an alloc that throws below must not leave the freed arena behind
    act_bytes_ = 0;
  }
  B = std::max(B, act_B_);
  T = std::max(T, act_T_);
  std::vector<size_t> offsets;
  const size_t bytes = activation_bytes(cfg_, B, T, dtype_size(dtype_), &offsets);
  LMT_CHECK(offsets.size() == static_cast<size_t>(kNumActivationBuffers), "activation_layout does not follow model/gpt_tensors.h");
  act_memory_ = backend_.alloc(bytes);
  act_bytes_ = bytes;
  act_ptrs_.assign(offsets.size(), nullptr);
  act_elem_bytes_.assign(offsets.size(), 0);
  const auto buffers = activation_layout(cfg_, B, T);
  for (size_t i = 0; i < offsets.size(); ++i) {
    act_ptrs_[i] = static_cast<char*>(act_memory_) + offsets[i];
    act_elem_bytes_[i] = buffers[i].wide ? 4 : dtype_size(dtype_);
  }
  act_B_ = B;
  act_T_ = T;
}

float GPT::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
  return run_forward(inputs, targets, B, T, 0.0f);
}

float GPT::forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                            float grad_scale) {
  const float loss = forward_for_backward(inputs, targets, B, T, grad_scale);
  backward();
  return loss;
}

float GPT::forward_for_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                                float grad_scale) {
  const float dloss = grad_scale / static_cast<float>(static_cast<size_t>(B) * T);
  return run_forward(inputs, targets, B, T, dloss);
}

void GPT::backward() { run_backward(last_B_, last_T_); }

void GPT::set_layer_strides(int B, int T) {
  // Buffers are laid out for (act_B_, act_T_); per-layer slices use the current (B, T), so
  // smaller batches simply use a prefix of each slice's place.
  act_layer_stride_.clear();
  for (const auto& buffer : activation_layout(cfg_, B, T)) act_layer_stride_.push_back(buffer.layer_stride);
}

void GPT::block_forward(size_t l, int B, int T, int cache_pos, bool recompute) {
  const size_t C = cfg_.channels, NH = cfg_.num_heads;
  const size_t BT = static_cast<size_t>(B) * T;
  const BlockTensors<const void*> p = block_params(l);
  const BlockActivations a = block_activations(l);
  backend_.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.input, p.ln1w, p.ln1b, BT, C);
  backend_.matmul_forward(a.qkv, a.ln1, p.qkvw, p.qkvb, BT, C, 3 * C);
  if (cache_pos < 0) {
    backend_.attention_forward(a.atty, a.att_lse, a.qkv, B, T, C, NH);
  } else {
    const size_t cache_layer = static_cast<size_t>(gen_B_) * gen_capacity_ * C * dtype_size(dtype_);
    char* k_cache = static_cast<char*>(kv_memory_) + 2 * l * cache_layer;
    backend_.attention_cached_forward(a.atty, k_cache, k_cache + cache_layer, a.qkv, B, T, cache_pos, gen_capacity_,
                                      C, NH);
  }
  backend_.matmul_residual_forward(a.residual2, a.input, a.atty, p.attprojw, p.attprojb, BT, C, C);
  backend_.layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, p.ln2w, p.ln2b, BT, C);
  backend_.matmul_gelu_forward(a.fch, a.fch_gelu, a.ln2, p.fcw, p.fcb, BT, C, 4 * C);
  if (recompute) return;
  backend_.matmul_residual_forward(a.residual3, a.residual2, a.fch_gelu, p.fcprojw, p.fcprojb, BT, 4 * C, C);
}

void GPT::forward_trunk(int B, int T, int cache_pos) {
  set_layer_strides(B, T);
  const size_t L = cfg_.num_layers, C = cfg_.channels;
  const size_t BT = static_cast<size_t>(B) * T;
  const auto* tokens = static_cast<const int32_t*>(act(aInputs));
  const size_t pos = cache_pos < 0 ? 0 : static_cast<size_t>(cache_pos);
  backend_.encoder_forward(act(aEncoded), tokens, param(kWte), param(kWpe, pos * C), B, T, C);
  for (size_t l = 0; l < L; ++l) block_forward(l, B, T, cache_pos, false);
  const void* last = block_activations(L - 1).residual3;
  backend_.layernorm_forward(act(aLnf), stat(aLnfMean), stat(aLnfRstd), last, param(kLnfw), param(kLnfb), BT, C);
}

float GPT::run_forward(const int32_t* inputs, const int32_t* targets, int B, int T, float dloss) {
  ensure_activations(B, T);
  last_B_ = B;
  last_T_ = T;
  const size_t C = cfg_.channels;
  const size_t BT = static_cast<size_t>(B) * T;
  const int Vp = cfg_.padded_vocab_size, V = cfg_.vocab_size;
  auto* tokens = static_cast<int32_t*>(act(aInputs));
  auto* target_ids = static_cast<int32_t*>(act(aTargets));
  backend_.copy_to_device(tokens, inputs, BT * sizeof(int32_t));
  backend_.copy_to_device(target_ids, targets, BT * sizeof(int32_t));
  forward_trunk(B, T, -1);
  backend_.matmul_forward(act(aLogits), act(aLnf), param(kWte), nullptr, BT, C, Vp);
  // In training the classifier overwrites the logits with dlogits (fused, no extra buffer).
  backend_.classifier_forward_backward(dloss != 0.0f ? act(aLogits) : nullptr, stat(aLosses), act(aLogits),
                                       target_ids, dloss, BT, V, Vp);
  std::vector<float> losses(BT);
  backend_.copy_to_host(losses.data(), stat(aLosses), BT * sizeof(float));
  double sum = 0.0;
  for (float x : losses) sum += x;
  return static_cast<float>(sum / static_cast<double>(BT));
}

void GPT::start_generation(int B, int capacity) {
  LMT_CHECK(B >= 1 && capacity >= 1 && capacity <= cfg_.max_seq_len,
            fmt::format("start_generation: B {} and capacity {} (max_seq_len {})", B, capacity, cfg_.max_seq_len));
  if (kv_memory_) backend_.free(kv_memory_);
  const size_t bytes = 2 * static_cast<size_t>(cfg_.num_layers) * B * capacity * cfg_.channels * dtype_size(dtype_);
  kv_memory_ = backend_.alloc(bytes);
  gen_B_ = B;
  gen_capacity_ = capacity;
  gen_pos_ = 0;
}

std::vector<float> GPT::generate_step(const int32_t* tokens, int Tn) {
  LMT_CHECK(kv_memory_ != nullptr && Tn >= 1, "generate_step before start_generation, or without tokens");
  if (gen_pos_ + Tn > gen_capacity_)
    throw Error(fmt::format("generation: {} cached positions and {} new ones exceed the cache's {}", gen_pos_, Tn,
                            gen_capacity_));
  const int B = gen_B_;
  ensure_activations(B, Tn);
  last_B_ = B;
  last_T_ = Tn;
  const size_t C = cfg_.channels, Vp = cfg_.padded_vocab_size;
  backend_.copy_to_device(act(aInputs), tokens, static_cast<size_t>(B) * Tn * sizeof(int32_t));
  forward_trunk(B, Tn, gen_pos_);
  gen_pos_ += Tn;
  // The LM head only for each sequence's last new position. For one new token those rows are
  // the B rows of lnf: one GEMM reads wte once. After a prefill they are Tn apart: one row each.
  if (Tn == 1) {
    backend_.matmul_forward(act(aLogits), act(aLnf), param(kWte), nullptr, B, C, Vp);
  } else {
    for (int b = 0; b < B; ++b) {
      const size_t row = static_cast<size_t>(b) * Tn + (Tn - 1);
      backend_.matmul_forward(act(aLogits, b * Vp), act(aLnf, row * C), param(kWte), nullptr, 1, C, Vp);
    }
  }
  return logits_rows(static_cast<size_t>(B));
}

void GPT::run_backward(int B, int T) {
  const size_t L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads;
  const size_t BT = static_cast<size_t>(B) * T;
  const int Vp = cfg_.padded_vocab_size;
  const auto* tokens = static_cast<const int32_t*>(act(aInputs));
  void* dresidual = act(aDresidual);
  void* dln = act(aDln);

  backend_.zero(dresidual, BT * C * dtype_size(dtype_));
  backend_.matmul_backward(dln, grad(kWte), nullptr, act(aLogits), act(aLnf), param(kWte), BT, C, Vp);
  backend_.layernorm_backward(dresidual, grad(kLnfw), grad(kLnfb), dln, block_activations(L - 1).residual3,
                              param(kLnfw), stat(aLnfMean), stat(aLnfRstd), BT, C);
  if (backward_hook_) backward_hook_(0);
  for (size_t l = L; l-- > 0;) {
    const BlockTensors<const void*> p = block_params(l);
    const BlockTensors<float*> g = block_grads(l);
    const BlockActivations a = block_activations(l);
    // model.recompute: refill the one-layer slices with block l's activations. The last block's
    // are still there from the forward pass.
    if (l + 1 < L && !skip_recompute_for_testing_) {
      if (cfg_.recompute == Recompute::kBlock) {
        block_forward(l, B, T, -1, true);  // from its input, residual3[l-1] (or the embedding)
      } else if (cfg_.recompute == Recompute::kMlp) {
        // The GELU output from its input fch, bit for bit as the forward wrote it; dfch is free
        // until matmul_backward_gelu below overwrites it.
        backend_.matmul_gelu_recompute(a.fch_gelu, act(aDfch), a.fch, a.ln2, p.fcw, p.fcb, BT, C, 4 * C);
      }
    }
    // dresidual holds d loss / d residual3[l]; the residual add passes it to both branches.
    backend_.matmul_backward_gelu(act(aDfch), g.fcprojw, g.fcprojb, dresidual, a.fch_gelu, p.fcprojw, a.fch, BT,
                                  4 * C, C);
    backend_.matmul_backward(dln, g.fcw, g.fcb, act(aDfch), a.ln2, p.fcw, BT, C, 4 * C);
    backend_.layernorm_backward(dresidual, g.ln2w, g.ln2b, dln, a.residual2, p.ln2w, a.ln2_mean, a.ln2_rstd, BT, C);
    // now dresidual = d loss / d residual2[l]
    backend_.matmul_backward(act(aDatty), g.attprojw, g.attprojb, dresidual, a.atty, p.attprojw, BT, C, C);
    backend_.attention_backward(act(aDqkv), act(aDatty), a.qkv, a.atty, a.att_lse, B, T, C, NH);
    backend_.matmul_backward(dln, g.qkvw, g.qkvb, act(aDqkv), a.ln1, p.qkvw, BT, C, 3 * C);
    backend_.layernorm_backward(dresidual, g.ln1w, g.ln1b, dln, a.input, p.ln1w, a.ln1_mean, a.ln1_rstd, BT, C);
    if (backward_hook_) backward_hook_(static_cast<int>(L - l));
  }
  backend_.encoder_backward(grad(kWte), grad(kWpe), dresidual, tokens, B, T, C);
  if (backward_hook_) backward_hook_(static_cast<int>(L + 1));
}

}  // namespace lmt
