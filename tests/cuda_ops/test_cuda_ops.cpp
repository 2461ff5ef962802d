// Every op of the CUDA backend against the CPU reference backend, on fresh random inputs (never
// zeros) and odd shapes (T=37, C=96, NH=3, V=101), with every output poisoned (NaN) before the
// run so that an element a kernel forgets to write fails the comparison.
//
// Built twice (tests/CMakeLists.txt): against the real CUDA backend (test_cuda_ops: skips with the
// reason where no GPU is visible) and against the CPU emulator of cuda/emu/ (test_cuda_emu: runs
// everywhere, GPT-2-sized cases excepted because the emulator runs one GPU thread at a time).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "model/sampling.h"
#include "tests/cpu/cpu_test_util.h"
#include "tests/cuda_ops/cuda_test_util.h"
#ifdef LMTRAIN_CUDA_EMU
#include "cuda/emu/emu_hooks.h"
#endif

namespace {

using lmt::Backend;
using lmt::testing::check_close;

// Tolerances, pass when |x - ref| <= atol + rtol * |ref| for every element and, for the 16-bit
// types, the relative L2 error ||x - ref|| / ||ref|| is at most rel_l2. The CPU reference runs
// in fp32 on the same inputs rounded to the tested type, so the error measured is that of
// computing and storing in the type: fp32 differs from the CPU only in summation order (and
// libm vs CUDA exp); bf16 keeps 8 bits of mantissa (2^-8 = 0.4% per rounding), fp16 11.
struct Tolerance {
  double atol, rtol, rel_l2;
};
constexpr Tolerance kF32Tol{1e-5, 1e-4, 1e-5};
constexpr Tolerance kBF16Tol{2e-2, 2e-2, 5e-3};
constexpr Tolerance kF16Tol{3e-3, 3e-3, 6e-4};
Tolerance tolerance_for(lmt::DType dtype) {
  return dtype == lmt::DType::kF32 ? kF32Tol : dtype == lmt::DType::kBF16 ? kBF16Tol : kF16Tol;
}
constexpr lmt::DType kAllTypes[] = {lmt::DType::kF32, lmt::DType::kBF16, lmt::DType::kF16};

// GPT-2-sized cases take minutes in the emulator; they run on real GPUs only.
#define SKIP_IN_EMULATOR()                                                               \
  do {                                                                                   \
    if (lmt::cuda::is_emulator()) {                                                      \
      WARN("SKIPPED: GPT-2 shapes run on a real GPU only (the emulator is too slow)"); \
      return;                                                                            \
    }                                                                                    \
  } while (0)

std::vector<float> rounded(const std::vector<float>& values, lmt::DType dtype) {
  std::vector<uint16_t> raw(values.size());
  std::vector<float> out(values.size());
  if (dtype == lmt::DType::kF32) return values;
  lmt::convert_from_f32(raw.data(), dtype, values.data(), values.size());
  lmt::convert_to_f32(out.data(), raw.data(), dtype, values.size());
  return out;
}

// Buffers on one backend, uploaded from host vectors, freed at scope exit. put/get move
// activations (the backend's compute dtype; inputs are first rounded to `input_dtype`, the type
// under test), put32/get32 buffers that are always fp32.
class Device {
 public:
  Device(Backend& backend, lmt::DType input_dtype) : backend_(backend), input_dtype_(input_dtype) {}
  ~Device() {
    for (void* ptr : owned_) backend_.free(ptr);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  void* put(const std::vector<float>& host) {
    const std::vector<float> values = rounded(host, input_dtype_);
    const lmt::DType dtype = backend_.compute_dtype();
    std::vector<char> raw(values.size() * lmt::dtype_size(dtype));
    lmt::convert_from_f32(raw.data(), dtype, values.data(), values.size());
    return upload(raw.data(), raw.size());
  }
  float* put32(const std::vector<float>& host) {
    return static_cast<float*>(upload(host.data(), host.size() * sizeof(float)));
  }
  const int32_t* put(const std::vector<int32_t>& host) {
    return static_cast<const int32_t*>(upload(host.data(), host.size() * sizeof(int32_t)));
  }
  void* poisoned(size_t n) { return put(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN())); }
  // The same `elements` into a buffer, as a model tensor sits at an offset into the arena: its
  // address is only as aligned as the element size (2 bytes in bf16/fp16).
  void* put_at_offset(const std::vector<float>& host, size_t elements) {
    std::vector<float> padded(elements, std::numeric_limits<float>::quiet_NaN());
    padded.insert(padded.end(), host.begin(), host.end());
    return static_cast<char*>(put(padded)) + elements * lmt::dtype_size(backend_.compute_dtype());
  }
  void* poisoned_at_offset(size_t n, size_t elements) {
    return put_at_offset(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()), elements);
  }
  float* poisoned32(size_t n) { return put32(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN())); }
  std::vector<float> get(const void* ptr, size_t n) {
    const lmt::DType dtype = backend_.compute_dtype();
    backend_.synchronize();
    std::vector<char> raw(n * lmt::dtype_size(dtype));
    backend_.copy_to_host(raw.data(), ptr, raw.size());
    std::vector<float> out(n);
    lmt::convert_to_f32(out.data(), raw.data(), dtype, n);
    return out;
  }
  std::vector<float> get32(const float* ptr, size_t n) {
    backend_.synchronize();
    std::vector<float> host(n);
    backend_.copy_to_host(host.data(), ptr, n * sizeof(float));
    return host;
  }
  Backend& backend() { return backend_; }

 private:
  void* upload(const void* data, size_t bytes) {
    void* ptr = backend_.alloc(bytes);
    owned_.push_back(ptr);
    backend_.copy_to_device(ptr, data, bytes);
    return ptr;
  }
  Backend& backend_;
  lmt::DType input_dtype_;
  std::vector<void*> owned_;
};

using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

void check_rel_l2(const std::vector<float>& actual, const std::vector<float>& expected, double limit,
                  const std::string& what) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    diff += (static_cast<double>(actual[i]) - expected[i]) * (static_cast<double>(actual[i]) - expected[i]);
    ref += static_cast<double>(expected[i]) * expected[i];
  }
  const double rel = ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
  INFO(what << ": relative L2 error " << rel << " (limit " << limit << ")");
  CHECK(rel <= limit);  // also fails on NaN
}

// Runs `run` on the CPU reference and on the CUDA backend computing in `dtype`, and compares
// every named output. In the emulator the CUDA side runs once per schedule (the outputs must be
// the same bits under each), so `run` may be called more than twice; with every_schedule false
// (the GPT-2-sized cases, which the ctest rerun under another schedule covers) only once.
void compare_backends(const std::function<Outputs(Device&)>& run, lmt::DType dtype = lmt::DType::kF32,
                      Tolerance tol = kF32Tol, bool fuse_gelu = true, bool every_schedule = true) {
  auto cpu = lmt::cpu::make_cpu_backend(0);  // every core: the GPT-2-sized reference is heavy
  lmt::cuda::CudaOptions options;
  options.dtype = dtype;
  options.fuse_gelu = fuse_gelu;
  Outputs expected, actual;
  {
    Device device(*cpu, dtype);
    expected = run(device);
  }
#ifdef LMTRAIN_CUDA_EMU
  // In the emulator the CUDA side runs under every schedule, on a new backend each time (its
  // cached plans would hide the hooks' refusals), and must give the same bits each time.
  auto run_cuda = [&] {
    auto gpu = lmt::cuda::make_cuda_backend(options);
    Device device(*gpu, dtype);
    return run(device);
  };
  actual = every_schedule ? lmt::testing::same_bits_under_every_schedule(run_cuda) : run_cuda();
#else
  (void)every_schedule;
  {
    auto gpu = lmt::cuda::make_cuda_backend(options);
    Device device(*gpu, dtype);
    actual = run(device);
  }
#endif
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const std::string what = std::string(lmt::dtype_name(dtype)) + " " + actual[i].first;
    check_close(actual[i].second, expected[i].second, tol.atol, tol.rtol, what);
    if (dtype != lmt::DType::kF32) check_rel_l2(actual[i].second, expected[i].second, tol.rel_l2, what);
  }
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, double scale = 1.0) {
  return lmt::testing::to_float(lmt::testing::random_vector(n, rng, scale));
}

