// GPT-2: token + position embeddings, pre-LN blocks (causal multi-head attention, tanh-GELU MLP),
// final layernorm, LM head tied to the token embedding. Forward and backward are written once,
// here, against the op interface (core/ops.h); the backend decides where they run.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/ops.h"
#include "model/gpt_config.h"

namespace lmt {

class GPT {
 public:
  GPT(Backend& backend, const GPTConfig& cfg);
  ~GPT();
  GPT(const GPT&) = delete;
  GPT& operator=(const GPT&) = delete;

  const GPTConfig& config() const { return cfg_; }
  const std::vector<ParamTensor>& layout() const { return layout_; }
  size_t num_param_storage() const { return num_params_; }

  // GPT-2 initialization: weights ~ N(0, std), the two residual projections N(0, std/sqrt(2L)),
  // biases 0, layernorm weights 1; wte's padded rows 0. Deterministic in seed.
  void init_weights(uint64_t seed, double std);

  // Host <-> backend copies of the whole parameter / gradient arena (layout order), fp32.
  // set_parameters also refreshes the compute copy.
  void set_parameters(const std::vector<float>& host);
  std::vector<float> get_parameters() const;
  // count fp32 master weights from arena element `first` into host memory (a checkpoint reads
  // them a piece at a time).
  void copy_parameters_to_host(size_t first, size_t count, float* dst) const;
  // The reverse, for a resume that reads them a piece at a time; then parameters_changed().
  void copy_parameters_from_host(size_t first, size_t count, const float* src);
  std::vector<float> get_gradients() const;
  // Logits of the last forward, (B, T, V) without padding. Only valid after forward().
  std::vector<float> get_logits() const;
  // Each position's loss (-log p of its target) in the last forward, (B, T) fp32.
  std::vector<float> get_losses() const;

