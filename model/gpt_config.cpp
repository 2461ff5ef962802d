#include "model/gpt_config.h"

#include <numeric>

namespace lmt {

std::vector<ParamTensor> parameter_layout(const GPTConfig& cfg) {
  const int64_t L = cfg.num_layers, C = cfg.channels, Vp = cfg.padded_vocab_size;
  const int64_t maxT = cfg.max_seq_len;
  std::vector<ParamTensor> tensors = {
      {"wte", {Vp, C}, 0, 0, true},
      {"wpe", {maxT, C}, 0, 0, true},
      {"ln1w", {L, C}, 0, 0, false},
      {"ln1b", {L, C}, 0, 0, false},
      {"qkvw", {L, 3 * C, C}, 0, 0, true},
      {"qkvb", {L, 3 * C}, 0, 0, false},
      {"attprojw", {L, C, C}, 0, 0, true},
      {"attprojb", {L, C}, 0, 0, false},
      {"ln2w", {L, C}, 0, 0, false},
      {"ln2b", {L, C}, 0, 0, false},
      {"fcw", {L, 4 * C, C}, 0, 0, true},
      {"fcb", {L, 4 * C}, 0, 0, false},
      {"fcprojw", {L, C, 4 * C}, 0, 0, true},
      {"fcprojb", {L, C}, 0, 0, false},
      {"lnfw", {C}, 0, 0, false},
      {"lnfb", {C}, 0, 0, false},
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

std::vector<ActivationBuffer> activation_layout(const GPTConfig& cfg, int B, int T) {
  const size_t L = cfg.num_layers, C = cfg.channels, NH = cfg.num_heads;
  const size_t BT = static_cast<size_t>(B) * T, Vp = cfg.padded_vocab_size;
  return {
      // saved for backward
      {"encoded", BT * C},          // (B, T, C)
      {"ln1", L * BT * C},          // (L, B, T, C)
      {"ln1_mean", L * BT, true},         // (L, B, T)
      {"ln1_rstd", L * BT, true},         // (L, B, T)
      {"qkv", L * BT * 3 * C},      // (L, B, T, 3C)
      {"atty", L * BT * C},         // (L, B, T, C)
      {"att_lse", L * B * NH * T, true},  // (L, B, NH, T)
      {"residual2", L * BT * C},    // (L, B, T, C)
      {"ln2", L * BT * C},          // (L, B, T, C)
      {"ln2_mean", L * BT, true},         // (L, B, T)
      {"ln2_rstd", L * BT, true},         // (L, B, T)
      {"fch", L * BT * 4 * C},      // (L, B, T, 4C)
      {"fch_gelu", L * BT * 4 * C}, // (L, B, T, 4C)
      {"residual3", L * BT * C},    // (L, B, T, C)
      {"lnf", BT * C},              // (B, T, C)
      {"lnf_mean", BT, true},             // (B, T)
      {"lnf_rstd", BT, true},             // (B, T)
      {"logits", BT * Vp},          // (B, T, Vp); becomes dlogits in training
      {"losses", BT, true},               // (B, T)
      // backward scratch, reused by every layer
      {"dresidual", BT * C},        // (B, T, C) gradient of the residual stream
      {"dln", BT * C},              // (B, T, C)
      {"dqkv", BT * 3 * C},         // (B, T, 3C)
      {"datty", BT * C},            // (B, T, C)
      {"dfch", BT * 4 * C},         // (B, T, 4C) gradient of the GELU's input
      // token ids (int32)
      {"inputs", BT, true},
      {"targets", BT, true},
  };
}

size_t activation_bytes(const GPTConfig& cfg, int B, int T, size_t compute_bytes) {
  size_t total = 0;
  for (const auto& a : activation_layout(cfg, B, T)) total += a.numel * (a.wide ? 4 : compute_bytes);
  return total;
}

MemoryEstimate estimate_memory(const GPTConfig& cfg, int B, int T, const std::string& dtype) {
  const double n = static_cast<double>(parameter_storage_count(cfg));
  const double low = dtype == "fp32" ? 4.0 : 2.0;
  MemoryEstimate m;
  m.parameters = n * low;
  m.master_weights = dtype == "fp32" ? 0.0 : n * 4.0;
  m.gradients = n * 4.0;  // fp32 at every precision (accumulated across micro-batches)
  m.optimizer_state = n * 8.0;
  m.activations = static_cast<double>(activation_bytes(cfg, B, T, static_cast<size_t>(low)));
  return m;
}

}  // namespace lmt