std::vector<int32_t> random_tokens(size_t n, int vocab, std::mt19937& rng) {
  return lmt::testing::random_tokens(n, vocab, rng);
}

size_t sz(long long n) { return static_cast<size_t>(n); }

}  // namespace

TEST_CASE("cuda encoder: forward and deterministic backward match the CPU", "[cuda][encoder]") {
  SKIP_WITHOUT_GPU();
  const int B = 2, T = 37, C = 96, V = 101, max_T = 40;
  std::mt19937 rng(1);
  // Few distinct tokens so that rows of dwte receive many positions.
  const auto tokens = random_tokens(sz(B * T), 7, rng);
  const auto wte = random_floats(sz(V * C), rng), wpe = random_floats(sz(max_T * C), rng);
  const auto dout = random_floats(sz(B * T * C), rng);
  const auto dwte0 = random_floats(sz(V * C), rng), dwpe0 = random_floats(sz(max_T * C), rng);
  for (const lmt::DType dtype : kAllTypes) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      compare_backends(
          [&](Device& d) {
            void* out = d.poisoned(sz(B * T * C));
            float* dwte = d.put32(dwte0);
            float* dwpe = d.put32(dwpe0);
            const int32_t* tok = d.put(tokens);
            d.backend().encoder_forward(out, tok, d.put(wte), d.put(wpe), B, T, C);
            d.backend().encoder_backward(dwte, dwpe, d.put(dout), tok, B, T, C);
            return Outputs{{"out", d.get(out, sz(B * T * C))},
                           {"dwte (accumulated)", d.get32(dwte, dwte0.size())},
                           {"dwpe (accumulated)", d.get32(dwpe, dwpe0.size())}};
          },
          dtype, tolerance_for(dtype));
    }
  }
}

TEST_CASE("cuda layernorm: forward and backward match the CPU", "[cuda][layernorm]") {
  SKIP_WITHOUT_GPU();
  for (const auto& [N, C] : {std::pair{74, 96}, std::pair{300, 37}, std::pair{5, 768}}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION("N=" << N << " C=" << C << " " << lmt::dtype_name(dtype)) {
        std::mt19937 rng(static_cast<unsigned>(N + C));
        auto inp = random_floats(sz(N * C), rng, 2.0);
        for (size_t i = 0; i < inp.size(); ++i) inp[i] += 0.5f;  // a mean away from zero
        const auto weight = random_floats(sz(C), rng), bias = random_floats(sz(C), rng);
        const auto dout = random_floats(sz(N * C), rng);
        const auto dinp0 = random_floats(sz(N * C), rng);
        const auto dw0 = random_floats(sz(C), rng), db0 = random_floats(sz(C), rng);
        compare_backends(
            [&](Device& d) {
              void* out = d.poisoned(sz(N * C));
              float* mean = d.poisoned32(sz(N));
              float* rstd = d.poisoned32(sz(N));
              const void* in = d.put(inp);
              const void* w = d.put(weight);
              d.backend().layernorm_forward(out, mean, rstd, in, w, d.put(bias), N, C);
              void* dinp = d.put(dinp0);
              float* dw = d.put32(dw0);
              float* db = d.put32(db0);
              d.backend().layernorm_backward(dinp, dw, db, d.put(dout), in, w, mean, rstd, N, C);
              return Outputs{{"out", d.get(out, sz(N * C))},           {"mean", d.get32(mean, sz(N))},
                             {"rstd", d.get32(rstd, sz(N))},           {"dinp (accumulated)", d.get(dinp, sz(N * C))},
                             {"dweight", d.get32(dw, sz(C))},          {"dbias", d.get32(db, sz(C))}};
            },
            dtype, tolerance_for(dtype));
      }
    }
  }
}

TEST_CASE("cuda matmul: forward, backward and the residual form match the CPU", "[cuda][matmul]") {
  SKIP_WITHOUT_GPU();
  for (const auto& [N, C, OC] : {std::tuple{74, 96, 288}, std::tuple{37, 101, 33}, std::tuple{300, 64, 128}}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION("N=" << N << " C=" << C << " OC=" << OC << " " << lmt::dtype_name(dtype)) {
        std::mt19937 rng(static_cast<unsigned>(N * C + OC));
        const auto inp = random_floats(sz(N * C), rng), weight = random_floats(sz(OC * C), rng, 0.2);
        const auto bias = random_floats(sz(OC), rng), dout = random_floats(sz(N * OC), rng);
        const auto residual = random_floats(sz(N * OC), rng);
        const auto dw0 = random_floats(sz(OC * C), rng), db0 = random_floats(sz(OC), rng);
        compare_backends(
            [&](Device& d) {
              Backend& b = d.backend();
              const void* in = d.put(inp);
              const void* w = d.put(weight);
              const void* bi = d.put(bias);
              void* out = d.poisoned(sz(N * OC));
              b.matmul_forward(out, in, w, bi, N, C, OC);
              void* out_nobias = d.poisoned(sz(N * OC));
              b.matmul_forward(out_nobias, in, w, nullptr, N, C, OC);
              void* out_residual = d.poisoned(sz(N * OC));
              b.matmul_residual_forward(out_residual, d.put(residual), in, w, bi, N, C, OC);
              void* dinp = d.poisoned(sz(N * C));
              float* dw = d.put32(dw0);
              float* db = d.put32(db0);
              const void* g = d.put(dout);
              b.matmul_backward(dinp, dw, db, g, in, w, N, C, OC);
              // null dinp and dbias: only dweight accumulates (a second time)
              b.matmul_backward(nullptr, dw, nullptr, g, in, w, N, C, OC);
              return Outputs{{"out", d.get(out, sz(N * OC))},
                             {"out without bias", d.get(out_nobias, sz(N * OC))},
                             {"residual + out", d.get(out_residual, sz(N * OC))},
                             {"dinp", d.get(dinp, sz(N * C))},
                             {"dweight (accumulated twice)", d.get32(dw, sz(OC * C))},
                             {"dbias", d.get32(db, sz(OC))}};
            },
            dtype, tolerance_for(dtype));
      }
    }
  }
}

