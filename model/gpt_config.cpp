#include "model/gpt_config.h"

#include <numeric>

#include "model/gpt_tensors.h"

namespace lmt {

GPTConfig GPTConfig::from(const ModelConfig& model, int64_t vocab_size) {
  GPTConfig cfg;
  cfg.num_layers = static_cast<int>(model.n_layer);
  cfg.num_heads = static_cast<int>(model.n_head);
  cfg.channels = static_cast<int>(model.n_embd);
  cfg.max_seq_len = static_cast<int>(model.max_seq_len);
  cfg.vocab_size = static_cast<int>(vocab_size);
  cfg.padded_vocab_size = pad_vocab(cfg.vocab_size, static_cast<int>(model.vocab_pad_to));
  cfg.recompute = model.recompute;
  return cfg;
}

std::vector<ParamTensor> parameter_layout(const GPTConfig& cfg) {
  const int64_t L = cfg.num_layers, C = cfg.channels, Vp = cfg.padded_vocab_size;
  const int64_t maxT = cfg.max_seq_len;
  std::vector<ParamTensor> tensors = {
#define LMT_PARAMETER(id, name, shape, decay) {name, LMT_GPT_SHAPE shape, 0, 0, decay},
      LMT_GPT_PARAMETERS(LMT_PARAMETER)
#undef LMT_PARAMETER
  };
  size_t offset = 0;
  for (auto& t : tensors) {
    t.numel = std::accumulate(t.shape.begin(), t.shape.end(), size_t{1},
                              [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
    t.offset = offset;
    offset += t.numel;
  }
  return tensors;
}

size_t parameter_storage_count(const GPTConfig& cfg) {
  auto layout = parameter_layout(cfg);
  return layout.back().offset + layout.back().numel;
}

int64_t parameter_count(const GPTConfig& cfg) {
  const int64_t padding_rows = cfg.padded_vocab_size - cfg.vocab_size;
  return static_cast<int64_t>(parameter_storage_count(cfg)) - padding_rows * cfg.channels;
}

double flops_per_token(const GPTConfig& cfg, int T) {
  return 6.0 * static_cast<double>(parameter_count(cfg)) +
         6.0 * cfg.num_layers * static_cast<double>(cfg.channels) * T;
}

namespace {

// How many layer slices a buffer of model/gpt_tensors.h holds (see the list there).
enum LayerSlices { kOne, kAllLayers, kLayersAtNone, kLayersBelowBlock };

bool keeps_every_layer(LayerSlices slices, Recompute recompute) {
  switch (slices) {
    case kOne: return false;
    case kAllLayers: return true;
    case kLayersAtNone: return recompute == Recompute::kNone;
    case kLayersBelowBlock: return recompute != Recompute::kBlock;
  }
  return true;
}

}  // namespace

std::vector<ActivationBuffer> activation_layout(const GPTConfig& cfg, int B, int T) {
  const size_t L = cfg.num_layers, C = cfg.channels, NH = cfg.num_heads;
  const size_t BT = static_cast<size_t>(B) * T, Vp = cfg.padded_vocab_size;
  // Where a buffer keeps every layer's slice, each slice starts 128 elements (256 bytes at 2 bytes,
  // 512 at 4) after a multiple of them: every layer's slice is as aligned as the one slice all
  // layers share at another model.recompute, so a GEMM whose plan depends on its operands'
  // alignment (cuBLASLt's) picks the same algorithm, and the same bits, at every choice.
  auto buffer = [&](const char* name, size_t slice, LayerSlices slices, bool wide) {
    if (!keeps_every_layer(slices, cfg.recompute)) return ActivationBuffer{name, slice, wide, 0};
    const size_t stride = (slice + 127) / 128 * 128;
    return ActivationBuffer{name, (L - 1) * stride + slice, wide, stride};
  };
  return {
#define LMT_ACTIVATION(id, name, numel, slices, wide) buffer(name, numel, slices, wide),
      LMT_GPT_ACTIVATIONS(LMT_ACTIVATION)
#undef LMT_ACTIVATION
  };
}

size_t activation_bytes(const GPTConfig& cfg, int B, int T, size_t compute_bytes, std::vector<size_t>* offsets) {
  // A 256-byte boundary is what vectorized kernels and cuBLASLt like best.
  auto round_up = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  size_t total = 0;
  if (offsets) offsets->clear();
  for (const auto& a : activation_layout(cfg, B, T)) {
    if (offsets) offsets->push_back(total);
    total += round_up(a.numel * (a.wide ? 4 : compute_bytes));
  }
  return total;
}

MemoryEstimate estimate_memory(const GPTConfig& cfg, int B, int T, DType dtype) {
  const double n = static_cast<double>(parameter_storage_count(cfg));
  const double low = static_cast<double>(dtype_size(dtype));
  MemoryEstimate m;
  m.parameters = n * low;
  m.master_weights = dtype == DType::kF32 ? 0.0 : n * 4.0;
  m.gradients = n * 4.0;  // fp32 at every precision (accumulated across micro-batches)
  m.optimizer_state = n * 8.0;
  m.activations = static_cast<double>(activation_bytes(cfg, B, T, static_cast<size_t>(low)));
  return m;
}

}  // namespace lmt
