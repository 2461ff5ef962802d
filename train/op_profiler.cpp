#include "train/op_profiler.h"

#include <algorithm>
#include <type_traits>

namespace lmt {

void ProfilingBackend::book(const char* name, double flops, std::chrono::steady_clock::time_point start) {
  OpTiming& t = timings_[name];
  t.name = name;
  t.calls += 1;
  t.total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  t.flops += flops;
}

template <typename Fn>
auto ProfilingBackend::timed(const char* name, double flops, Fn&& fn) -> decltype(fn()) {
  inner_.synchronize();
  const auto start = std::chrono::steady_clock::now();
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
    inner_.synchronize();
    book(name, flops, start);
  } else {
    auto result = fn();
    inner_.synchronize();
    book(name, flops, start);
    return result;
  }
}

std::vector<OpTiming> ProfilingBackend::timings() const {
  std::vector<OpTiming> out;
  for (const auto& entry : timings_) out.push_back(entry.second);
  std::sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) { return a.total_ms > b.total_ms; });
  return out;
}

void ProfilingBackend::zero(void* ptr, size_t bytes) {
  timed("zero", 0, [&] { inner_.zero(ptr, bytes); });
}

// Each op of core/ops.def: forwarded to the inner backend, timed, its FLOPs booked.
#define LMT_OP(ret, name, params, args, flops) \
  ret ProfilingBackend::name params { return timed(#name, flops, [&] { return inner_.name args; }); }
#include "core/ops.def"

}  // namespace lmt