// The weight gradient here sums 74 products of inputs that went through two roundings in 16
// bits (pre, then gelu(pre)): elementwise, a few of its 36864 elements land about 1e-2 (bf16)
// from the fp32 reference, so the elementwise bounds are 3 times the usual; the relative L2
// bound is unchanged.
//
// In fp32 the fused path is cuBLASLt's GELU epilogue, which its documentation calls the tanh
// approximation without saying how tanh is computed. A hardware tanh (tanh.approx.f32, relative
// error at most 2^-11) moves 0.5 x (1 + tanh u) by up to 0.5 |x| 2^-11, 1.2e-3 at |x| = 5 (the
// largest pre-activations here): that, not our tanhf's 1e-5, is the bound that holds on any GPU.
Tolerance gelu_tolerance(lmt::DType dtype, bool fused) {
  Tolerance t = tolerance_for(dtype);
  if (dtype != lmt::DType::kF32) {
    t.atol *= 3;
    t.rtol *= 3;
  } else if (fused && !lmt::cuda::is_emulator()) {
    t.atol = 3e-3;
    t.rtol = 1e-3;
  }
  return t;
}

TEST_CASE("cuda matmul with GELU: the fused epilogues and the unfused ops match the CPU", "[cuda][matmul][gelu]") {
  SKIP_WITHOUT_GPU();
  const int N = 74, C = 96, OC = 384;  // the MLP's shapes: C -> 4C -> C
  std::mt19937 rng(21);
  const auto inp = random_floats(sz(N * C), rng), weight = random_floats(sz(OC * C), rng, 0.2);
  const auto bias = random_floats(sz(OC), rng), proj = random_floats(sz(C * OC), rng, 0.1);
  const auto dout = random_floats(sz(N * C), rng);
  const auto dw0 = random_floats(sz(C * OC), rng), db0 = random_floats(sz(C), rng);
  for (const bool fused : {true, false}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION((fused ? "fused " : "unfused ") << lmt::dtype_name(dtype)) {
        compare_backends(
            [&](Device& d) {
              Backend& b = d.backend();
              void* pre = d.poisoned(sz(N * OC));
              void* out = d.poisoned(sz(N * OC));
              b.matmul_gelu_forward(pre, out, d.put(inp), d.put(weight), d.put(bias), N, C, OC);
              // The second layer's backward through the GELU: dpre = (dout @ proj) * gelu'(pre).
              void* dpre = d.poisoned(sz(N * OC));
              float* dw = d.put32(dw0);
              float* db = d.put32(db0);
              b.matmul_backward_gelu(dpre, dw, db, d.put(dout), out, d.put(proj), pre, N, OC, C);
              return Outputs{{"pre", d.get(pre, sz(N * OC))},
                             {"gelu(pre)", d.get(out, sz(N * OC))},
                             {"dpre", d.get(dpre, sz(N * OC))},
                             {"dweight (accumulated)", d.get32(dw, sz(C * OC))},
                             {"dbias (accumulated)", d.get32(db, sz(C))}};
            },
            dtype, gelu_tolerance(dtype, fused), fused);
      }
    }
  }
}

// The model's tensors are offsets into one arena: with n_embd % 8 != 0 in bf16/fp16 a bias or
// a GELU's aux output sits 2 bytes off any larger alignment. cuBLASLt must be planned for that
// alignment, the epilogue pointers included (the heuristic reads them from the descriptor).
TEST_CASE("cuda matmul: bias and GELU aux at element offsets, as in the arena, match the CPU",
          "[cuda][matmul][alignment]") {
  SKIP_WITHOUT_GPU();
  const int N = 37, C = 100, OC = 300;
  std::mt19937 rng(33);
  const auto inp = random_floats(sz(N * C), rng), weight = random_floats(sz(OC * C), rng, 0.2);
  const auto bias = random_floats(sz(OC), rng), proj = random_floats(sz(C * OC), rng, 0.1);
  const auto dout = random_floats(sz(N * C), rng);
  for (const bool fused : {true, false}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION((fused ? "fused " : "unfused ") << lmt::dtype_name(dtype)) {
        compare_backends(
            [&](Device& d) {
              Backend& b = d.backend();
              const void* in = d.put(inp);
              const void* w = d.put(weight);
              const void* bi = d.put_at_offset(bias, 1);
              void* out = d.poisoned_at_offset(sz(N * OC), 1);
              b.matmul_forward(out, in, w, bi, N, C, OC);
              void* pre = d.poisoned_at_offset(sz(N * OC), 1);
              void* act = d.poisoned_at_offset(sz(N * OC), 3);
              b.matmul_gelu_forward(pre, act, in, w, bi, N, C, OC);
              void* dpre = d.poisoned_at_offset(sz(N * OC), 1);
              float* dw = d.put32(std::vector<float>(sz(C * OC), 0.0f));
              b.matmul_backward_gelu(dpre, dw, nullptr, d.put(dout), act, d.put(proj), pre, N, OC, C);
              return Outputs{{"out", d.get(out, sz(N * OC))},
                             {"pre", d.get(pre, sz(N * OC))},
                             {"gelu(pre)", d.get(act, sz(N * OC))},
                             {"dpre", d.get(dpre, sz(N * OC))},
                             {"dweight", d.get32(dw, sz(C * OC))}};
            },
            dtype, gelu_tolerance(dtype, fused), fused);
      }
    }
  }
}

#ifdef LMTRAIN_CUDA_EMU
// cuBLASLt can answer a GELU epilogue with an algorithm whose state is not SUCCESS, or refuse it
// at launch (NOT_SUPPORTED): both must fall back to the unfused ops, not abort. The emulator's
// hooks make it refuse; a real GPU does so only on some shapes and versions.
TEST_CASE("cuda matmul with GELU: a refused epilogue falls back to the unfused ops (emulator hooks)",
          "[cuda][matmul][gelu]") {
  const int N = 20, C = 64, OC = 256;
  std::mt19937 rng(5);
  const auto inp = random_floats(sz(N * C), rng), weight = random_floats(sz(OC * C), rng, 0.2);
  const auto bias = random_floats(sz(OC), rng), proj = random_floats(sz(C * OC), rng, 0.1);
  const auto dout = random_floats(sz(N * C), rng);
  for (const auto& [heuristic, launch] : {std::pair{1, 0}, std::pair{0, 1}, std::pair{0, 2}}) {
    DYNAMIC_SECTION("refused by the heuristic " << heuristic << "x, at launch " << launch << "x") {
      compare_backends(
          [&](Device& d) {
            Backend& b = d.backend();
            const bool on_emulator = b.name() == "cuda-emulator";
            if (on_emulator) lmt::emu::cublaslt_inject_unsupported(heuristic, launch);
            const void* in = d.put(inp);
            void* pre = d.poisoned(sz(N * OC));
            void* act = d.poisoned(sz(N * OC));
            b.matmul_gelu_forward(pre, act, in, d.put(weight), d.put(bias), N, C, OC);
            void* dpre = d.poisoned(sz(N * OC));
            float* dw = d.put32(std::vector<float>(sz(C * OC), 0.0f));
            b.matmul_backward_gelu(dpre, dw, nullptr, d.put(dout), act, d.put(proj), pre, N, OC, C);
            if (on_emulator) CHECK(lmt::emu::cublaslt_injections_left() == 0);
            return Outputs{{"pre", d.get(pre, sz(N * OC))},
                           {"gelu(pre)", d.get(act, sz(N * OC))},
                           {"dpre", d.get(dpre, sz(N * OC))},
                           {"dweight", d.get32(dw, sz(C * OC))}};
          },
          lmt::DType::kF32, kF32Tol, true);
    }
  }
}
#endif

