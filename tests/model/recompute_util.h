// Helpers for the model.recompute tests (tests/model/test_recompute.cpp on the CPU, the [recompute]
// cases of tests/cuda_ops in the CUDA emulator): a few AdamW steps of one GPT with everything a
// recompute could change recorded bit for bit, and backends that count what is allocated.
#pragma once
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace lmt::testing {

// What a recompute must leave unchanged, bit for bit.
struct TrainingTrace {
  std::vector<float> losses;                          // every micro batch's mean loss
  std::vector<std::vector<float>> grads;              // the gradient arena after each step's backward passes
  std::vector<std::vector<float>> params;             // the parameters after each step's update
  std::vector<std::pair<int, std::vector<float>>> hooks;  // each backward hook call: group, the whole arena then
};

// `steps` AdamW steps of a GPT of shape `cfg` (its recompute field included) on `backend`, each of two
// micro batches (gradient accumulation): the first step at (B, T) = (3, cfg.max_seq_len), the
// later ones at (2, cfg.max_seq_len - 3), a prefix of the arena the first one allocated. With
// `skip_recompute` the model's test fault is on (GPT::skip_recompute_for_testing).
inline TrainingTrace trace_training(Backend& backend, const GPTConfig& cfg, int steps, bool skip_recompute = false) {
  GPT model(backend, cfg);
  model.init_weights(21, 0.1);  // larger than GPT-2's 0.02: every layer's gradient well away from 0
  model.skip_recompute_for_testing(skip_recompute);
  AdamW optimizer(backend, OptimizerConfig{}, model.layout(), model.num_param_storage());
  TrainingTrace trace;
  model.set_backward_hook([&](int group) { trace.hooks.emplace_back(group, model.get_gradients()); });
  uint64_t seed = 100;
  for (int step = 0; step < steps; ++step) {
    const int B = step == 0 ? 3 : 2, T = step == 0 ? cfg.max_seq_len : cfg.max_seq_len - 3;
    model.zero_grad();
    for (int micro = 0; micro < 2; ++micro) {
      const auto inputs = random_tokens(static_cast<size_t>(B) * T, cfg.vocab_size, seed++);
      const auto targets = random_tokens(static_cast<size_t>(B) * T, cfg.vocab_size, seed++);
      trace.losses.push_back(model.forward_backward(inputs.data(), targets.data(), B, T, 0.5f));
    }
    trace.grads.push_back(model.get_gradients());
    optimizer.step(model.params(), model.grads(), 1e-2f, optimizer.grad_norm(model.grads()));
    model.parameters_changed();
    trace.params.push_back(model.get_parameters());
  }
  backend.synchronize();
  return trace;
}

// Differences between two traces, by what differs ("grads step 0": 17 elements, ...); empty when
// they are the same bits.
inline std::map<std::string, size_t> trace_differences(const TrainingTrace& a, const TrainingTrace& b) {
  std::map<std::string, size_t> out;
  auto compare = [&](const std::string& what, const std::vector<float>& x, const std::vector<float>& y) {
    if (const size_t n = differing_bits(x, y)) out[what] = n;
  };
  compare("losses", a.losses, b.losses);
  auto compare_all = [&](const std::string& what, const auto& xs, const auto& ys) {
    if (xs.size() != ys.size()) out[what + " count"] = 1;
    for (size_t i = 0; i < std::min(xs.size(), ys.size()); ++i) compare(what + " " + std::to_string(i), xs[i], ys[i]);
  };
  compare_all("grads step", a.grads, b.grads);
  compare_all("params step", a.params, b.params);
  if (a.hooks.size() != b.hooks.size()) out["hook calls"] = 1;
  for (size_t i = 0; i < std::min(a.hooks.size(), b.hooks.size()); ++i) {
    if (a.hooks[i].first != b.hooks[i].first) out["hook group " + std::to_string(i)] = 1;
    compare("grads at hook call " + std::to_string(i), a.hooks[i].second, b.hooks[i].second);
  }
  return out;
}

inline std::string describe(const std::map<std::string, size_t>& differences) {
  std::string text;
  for (const auto& [what, n] : differences) text += "\n  " + what + ": " + std::to_string(n);
  return text.empty() ? " none" : text;
}

// The allocations a backend has handed out: their sizes, the live bytes and their peak.
struct AllocationAccount {
  std::map<void*, size_t> sizes;
  size_t live = 0, peak = 0;
  void add(void* ptr, size_t bytes) {
    sizes[ptr] = bytes;
    live += bytes;
    peak = std::max(peak, live);
  }
  // The bytes of ptr, now freed (false: not one of ours).
  bool remove(void* ptr, size_t& bytes) {
    auto it = sizes.find(ptr);
    if (it == sizes.end()) return false;
    bytes = it->second;
    live -= bytes;
    sizes.erase(it);
    return true;
  }
};

// Forwards everything to another backend and adds up the bytes allocated through it (the live
// bytes and their peak).
class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(Backend& inner) : inner_(inner) {}
  size_t live_bytes() const { return account_.live; }
  size_t peak_bytes() const { return account_.peak; }

  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  void* alloc(size_t bytes) override {
    void* ptr = inner_.alloc(bytes);
    account_.add(ptr, bytes);
    return ptr;
  }
  void free(void* ptr) override {
    size_t bytes = 0;
    account_.remove(ptr, bytes);
    inner_.free(ptr);
  }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { inner_.copy_to_device(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { inner_.copy_to_host(dst, src, bytes); }
  void zero(void* ptr, size_t bytes) override { inner_.zero(ptr, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { inner_.copy(dst, src, bytes); }
  void synchronize() override { inner_.synchronize(); }
  void convert_from_f32(void* dst, const float* src, size_t n) override { inner_.convert_from_f32(dst, src, n); }
#define LMT_OP(ret, name, params, args, flops) \
  ret name params override { return inner_.name args; }
#include "core/ops.def"

 private:
  Backend& inner_;
  AllocationAccount account_;
};

// A backend that only keeps accounts: alloc reserves address space nobody may touch (PROT_NONE,
// so a stray access faults) and every op does nothing. A GPT on it allocates exactly as on a real
// backend, so GPT-2-sized arenas can be measured without the memory or the time.
class LedgerBackend final : public Backend {
 public:
  explicit LedgerBackend(DType dtype) : dtype_(dtype) {}
  ~LedgerBackend() override {
    for (const auto& [ptr, bytes] : account_.sizes) ::munmap(ptr, bytes == 0 ? 1 : bytes);
  }
  size_t live_bytes() const { return account_.live; }
  size_t peak_bytes() const { return account_.peak; }

  std::string name() const override { return "ledger"; }
  DType compute_dtype() const override { return dtype_; }
  void* alloc(size_t bytes) override {
    void* ptr = ::mmap(nullptr, bytes == 0 ? 1 : bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ptr == MAP_FAILED) throw std::bad_alloc();
    account_.add(ptr, bytes);
    return ptr;
  }
  void free(void* ptr) override {
    if (size_t bytes = 0; account_.remove(ptr, bytes)) ::munmap(ptr, bytes == 0 ? 1 : bytes);
  }
  void copy_to_device(void*, const void*, size_t) override {}
  void copy_to_host(void*, const void*, size_t) override {}
  void zero(void*, size_t) override {}
  void copy(void*, const void*, size_t) override {}
  void synchronize() override {}
  void convert_from_f32(void*, const float*, size_t) override {}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define LMT_OP(ret, name, params, args, flops) \
  ret name params override { return ret(); }
#include "core/ops.def"
#pragma GCC diagnostic pop

 private:
  DType dtype_;
  AllocationAccount account_;
};

}  // namespace lmt::testing
