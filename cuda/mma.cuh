// Warp-level tensor-core building blocks (sm_80 and later): mma.sync m16n8k16 with fp32
// accumulators on bf16 or fp16 operands, ldmatrix m8n8 (x1, x2, x4, .trans) and cp.async with
// its commit and wait groups. Inline PTX on a GPU; under LMTRAIN_CUDA_EMU the emulator's model
// of each (cuda/emu/mma_emu.h), with the same per-lane fragment layouts.
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"; g = lane / 4,
// t = lane % 4), two 16-bit elements per 32-bit register, the lower index in the lower half:
//   A (16x16, row-major) uint32_t[4]: {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}
//   B (16x8, k x n, "col") uint32_t[2]: {(2t..2t+1, g), (2t+8..2t+9, g)}
//   C/D (16x8) float[4]: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)
// ldmatrix: lanes 8j..8j+7 give the addresses of the 8 rows (16 bytes each) of matrix j, and
// register j of lane l receives row l/4, columns 2(l%4) and 2(l%4)+1 of it (.trans: column l/4,
// rows 2(l%4) and 2(l%4)+1). So a non-transposed load of rows that are the fragment's rows gives
// A (x4) or B when B's columns are the stored rows (K in Q K^T), and .trans gives B when its k
// index runs along the stored rows (V in P V).
#pragma once
#include <cstdint>

#include "cuda/common.cuh"
#ifdef LMTRAIN_CUDA_EMU
#include "cuda/emu/mma_emu.h"
#endif

namespace lmt::cuda {

// Two floats rounded to T (__nv_bfloat16 or __half) in one 32-bit register, lo in the lower half.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack_pair<__nv_bfloat16>(float lo, float hi) {
#ifdef LMTRAIN_CUDA_EMU
  return static_cast<uint32_t>(::lmt::f32_to_bf16(lo)) | static_cast<uint32_t>(::lmt::f32_to_bf16(hi)) << 16;
#else
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&pair);
#endif
}

template <>
__device__ __forceinline__ uint32_t pack_pair<__half>(float lo, float hi) {
#ifdef LMTRAIN_CUDA_EMU
  return static_cast<uint32_t>(::lmt::f32_to_f16(lo)) | static_cast<uint32_t>(::lmt::f32_to_f16(hi)) << 16;
#else
  const __half2 pair = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&pair);
#endif
}

// p[0], p[1] = lo, hi rounded to T; p is 4-byte aligned (one 32-bit store on a GPU).
template <typename T>
__device__ __forceinline__ void store_pair(T* p, float lo, float hi) {
#ifdef LMTRAIN_CUDA_EMU
  p[0] = from_float<T>(lo);
  p[1] = from_float<T>(hi);
#else
  *reinterpret_cast<uint32_t*>(p) = pack_pair<T>(lo, hi);
#endif
}

// d += a b; T names the operand type.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]);

template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::mma_m16n8k16(d, a, b, ::lmt::emu::WarpOp::kMmaBF16);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::mma_m16n8k16(d, a, b, ::lmt::emu::WarpOp::kMmaF16);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

#ifndef LMTRAIN_CUDA_EMU
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// row: this lane's row address in shared memory (16-byte aligned), as described above.
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::ldmatrix(r, 4, row, false);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row))
               : "memory");
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::ldmatrix(r, 4, row, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row))
               : "memory");
#endif
}

// Lanes 0..15 give the row addresses (the others' are ignored).
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::ldmatrix(r, 2, row, false);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row))
               : "memory");
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::ldmatrix(r, 2, row, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row))
               : "memory");
#endif
}

// 16 bytes global -> shared, bypassing L1 (.cg); with valid false nothing is read and the 16
// bytes are zeros (src-size 0), for rows past the end. Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src, bool valid = true) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::cp_async(shared_dst, global_src, 16, valid ? 16 : 0);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared_dst)),
               "l"(global_src), "r"(valid ? 16 : 0)
               : "memory");
#endif
}

// 4 bytes global -> shared through L1 (.ca), zeros when !valid; both addresses 4-byte aligned.
__device__ __forceinline__ void cp_async_4(void* shared_dst, const void* global_src, bool valid = true) {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::cp_async(shared_dst, global_src, 4, valid ? 4 : 0);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(shared_dst)),
               "l"(global_src), "r"(valid ? 4 : 0)
               : "memory");
#endif
}

// Closes the group of this thread's cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `Pending` of this thread's newest committed groups are still in flight.
// Other threads see the copies only after a barrier that follows their issuers' waits.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef LMTRAIN_CUDA_EMU
  ::lmt::emu::cp_async_wait(Pending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

}  // namespace lmt::cuda