// Attention forward then backward of qkv and dout on d's backend: out, lse and dqkv.
Outputs run_attention(Device& d, const std::vector<float>& qkv, const std::vector<float>& dout, int B, int T, int C,
                      int NH) {
    Backend& b = d.backend();
    const void* in = d.put(qkv);
    void* out = d.poisoned(sz(B * T * C));
    float* lse = d.poisoned32(sz(B * NH * T));
    b.attention_forward(out, lse, in, B, T, C, NH);
    void* dqkv = d.poisoned(sz(B * T * 3 * C));
    b.attention_backward(dqkv, d.put(dout), in, out, lse, B, T, C, NH);
    return Outputs{{"out", d.get(out, sz(B * T * C))},
                   {"lse", d.get32(lse, sz(B * NH * T))},
                   {"dqkv", d.get(dqkv, sz(B * T * 3 * C))}};
}

// Attention forward and backward of fresh random inputs (seeded by `seed`) against the CPU.
// every_schedule false: one schedule only (see compare_backends).
void check_attention(int B, int T, int C, int NH, lmt::DType dtype, unsigned seed, bool every_schedule = true) {
  std::mt19937 rng(seed);
  const auto qkv = random_floats(sz(B * T * 3 * C), rng);
  const auto dout = random_floats(sz(B * T * C), rng);
  compare_backends([&](Device& d) { return run_attention(d, qkv, dout, B, T, C, NH); }, dtype, tolerance_for(dtype),
                   true, every_schedule);
}

TEST_CASE("cuda attention: forward and backward match the CPU for head sizes 32, 64, 128", "[cuda][attention]") {
  SKIP_WITHOUT_GPU();
  // (B, T, C, NH): odd T everywhere so that partial tiles are exercised.
  for (const auto& [B, T, C, NH] : {std::tuple{2, 37, 96, 3}, std::tuple{1, 70, 128, 2}, std::tuple{2, 33, 128, 1},
                                    std::tuple{1, 1, 64, 2}}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION("B=" << B << " T=" << T << " C=" << C << " NH=" << NH << " " << lmt::dtype_name(dtype)) {
        check_attention(B, T, C, NH, dtype, static_cast<unsigned>(B * 1000 + T * 10 + NH));
      }
    }
  }
}

// The tensor-core path (cuda/attention_mma.cu: bf16 and fp16 at head sizes 64 and 128) at odd
// and GPT-2 shapes: T=1 (one query, one masked tile), 37 (a partial tile), 64 (exactly one),
// 130 and 200 (three and four tiles, the last partial, double-buffered), up to B*NH = 48 heads.
// T=1024 at B*NH = 48: below.
void check_tensor_core_attention(int B, int T, int C, int NH, lmt::DType dtype, bool every_schedule = true) {
  check_attention(B, T, C, NH, dtype, static_cast<unsigned>(B * 7919 + T * 31 + C + NH), every_schedule);
}

TEST_CASE("cuda tensor-core attention: bf16 and fp16 match the CPU at head sizes 64 and 128", "[cuda][attention]") {
  SKIP_WITHOUT_GPU();
  // (B, T, NH, HS)
  for (const auto& [B, T, NH, HS] : {std::tuple{2, 1, 3, 64}, std::tuple{1, 1, 2, 128}, std::tuple{2, 37, 3, 64},
                                     std::tuple{3, 37, 2, 128}, std::tuple{1, 64, 2, 64}, std::tuple{1, 64, 1, 128},
                                     std::tuple{1, 200, 2, 64}, std::tuple{1, 130, 1, 128}}) {
    for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
      DYNAMIC_SECTION("B=" << B << " T=" << T << " NH=" << NH << " HS=" << HS << " " << lmt::dtype_name(dtype)) {
        check_tensor_core_attention(B, T, NH * HS, NH, dtype);
      }
    }
  }
}

// [gpt2]: GPT-2's 12 heads; it runs in the emulator too (2-4 s a case), but neither under ASan
// nor under the GPU check's compute-sanitizer steps.
TEST_CASE("cuda tensor-core attention at B*NH = 48 heads matches the CPU", "[cuda][attention][gpt2]") {
  SKIP_WITHOUT_GPU();
#ifdef LMTRAIN_EMU_ASAN
  WARN("SKIPPED: a minute under ASan; test_cuda_emu runs it, the fewer-head cases run here");
  return;
#endif
  for (const auto& [B, T, NH, HS] : {std::tuple{4, 64, 12, 64}, std::tuple{4, 64, 12, 128}, std::tuple{4, 37, 12, 64}}) {
    for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
      DYNAMIC_SECTION("B=" << B << " T=" << T << " NH=" << NH << " HS=" << HS << " " << lmt::dtype_name(dtype)) {
        check_tensor_core_attention(B, T, NH * HS, NH, dtype, false);  // one schedule: see compare_backends
      }
    }
  }
}

#ifdef LMTRAIN_CUDA_EMU
// T=1024 at B*NH = 48 heads in the emulator: all 48 heads would take minutes, so a block filter
// (emu::set_block_filter) runs only the blocks of three heads, the first, one inside and the
// last (b, h) of the batch; they are compared with the CPU, which computes every head. The other
// heads' outputs stay poisoned. The heads' offsets into qkv, out, lse and dqkv are what 48 heads
// exercise; the rows inside a head are those of every other test.
void check_tensor_core_attention_sampled_heads(int B, int T, int NH, int HS, lmt::DType dtype) {
  const int C = NH * HS;
  const std::vector<std::pair<int, int>> heads = {{0, 0}, {B / 2, NH / 2 + 1}, {B - 1, NH - 1}};  // (b, h)
  std::mt19937 rng(static_cast<unsigned>(B * 7919 + T * 31 + C + NH));
  const auto qkv = random_floats(sz(B * T * 3 * C), rng);
  const auto dout = random_floats(sz(B * T * C), rng);
  auto run = [&](Device& d) { return run_attention(d, qkv, dout, B, T, C, NH); };
  auto cpu = lmt::cpu::make_cpu_backend(0);
  Outputs expected, actual;
  {
    Device device(*cpu, dtype);
    expected = run(device);
  }
  {
    lmt::cuda::CudaOptions options;
    options.dtype = dtype;
    auto gpu = lmt::cuda::make_cuda_backend(options);
    lmt::emu::set_block_filter([&](lmt::emu::BlockIndex block, lmt::emu::BlockIndex) {
      return std::find(heads.begin(), heads.end(), std::pair<int, int>(block.z, block.y)) != heads.end();
    });
    Device device(*gpu, dtype);
    actual = run(device);
    lmt::emu::set_block_filter({});
  }
  // The elements of head (b, h): out's and each third of dqkv's columns h*HS.., lse's row (b, h).
  for (const auto& [b, h] : heads) {
    INFO("head b=" << b << " h=" << h);
    for (size_t i = 0; i < actual.size(); ++i) {
      std::vector<float> got, want;
      const std::string& name = actual[i].first;
      if (name == "lse") {
        const size_t row = (sz(b) * NH + h) * T;
        got.assign(actual[i].second.begin() + row, actual[i].second.begin() + row + T);
        want.assign(expected[i].second.begin() + row, expected[i].second.begin() + row + T);
      } else {
        const int parts = name == "out" ? 1 : 3;
        for (int t = 0; t < T; ++t)
          for (int part = 0; part < parts; ++part) {
            const size_t at = (sz(b) * T + t) * parts * C + sz(part) * C + sz(h) * HS;
            got.insert(got.end(), actual[i].second.begin() + at, actual[i].second.begin() + at + HS);
            want.insert(want.end(), expected[i].second.begin() + at, expected[i].second.begin() + at + HS);
          }
      }
      const Tolerance tol = tolerance_for(dtype);
      const std::string what = std::string(lmt::dtype_name(dtype)) + " " + name;
      check_close(got, want, tol.atol, tol.rtol, what);
      check_rel_l2(got, want, tol.rel_l2, what);
    }
  }
}
#endif

