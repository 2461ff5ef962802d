// The op interface every backend implements (cpu/ is the reference, cuda/ the fast path).
//
// Conventions (DESIGN.md section 2):
//  - Every op is one line of core/ops.def, which generates the declarations below, the
//    backends' and the profiler's; docs/architecture.md walks through adding one.
//  - Raw buffers plus dims; outputs first, then inputs, then sizes.
//  - Dims: B batch, T sequence, C channels, NH heads, HS = C / NH, V vocab, Vp padded vocab,
//    N = B * T rows, OC output channels.
//  - Gradient rule: parameter gradients accumulate (+=); activation gradients overwrite (=),
//    except the residual stream (layernorm's dinp), which accumulates.
//  - Pointers refer to the backend's memory (host memory for cpu, device memory for cuda).
//  - Precision (DESIGN.md section 3): activations, their gradients and the compute copy of the
//    parameters are `void*` holding compute_dtype() elements (fp32, bf16 or fp16). Buffers that
//    are always fp32 are `float*`: parameter gradients, master weights, Adam moments, layernorm
//    statistics, the attention log-sum-exp and the losses. Reductions run in fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace lmt {

// Backend-owned memory plus the ops. One instance per process; the model holds a reference.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The element type of activations and of the compute copy of the parameters.
  virtual DType compute_dtype() const { return DType::kF32; }

  // --- memory -------------------------------------------------------------------------------
  virtual void* alloc(size_t bytes) = 0;  // zero-initialized
  virtual void free(void* ptr) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* ptr, size_t bytes) = 0;
  // dst = src, both in the backend's memory (they may not overlap).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // dst (n, compute dtype) = src (n, fp32), rounded to nearest even (the compute copy of the
  // parameters after each optimizer step). In fp32 a copy.
  virtual void convert_from_f32(void* dst, const float* src, size_t n) = 0;

  // --- ops: generated from the op list, core/ops.def (each op's contract is written there) ---
#define LMT_OP(ret, name, params, args, flops) virtual ret name params = 0;
#define LMT_COMPOSITE_OP(ret, name, params, args, flops) virtual ret name params;
#include "core/ops.def"
};

}  // namespace lmt