  // Mean loss over the batch; inputs/targets are host arrays of B*T token ids (< vocab_size).
  float forward(const int32_t* inputs, const int32_t* targets, int B, int T);
  // Forward, then backward adding d(mean loss * grad_scale)/d(params) into the gradients.
  float forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                         float grad_scale);
  // The two halves of forward_backward, for timing them apart (`lmtrain bench`): the forward
  // leaves dlogits in place of the logits, and backward() must follow it.
  float forward_for_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                             float grad_scale);
  void backward();
  void zero_grad();
  // Called by backward() each time it has issued the last op that writes a group of gradients
  // (train/grad_buckets.h: 0 the final layernorm, 1..L the blocks from the last, L+1 the
  // embeddings), with the group's index. On a synchronous backend (the CPU) those gradients are
  // then final. Empty: nothing is called.
  void set_backward_hook(std::function<void(int group)> hook) { backward_hook_ = std::move(hook); }

  // Generation with a key/value cache: the same blocks as training, with each layer's keys and
  // values of the positions seen so far kept, so a new token costs one row of every GEMM and
  // attention over the cached keys, not a forward over the whole sequence.
  // start_generation: B sequences with room for `capacity` positions (<= max_seq_len); what was
  // cached before is forgotten. generate_step: feeds Tn tokens (B, Tn) of each sequence at the
  // next positions (a prompt, then one token at a time) and returns the logits of each
  // sequence's last new position, (B, V) fp32. Throws lmt::Error past the capacity.
  void start_generation(int B, int capacity);
  std::vector<float> generate_step(const int32_t* tokens, int Tn);
  int generation_length() const { return gen_pos_; }  // positions cached
  int generation_capacity() const { return gen_capacity_; }

  // Bytes of the activation arena as allocated through the backend (0 before the first forward):
  // activation_bytes() of the largest (B, T) seen, at config().recompute, which is what
  // estimate_memory reports and `lmtrain plan` prints.
  size_t activation_arena_bytes() const { return act_bytes_; }
  // Tests only: the backward pass skips its recomputation (model.recompute mlp or block) and reads
  // the one-layer slices as the forward left them, holding the last block's activations: the stale
  // data a broken recompute would use, which the bit-identity tests must catch.
  void skip_recompute_for_testing(bool skip) { skip_recompute_for_testing_ = skip; }

  // The fp32 arenas: parameters (the master weights the optimizer updates) and gradients.
  float* params() { return params_; }
  float* grads() { return grads_; }
  // After the optimizer (or anything else) wrote params(): rounds them into the compute copy
  // the ops read (bf16/fp16). In fp32 the ops read params() itself and this does nothing.
  void parameters_changed();
  DType compute_dtype() const { return dtype_; }
  Backend& backend() { return backend_; }

 private:
  // Layer l's slice of every per-layer tensor (model/gpt.cpp), the one place forward and backward
  // find a block's weights, gradients and activations.
  template <class Ptr>
  struct BlockTensors;
  struct BlockActivations;
  BlockTensors<const void*> block_params(size_t l) const;
  BlockTensors<float*> block_grads(size_t l);
  BlockActivations block_activations(size_t l) const;
  void ensure_activations(int B, int T);
  // The strides of the per-layer slices (act_layer_stride_) at this (B, T).
  void set_layer_strides(int B, int T);
  // Block l's forward from its input at (B, T), with training's attention (cache_pos < 0) or the
  // cached one. With `recompute` (the backward pass of model.recompute block) it refills the
  // block's activations and leaves its output, residual3[l], alone: that is kept, not recomputed.
  void block_forward(size_t l, int B, int T, int cache_pos, bool recompute);
  // The first `rows` rows of the logits buffer on the host: fp32, without the padding columns.
  std::vector<float> logits_rows(size_t rows) const;
  // Embedding, blocks and final layernorm of (B, T) tokens already in act(aInputs). With
  // cache_pos < 0 the blocks use training's attention (saving lse for backward); else the
  // cached attention with the tokens at positions cache_pos...
  void forward_trunk(int B, int T, int cache_pos);
  float run_forward(const int32_t* inputs, const int32_t* targets, int B, int T, float dloss);
  void run_backward(int B, int T);
  // Tensor `index` of the compute copy, `offset` elements in.
  const void* param(int index, size_t offset = 0) const {
    return static_cast<const char*>(params_compute_) + (layout_[index].offset + offset) * dtype_size(dtype_);
  }
  float* grad(int index, size_t offset = 0) { return grads_ + layout_[index].offset + offset; }
  // Activation buffer `index`, `offset` elements in (compute dtype, or 4-byte for wide ones).
  void* act(int index, size_t offset = 0) const {
    return static_cast<char*>(act_ptrs_[index]) + offset * act_elem_bytes_[index];
  }
  float* stat(int index, size_t offset = 0) const { return static_cast<float*>(act(index, offset)); }

  Backend& backend_;
  GPTConfig cfg_;
  std::vector<ParamTensor> layout_;
  size_t num_params_ = 0;
  DType dtype_;
  float* params_ = nullptr;
  void* params_compute_ = nullptr;  // == params_ in fp32
  float* grads_ = nullptr;
  std::function<void(int group)> backward_hook_;
  // Activations are planned for the largest (B, T) seen; smaller batches reuse them.
  int act_B_ = 0, act_T_ = 0;
  int last_B_ = 0, last_T_ = 0;
  void* act_memory_ = nullptr;
  std::vector<void*> act_ptrs_;
  std::vector<size_t> act_elem_bytes_;
  size_t act_bytes_ = 0;
  // Elements from one layer's slice of each activation buffer to the next at (last_B_, last_T_);
  // 0 for a buffer that all layers share (recomputed in backward) or that has no layer axis.
  std::vector<size_t> act_layer_stride_;
  bool skip_recompute_for_testing_ = false;
  // Generation: k and v caches, (L, B, NH, capacity, HS) each, in the compute dtype.
  void* kv_memory_ = nullptr;
  int gen_B_ = 0, gen_capacity_ = 0, gen_pos_ = 0;
};

}  // namespace lmt