TEST_CASE("cuda tensor-core attention at T=1024 and B*NH = 48 heads matches the CPU", "[cuda][attention][gpt2]") {
  SKIP_WITHOUT_GPU();
#ifdef LMTRAIN_EMU_ASAN
  WARN("SKIPPED: T=1024 takes minutes under ASan; test_cuda_emu runs it, the shorter cases run here");
  return;
#endif
  // GPT-2 124M's heads (B=4, NH=12, HS 64) and 6 heads of 128 (B=8).
  for (const auto& [B, NH, HS] : {std::tuple{4, 12, 64}, std::tuple{8, 6, 128}}) {
    for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
      DYNAMIC_SECTION("B=" << B << " NH=" << NH << " HS=" << HS << " " << lmt::dtype_name(dtype)) {
#ifdef LMTRAIN_CUDA_EMU
        // Three of the 48 heads, about 6 s each; the shorter cases cover fp16 here.
        if (dtype == lmt::DType::kBF16) check_tensor_core_attention_sampled_heads(B, 1024, NH, HS, dtype);
#else
        check_tensor_core_attention(B, 1024, NH * HS, NH, dtype, false);
#endif
      }
    }
  }
}

// The tensor-core kernels need 16-byte aligned rows; a tensor 2 bytes into a buffer takes the
// fp32-math kernels instead, with the same results.
TEST_CASE("cuda tensor-core attention: unaligned buffers fall back to the fp32-math kernels", "[cuda][attention]") {
  SKIP_WITHOUT_GPU();
  const int B = 1, T = 37, NH = 2, C = 128;
  std::mt19937 rng(77);
  const auto qkv = random_floats(sz(B * T * 3 * C), rng), dout = random_floats(sz(B * T * C), rng);
  compare_backends(
      [&](Device& d) {
        Backend& b = d.backend();
        const void* in = d.put_at_offset(qkv, 1);
        void* out = d.poisoned_at_offset(sz(B * T * C), 1);
        float* lse = d.poisoned32(sz(B * NH * T));
        b.attention_forward(out, lse, in, B, T, C, NH);
        void* dqkv = d.poisoned_at_offset(sz(B * T * 3 * C), 1);
        b.attention_backward(dqkv, d.put_at_offset(dout, 1), in, out, lse, B, T, C, NH);
        return Outputs{{"out", d.get(out, sz(B * T * C))},
                       {"lse", d.get32(lse, sz(B * NH * T))},
                       {"dqkv", d.get(dqkv, sz(B * T * 3 * C))}};
      },
      lmt::DType::kBF16, kBF16Tol);
}

TEST_CASE("cuda cached attention: prefill and one-token steps match the CPU", "[cuda][attention][generate]") {
  SKIP_WITHOUT_GPU();
  // (B, prompt, steps, capacity, C, NH): a prefill of `prompt` positions, then one-token steps.
  for (const auto& [B, P, S, cap, C, NH] : {std::tuple{2, 5, 4, 16, 96, 3}, std::tuple{1, 33, 3, 40, 64, 1},
                                            std::tuple{3, 1, 2, 3, 64, 2}}) {
    for (const lmt::DType dtype : kAllTypes) {
      DYNAMIC_SECTION("B=" << B << " prompt=" << P << " C=" << C << " NH=" << NH << " " << lmt::dtype_name(dtype)) {
        std::mt19937 rng(static_cast<unsigned>(B * 100 + P * 10 + NH));
        std::vector<std::vector<float>> qkvs = {random_floats(sz(B * P * 3 * C), rng)};
        for (int s = 0; s < S; ++s) qkvs.push_back(random_floats(sz(B * 3 * C), rng));
        compare_backends(
            [&](Device& d) {
              Backend& b = d.backend();
              void* k_cache = d.poisoned(sz(B * cap * C));
              void* v_cache = d.poisoned(sz(B * cap * C));
              Outputs outputs;
              int pos = 0;
              for (size_t i = 0; i < qkvs.size(); ++i) {
                const int Tn = i == 0 ? P : 1;
                void* out = d.poisoned(sz(B * Tn * C));
                b.attention_cached_forward(out, k_cache, v_cache, d.put(qkvs[i]), B, Tn, pos, cap, C, NH);
                outputs.push_back({"out of step " + std::to_string(i), d.get(out, sz(B * Tn * C))});
                pos += Tn;
              }
              // The positions written so far: every (b, h) row of the caches up to pos.
              std::vector<float> k = d.get(k_cache, sz(B * cap * C)), v = d.get(v_cache, sz(B * cap * C)), kept;
              const int HS = C / NH;
              for (const auto* cache : {&k, &v})
                for (int row = 0; row < B * NH; ++row)
                  kept.insert(kept.end(), cache->begin() + static_cast<long>(row) * cap * HS,
                              cache->begin() + (static_cast<long>(row) * cap + pos) * HS);
              outputs.push_back({"caches", kept});
              return outputs;
            },
            dtype, tolerance_for(dtype));
      }
    }
  }
}

TEST_CASE("cuda attention: unsupported head sizes are a clear error", "[cuda][attention]") {
  SKIP_WITHOUT_GPU();
  auto gpu = lmt::cuda::make_cuda_backend({});
  void* buffer = gpu->alloc(3 * 48 * sizeof(float));
  float* p = static_cast<float*>(buffer);
  CHECK_THROWS_WITH(gpu->attention_forward(p, p, p, 1, 1, 48, 3),
                    Catch::Contains("head sizes 32, 64 and 128") && Catch::Contains("n_embd 48 / n_head 3"));
  gpu->free(buffer);
}

