// GPT shape and the layouts derived from it: which parameter tensors exist, where they live in
// the single parameter arena, how many activations a (B, T) batch needs, and what it costs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/recipe.h"

namespace lmt {

struct GPTConfig {
  int max_seq_len = 1024;        // maxT
  int vocab_size = 50257;        // V
  int padded_vocab_size = 50304; // Vp
  int num_layers = 12;           // L
  int num_heads = 12;            // NH
  int channels = 768;            // C
  // Not a shape: which activations the backward pass recomputes (model.recompute). It changes the
  // activation arena and the work, never a result; checkpoints do not record it.
  Recompute recompute = Recompute::kNone;

  // The model section's shape with its vocabulary (model.vocab_size, or the data's when that is
  // 0: resolved by the caller) padded to a multiple of model.vocab_pad_to.
  static GPTConfig from(const ModelConfig& model, int64_t vocab_size);

  // vocab_size rounded up to a multiple of pad_to.
  static int pad_vocab(int vocab_size, int pad_to) {
    return (vocab_size + pad_to - 1) / pad_to * pad_to;
  }
};

// The shape's fields under the names of the model section, which checkpoints (trainer_state.json)
// and the reference fixtures use too.
struct GPTConfigField {
  const char* name;
  int GPTConfig::*member;
};
inline constexpr GPTConfigField kGPTConfigFields[] = {
    {"n_layer", &GPTConfig::num_layers},   {"n_head", &GPTConfig::num_heads},
    {"n_embd", &GPTConfig::channels},      {"max_seq_len", &GPTConfig::max_seq_len},
    {"vocab_size", &GPTConfig::vocab_size}, {"padded_vocab_size", &GPTConfig::padded_vocab_size}};

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;     // in elements, into the parameter arena
  size_t numel = 0;      // storage elements (wte includes the padded rows)
  bool weight_decay = false;  // decayed: matrices and embeddings; not: biases, layernorm
};

// The 16 parameter tensors in llm.c order, layers stacked: wte, wpe, ln1w, ln1b, qkvw, qkvb,
// attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb.
std::vector<ParamTensor> parameter_layout(const GPTConfig& cfg);
size_t parameter_storage_count(const GPTConfig& cfg);  // including wte's padded rows
int64_t parameter_count(const GPTConfig& cfg);         // the model's true parameter count

// Training FLOPs per token: 6N + 6*L*C*T (llm.c's estimate; attention is causal).
double flops_per_token(const GPTConfig& cfg, int T);

// One entry per activation buffer for a (B, T) batch at cfg.recompute, in storage order
// (model/gpt_tensors.h): saved activations for backward, backward scratch, token buffers.
struct ActivationBuffer {
  std::string name;
  size_t numel = 0;  // elements of the whole buffer
  // 4-byte elements at every precision: fp32 statistics (layernorm mean/rstd, attention
  // log-sum-exp, losses) and int32 token ids. The rest hold the compute dtype.
  bool wide = false;
  // Elements from one layer's slice to the next where the buffer keeps every layer's (a slice's
  // elements rounded up to a multiple of 128, so each slice is 256-byte aligned); 0 where the
  // layers share one slice (recomputed in backward) or there is no layer axis.
  size_t layer_stride = 0;
};
std::vector<ActivationBuffer> activation_layout(const GPTConfig& cfg, int B, int T);
// Bytes of the activation arena GPT allocates for a (B, T) batch with compute elements of
// `compute_bytes` bytes (4 for fp32, 2 for bf16/fp16): each buffer starts on a 256-byte boundary.
// `offsets` (optional) receives each buffer's byte offset into the arena.
size_t activation_bytes(const GPTConfig& cfg, int B, int T, size_t compute_bytes,
                        std::vector<size_t>* offsets = nullptr);

// Memory per rank, in bytes, for a given precision.
struct MemoryEstimate {
  double parameters = 0;  // working copy at the compute precision
  double master_weights = 0;  // fp32 copy when computing in 16 bits
  double gradients = 0;
  double optimizer_state = 0;  // Adam m and v in fp32
  double activations = 0;  // the activation arena at the config's model.recompute
  double total() const {
    return parameters + master_weights + gradients + optimizer_state + activations;
  }
};
// What GPT and AdamW allocate through the backend for a (B, T) micro batch (the trainer's own
// buffers, library workspaces and allocator overhead are not in it).
MemoryEstimate estimate_memory(const GPTConfig& cfg, int B, int T, DType dtype);

}  // namespace lmt
