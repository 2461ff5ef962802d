// A Backend that forwards every call to another backend and times each op (synchronizing
// before and after, so device ops are timed too): `lmtrain bench --ops`. It adds a little
// overhead per op, which is why plain `lmtrain bench` does not use it.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"

namespace lmt {

struct OpTiming {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0;
  double flops = 0;  // matrix-product FLOPs done by the op (2 per multiply-add), 0 if not counted
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  // Accumulated timings, most expensive first; reset() clears them (after warmup steps).
  std::vector<OpTiming> timings() const;
  void reset() { timings_.clear(); }

  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  void convert_from_f32(void* dst, const float* src, size_t n) override { inner_.convert_from_f32(dst, src, n); }
  void* alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void free(void* ptr) override { inner_.free(ptr); }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { inner_.copy_to_device(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { inner_.copy_to_host(dst, src, bytes); }
  void zero(void* ptr, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override { inner_.copy(dst, src, bytes); }
  void synchronize() override { inner_.synchronize(); }

  // Every op of core/ops.def, composites included (a backend's fused form is timed as one op).
#define LMT_OP(ret, name, params, args, flops) ret name params override;
#include "core/ops.def"

 private:
  // Times fn() between two synchronizations, books it under name and returns what it returns.
  template <typename Fn>
  auto timed(const char* name, double flops, Fn&& fn) -> decltype(fn());
  void book(const char* name, double flops, std::chrono::steady_clock::time_point start);

  Backend& inner_;
  std::map<std::string, OpTiming> timings_;
};

}  // namespace lmt