// A micro-batch can be empty (the last one of a small eval split, a rank with no tokens): every
// op must then do nothing, not launch an empty grid (cudaErrorInvalidConfiguration on a GPU).
TEST_CASE("cuda ops: empty batches are no-ops", "[cuda][empty]") {
  SKIP_WITHOUT_GPU();
  for (const lmt::DType dtype : kAllTypes) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      lmt::cuda::CudaOptions options;
      options.dtype = dtype;
      auto gpu = lmt::cuda::make_cuda_backend(options);
      Backend& b = *gpu;
      const int C = 64, V = 101, Vp = 128;
      void* buffer = b.alloc(sz(4 * Vp * C) * sizeof(float));
      float* f = static_cast<float*>(buffer);
      const auto* tokens = static_cast<const int32_t*>(buffer);
      for (const auto& [B, T] : {std::pair{0, 16}, std::pair{2, 0}}) {
        INFO("B=" << B << " T=" << T);
        const int N = B * T;
        b.encoder_forward(f, tokens, f, f, B, T, C);
        b.encoder_backward(f, f, f, tokens, B, T, C);
        b.layernorm_forward(f, f, f, f, f, f, N, C);
        b.layernorm_backward(f, f, f, f, f, f, f, f, N, C);
        b.matmul_forward(f, f, f, f, N, C, C);
        b.matmul_backward(f, f, f, f, f, f, N, C, C);
        b.matmul_gelu_forward(f, f, f, f, f, N, C, 4 * C);
        b.matmul_backward_gelu(f, f, f, f, f, f, f, N, 4 * C, C);
        b.matmul_residual_forward(f, f, f, f, f, N, C, C);
        b.attention_forward(f, f, f, B, T, C, 2);
        b.attention_backward(f, f, f, f, f, B, T, C, 2);
        b.gelu_forward(f, f, sz(N * C));
        b.gelu_backward(f, f, f, sz(N * C));
        b.residual_forward(f, f, f, sz(N * C));
        b.classifier_forward_backward(f, f, f, tokens, 1.0f, N, V, Vp);
      }
      b.adamw_update(f, f, f, f, 0, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1);
      CHECK(b.sum_squares(f, 0) == 0.0);
      b.synchronize();
      b.free(buffer);
    }
  }
}

// A GPU that cannot be used is the user's to fix: an lmt::Error naming the device, not an abort.
TEST_CASE("cuda backend: a device that cannot be used is an lmt::Error naming it", "[cuda][device]") {
  SKIP_WITHOUT_GPU();
  lmt::cuda::CudaOptions options;
  options.device = lmt::cuda::visible_device_count();  // one past the last
  CHECK_THROWS_WITH(lmt::cuda::make_cuda_backend(options),
                    Catch::Contains("CUDA device " + std::to_string(options.device) + " cannot be used") &&
                        Catch::Contains("CUDA_VISIBLE_DEVICES"));
#ifdef LMTRAIN_CUDA_EMU
  // Busy or exclusive-process: the emulator refuses device 0 as such a GPU would.
  lmt::emu::make_device_unavailable(0);
  options.device = 0;
  CHECK_THROWS_WITH(lmt::cuda::make_cuda_backend(options), Catch::Contains("CUDA device 0 cannot be used") &&
                                                                Catch::Contains("busy or unavailable") &&
                                                                Catch::Contains("nvidia-smi"));
  lmt::emu::make_device_unavailable(-1);
  CHECK_NOTHROW(lmt::cuda::make_cuda_backend(options));
#endif
}

#ifdef LMTRAIN_CUDA_EMU
// The shared-memory opt-in of the attention kernels (above 48 KiB at head size 128) belongs to
// a kernel on one device: a process that moves to a second GPU must opt in there too. The
// emulator shows two devices and refuses a launch that did not opt in on the current one.
TEST_CASE("cuda attention: the shared-memory opt-in is made on each device (emulator, 2 devices)",
          "[cuda][attention]") {
  lmt::emu::set_device_count(2);
  const int B = 1, T = 20, C = 128, NH = 1;
  std::mt19937 rng(9);
  const auto qkv = random_floats(sz(B * T * 3 * C), rng), dout = random_floats(sz(B * T * C), rng);
  std::vector<std::vector<float>> dqkv_per_device;
  for (const int device : {0, 1}) {
    lmt::cuda::CudaOptions options;
    options.device = device;
    auto gpu = lmt::cuda::make_cuda_backend(options);
    Device d(*gpu, lmt::DType::kF32);
    const void* in = d.put(qkv);
    void* out = d.poisoned(sz(B * T * C));
    float* lse = d.poisoned32(sz(B * NH * T));
    gpu->attention_forward(out, lse, in, B, T, C, NH);
    void* dqkv = d.poisoned(sz(B * T * 3 * C));
    gpu->attention_backward(dqkv, d.put(dout), in, out, lse, B, T, C, NH);
    dqkv_per_device.push_back(d.get(dqkv, sz(B * T * 3 * C)));
  }
  lmt::emu::set_device_count(1);
  CHECK(dqkv_per_device[0] == dqkv_per_device[1]);
}
#endif

TEST_CASE("cuda gelu, residual and the parameter conversion: match the CPU, in place too", "[cuda][gelu]") {
  SKIP_WITHOUT_GPU();
  const size_t n = 3 * 1000 + 7;
  std::mt19937 rng(5);
  const auto inp = random_floats(n, rng, 4.0), dout = random_floats(n, rng), other = random_floats(n, rng);
  for (const lmt::DType dtype : kAllTypes) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      compare_backends(
          [&](Device& d) {
            Backend& b = d.backend();
            const void* in = d.put(inp);
            void* out = d.poisoned(n);
            b.gelu_forward(out, in, n);
            void* dinp = d.poisoned(n);
            b.gelu_backward(dinp, in, d.put(dout), n);
            void* in_place = d.put(dout);
            b.gelu_backward(in_place, in, in_place, n);
            void* sum = d.poisoned(n);
            b.residual_forward(sum, in, d.put(other), n);
            void* converted = d.poisoned(n);
            b.convert_from_f32(converted, d.put32(inp), n);
            return Outputs{{"gelu", d.get(out, n)},
                           {"dinp", d.get(dinp, n)},
                           {"dinp aliasing dout", d.get(in_place, n)},
                           {"residual", d.get(sum, n)},
                           {"fp32 -> compute dtype", d.get(converted, n)}};
          },
          dtype, tolerance_for(dtype));
    }
  }
}

TEST_CASE("cuda parameter conversion rounds to nearest even, like the host", "[cuda][convert]") {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(15);
  auto values = random_floats(4099, rng, 100.0);
  values[0] = 70000.0f;  // fp16 overflow: inf
  values[1] = 1e-7f;     // fp16 subnormal
  for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
    lmt::cuda::CudaOptions options;
    options.dtype = dtype;
    auto gpu = lmt::cuda::make_cuda_backend(options);
    Device d(*gpu, lmt::DType::kF32);
    void* out = d.poisoned(values.size());
    gpu->convert_from_f32(out, d.put32(values), values.size());
    std::vector<uint16_t> expected(values.size()), actual(values.size());
    lmt::convert_from_f32(expected.data(), dtype, values.data(), values.size());
    gpu->synchronize();
    gpu->copy_to_host(actual.data(), out, actual.size() * 2);
    CHECK(actual == expected);
  }
}

TEST_CASE("cuda classifier: losses and dlogits match the CPU, padding ignored", "[cuda][classifier]") {
  SKIP_WITHOUT_GPU();
  const int N = 74, V = 101, Vp = 128;
  std::mt19937 rng(6);
  auto logits = random_floats(sz(N * Vp), rng, 5.0);
  // Padding holds huge values: a kernel that reads it gets the loss badly wrong.
  for (int r = 0; r < N; ++r)
    for (int v = V; v < Vp; ++v) logits[sz(r * Vp + v)] = 1e4f;
  const auto targets = random_tokens(sz(N), V, rng);
  const float dloss = 1.0f / N;
  for (const lmt::DType dtype : kAllTypes) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      compare_backends(
          [&](Device& d) {
            Backend& b = d.backend();
            const int32_t* t = d.put(targets);
            float* losses_only = d.poisoned32(sz(N));
            b.classifier_forward_backward(nullptr, losses_only, d.put(logits), t, dloss, N, V, Vp);
            float* losses = d.poisoned32(sz(N));
            void* dlogits = d.poisoned(sz(N * Vp));
            b.classifier_forward_backward(dlogits, losses, d.put(logits), t, dloss, N, V, Vp);
            void* aliased = d.put(logits);
            float* losses_aliased = d.poisoned32(sz(N));
            b.classifier_forward_backward(aliased, losses_aliased, aliased, t, dloss, N, V, Vp);
            return Outputs{{"losses (no gradient)", d.get32(losses_only, sz(N))},
                           {"losses", d.get32(losses, sz(N))},
                           {"dlogits", d.get(dlogits, sz(N * Vp))},
                           {"losses (aliased)", d.get32(losses_aliased, sz(N))},
                           {"dlogits aliasing logits", d.get(aliased, sz(N * Vp))}};
          },
          dtype, tolerance_for(dtype));
    }
  }
}

TEST_CASE("cuda adamw and sum of squares: match the CPU", "[cuda][adamw]") {
  SKIP_WITHOUT_GPU();
  const size_t n = 100003;
  std::mt19937 rng(7);
  const auto params = random_floats(n, rng), grads = random_floats(n, rng, 0.1);
  auto m0 = random_floats(n, rng, 0.01), v0 = random_floats(n, rng, 0.001);
  for (float& x : v0) x = std::abs(x);
  std::vector<double> squares;  // the CPU's, then the GPU's (once per schedule in the emulator)
  compare_backends([&](Device& d) {
    Backend& b = d.backend();
    float* p = d.put32(params);
    float* m = d.put32(m0);
    float* v = d.put32(v0);
    const float* g = d.put32(grads);
    squares.push_back(b.sum_squares(g, n));
    for (int t = 1; t <= 3; ++t) b.adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
    return Outputs{{"params", d.get32(p, n)}, {"m", d.get32(m, n)}, {"v", d.get32(v, n)}};
  });
  REQUIRE(squares.size() >= 2);
  CHECK(squares[1] == Approx(squares[0]).epsilon(1e-10));
  for (size_t i = 2; i < squares.size(); ++i) CHECK(std::memcmp(&squares[i], &squares[1], sizeof(double)) == 0);
  // An overflowed fp16 step shows as a non-finite sum (the loss scaler skips the step).
  auto gpu = lmt::cuda::make_cuda_backend({});
  Device d(*gpu, lmt::DType::kF32);
  auto with_inf = grads;
  with_inf[n / 2] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(std::isfinite(gpu->sum_squares(d.put32(with_inf), n)));
}

TEST_CASE("cuda backward ops are deterministic: the same inputs give the same bits", "[cuda][determinism]") {
  SKIP_WITHOUT_GPU();
  auto gpu = lmt::cuda::make_cuda_backend({});
  const int B = 2, T = 37, C = 96, NH = 3, V = 11;
  std::mt19937 rng(8);
  const auto tokens = random_tokens(sz(B * T), V, rng);
  const auto dout = random_floats(sz(B * T * C), rng), qkv = random_floats(sz(B * T * 3 * C), rng);
  const auto inp = random_floats(sz(B * T * C), rng), weight = random_floats(sz(C), rng);
  auto run = [&] {
    Device d(*gpu, lmt::DType::kF32);
    Backend& b = d.backend();
    float* dwte = d.put32(std::vector<float>(sz(V * C), 0.0f));
    float* dwpe = d.put32(std::vector<float>(sz(T * C), 0.0f));
    b.encoder_backward(dwte, dwpe, d.put(dout), d.put(tokens), B, T, C);
    void* out = d.poisoned(sz(B * T * C));
    float* lse = d.poisoned32(sz(B * NH * T));
    const void* q = d.put(qkv);
    b.attention_forward(out, lse, q, B, T, C, NH);
    void* dqkv = d.poisoned(sz(B * T * 3 * C));
    b.attention_backward(dqkv, d.put(dout), q, out, lse, B, T, C, NH);
    float* mean = d.poisoned32(sz(B * T));
    float* rstd = d.poisoned32(sz(B * T));
    void* ln = d.poisoned(sz(B * T * C));
    const void* in = d.put(inp);
    const void* w = d.put(weight);
    b.layernorm_forward(ln, mean, rstd, in, w, w, B * T, C);
    void* dinp = d.put(std::vector<float>(sz(B * T * C), 0.0f));
    float* dw = d.put32(std::vector<float>(sz(C), 0.0f));
    float* db = d.put32(std::vector<float>(sz(C), 0.0f));
    b.layernorm_backward(dinp, dw, db, d.put(dout), in, w, mean, rstd, B * T, C);
    std::vector<float> all;
    for (auto part : {d.get32(dwte, sz(V * C)), d.get32(dwpe, sz(T * C)), d.get(dqkv, sz(B * T * 3 * C)),
                      d.get(dinp, sz(B * T * C)), d.get32(dw, sz(C)), d.get32(db, sz(C))})
      all.insert(all.end(), part.begin(), part.end());
    return all;
  };
  const auto first = run(), second = run();
  REQUIRE(first.size() == second.size());
  size_t differing = 0;
  for (size_t i = 0; i < first.size(); ++i)
    differing += std::memcmp(&first[i], &second[i], sizeof(float)) != 0 ? 1 : 0;
  CHECK(differing == 0);
#ifdef LMTRAIN_CUDA_EMU
  // And under every schedule of the emulator: no order of threads or blocks changes a bit.
  lmt::testing::same_bits_under_every_schedule([&] { return lmt::testing::NamedOutputs{{"gradients", run()}}; });
#endif
}

TEST_CASE("cuda tensor-core attention backward is deterministic: the same inputs give the same bits",
          "[cuda][determinism][attention]") {
  SKIP_WITHOUT_GPU();
  for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      lmt::cuda::CudaOptions options;
      options.dtype = dtype;
      auto gpu = lmt::cuda::make_cuda_backend(options);
      const int B = 1, T = 130, C = 128, NH = 2;  // head size 64, three query and key tiles
      std::mt19937 rng(81);
      const auto qkv = random_floats(sz(B * T * 3 * C), rng), dout = random_floats(sz(B * T * C), rng);
      auto run = [&] {
        Device d(*gpu, dtype);
        return run_attention(d, qkv, dout, B, T, C, NH)[2].second;  // dqkv
      };
      const auto first = run(), second = run();
      REQUIRE(first.size() == second.size());
      CHECK(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
    }
  }
}

namespace {

lmt::GPTConfig tiny_gpt() {
  lmt::GPTConfig cfg;
  cfg.max_seq_len = 37;
  cfg.vocab_size = 101;
  cfg.padded_vocab_size = 128;
  cfg.num_layers = 2;
  cfg.num_heads = 2;
  cfg.channels = 64;
  return cfg;
}

// Losses of `steps` AdamW steps and the gradients of the first, on `backend`. With
// repeat_batch every step sees the same batch, so the loss falls fast and a step that does not
// reach the weights the ops read shows.
std::pair<std::vector<float>, std::vector<float>> train_tiny(Backend& backend, int steps, float lr = 1e-3f,
                                                             bool repeat_batch = false) {
  const lmt::GPTConfig cfg = tiny_gpt();
  lmt::GPT model(backend, cfg);
  model.init_weights(11, 0.02);
  lmt::AdamW optimizer(backend, lmt::OptimizerConfig{}, model.layout(), model.num_param_storage());
  std::mt19937 rng(12);
  const int B = 2, T = 37;
  std::vector<float> losses, first_grads;
  std::vector<int32_t> inputs, targets;
  for (int step = 0; step < steps; ++step) {
    if (step == 0 || !repeat_batch) {
      inputs = random_tokens(sz(B * T), cfg.vocab_size, rng);
      targets = random_tokens(sz(B * T), cfg.vocab_size, rng);
    }
    model.zero_grad();
    losses.push_back(model.forward_backward(inputs.data(), targets.data(), B, T, 1.0f));
    if (step == 0) first_grads = model.get_gradients();
    const double norm = optimizer.grad_norm(model.grads());
    optimizer.step(model.params(), model.grads(), lr, norm);
    model.parameters_changed();
  }
  backend.synchronize();
  return {losses, first_grads};
}

}  // namespace

TEST_CASE("cuda training step: a tiny GPT trains like on the CPU in fp32", "[cuda][model]") {
  SKIP_WITHOUT_GPU();
  auto cpu = lmt::cpu::make_cpu_backend(1);
  auto gpu = lmt::cuda::make_cuda_backend({});
  const int steps = 5;
  const auto [cpu_losses, cpu_grads] = train_tiny(*cpu, steps);
  const auto [gpu_losses, gpu_grads] = train_tiny(*gpu, steps);
  // Gradients are sums over the batch; their size is ~1e-3, so an absolute floor of 1e-6.
  check_close(gpu_grads, cpu_grads, 1e-6, 1e-3, "gradients of the first step");
  check_close(gpu_losses, cpu_losses, 0.0, 1e-5, "losses of 5 AdamW steps");
}

TEST_CASE("cuda generation: cached and uncached greedy decoding agree token for token", "[cuda][model][generate]") {
  SKIP_WITHOUT_GPU();
  auto gpu = lmt::cuda::make_cuda_backend({});
  lmt::GPTConfig cfg = tiny_gpt();
  cfg.max_seq_len = 24;  // 12 + 20 tokens: the window slides past the context
  lmt::GPT model(*gpu, cfg);
  model.init_weights(5, 0.3);  // large weights: confident, well separated logits
  std::mt19937 rng(3);
  const std::vector<int32_t> prompt = random_tokens(12, cfg.vocab_size, rng);
  lmt::SamplingOptions greedy;
  greedy.temperature = 0.0;
  const auto cached = lmt::generate_tokens(model, prompt, 2, 20, greedy, true);
  const auto uncached = lmt::generate_tokens(model, prompt, 2, 20, greedy, false);
  CHECK(cached == uncached);
  // The same tokens as the CPU reference.
  auto cpu = lmt::cpu::make_cpu_backend(1);
  lmt::GPT reference(*cpu, cfg);
  reference.init_weights(5, 0.3);
  CHECK(lmt::generate_tokens(reference, prompt, 2, 20, greedy, true) == cached);
}

TEST_CASE("cuda training step: 10 steps in bf16 and fp16 track the CPU's fp32 losses", "[cuda][model]") {
  SKIP_WITHOUT_GPU();
#ifdef LMTRAIN_EMU_ASAN
  WARN("SKIPPED: 3 minutes under ASan; test_cuda_emu runs it, and the op cases run every kernel in bf16 and fp16 here");
  return;
#endif
  auto cpu = lmt::cpu::make_cpu_backend(1);
  const int steps = 10;
  const auto [cpu_losses, cpu_grads] = train_tiny(*cpu, steps, 1e-2f, true);
  REQUIRE(cpu_losses.back() < cpu_losses.front() - 0.5f);  // the comparison below has something to see
  for (const lmt::DType dtype : {lmt::DType::kBF16, lmt::DType::kF16}) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      lmt::cuda::CudaOptions options;
      options.dtype = dtype;
      auto gpu = lmt::cuda::make_cuda_backend(options);
      const auto [losses, grads] = train_tiny(*gpu, steps, 1e-2f, true);
      // Memorizing one batch, the fp32 loss falls from ln 101 = 4.6 to about 1.9 in 10 steps. The
      // rounding differences grow along the way (measured in the emulator: 4% for bf16 and 0.7%
      // for fp16 at step 10), so every step's loss must be within 6% (bf16) / 1.5% (fp16) of
      // fp32's; a step whose update did not reach the compute copy would stay near 4.6. The
      // first step's gradients: within 1e-2 (bf16) / 3e-3 (fp16) relative L2 of fp32's.
      check_close(losses, cpu_losses, 0.0, dtype == lmt::DType::kBF16 ? 6e-2 : 1.5e-2,
                  std::string(lmt::dtype_name(dtype)) + " losses of 10 steps");
      check_rel_l2(grads, cpu_grads, dtype == lmt::DType::kBF16 ? 1e-2 : 3e-3,
                   std::string(lmt::dtype_name(dtype)) + " gradients of the first step");
    }
  }
}

TEST_CASE("cuda ops at GPT-2 124M shapes match the CPU", "[cuda][gpt2]") {
  SKIP_WITHOUT_GPU();
  SKIP_IN_EMULATOR();
  const int B = 2, T = 1024, C = 768, NH = 12, V = 50257, Vp = 50304;
  std::mt19937 rng(9);
  const auto qkv = random_floats(sz(B * T * 3 * C), rng), dout = random_floats(sz(B * T * C), rng);
  const auto logits = random_floats(sz(B * T) * Vp, rng, 3.0);
  const auto targets = random_tokens(sz(B * T), V, rng);
  const auto inp = random_floats(sz(B * T * C), rng), weight = random_floats(sz(4 * C * C), rng, 0.05);
  for (const lmt::DType dtype : kAllTypes) {
    DYNAMIC_SECTION(lmt::dtype_name(dtype)) {
      // fp32: K = 768 products and 1024-long softmax rows in another order; rtol 1e-3.
      const Tolerance tol = dtype == lmt::DType::kF32 ? Tolerance{1e-5, 1e-3, 1e-5} : tolerance_for(dtype);
      compare_backends(
          [&](Device& d) {
            Backend& b = d.backend();
            const void* q = d.put(qkv);
            void* out = d.poisoned(sz(B * T * C));
            float* lse = d.poisoned32(sz(B * NH * T));
            b.attention_forward(out, lse, q, B, T, C, NH);
            void* dqkv = d.poisoned(sz(B * T * 3 * C));
            b.attention_backward(dqkv, d.put(dout), q, out, lse, B, T, C, NH);
            float* losses = d.poisoned32(sz(B * T));
            void* dlogits = d.put(logits);
            b.classifier_forward_backward(dlogits, losses, dlogits, d.put(targets), 1.0f / (B * T), B * T, V, Vp);
            void* fc = d.poisoned(sz(B * T * 4 * C));
            b.matmul_forward(fc, d.put(inp), d.put(weight), nullptr, B * T, C, 4 * C);
            return Outputs{{"attention out", d.get(out, sz(B * T * C))},
                           {"lse", d.get32(lse, sz(B * NH * T))},
                           {"dqkv", d.get(dqkv, sz(B * T * 3 * C))},
                           {"losses", d.get32(losses, sz(B * T))},
                           {"dlogits", d.get(dlogits, sz(B * T) * Vp)},
                           {"fc", d.get(fc, sz(B * T * 4 * C))}};
          },
          dtype, tol);
    }
  }
}
