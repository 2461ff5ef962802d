// Self-tests of the tensor-core building blocks of cuda/mma.cuh (mma.sync, ldmatrix, cp.async),
// one warp or block each, for tests/cuda_ops: in the emulator they check its model of the PTX
// fragment layouts, on a GPU the same tests check that model against the hardware. Plain C++;
// each call allocates, runs and frees its own device memory.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace lmt::cuda {

// How the mma self-test fills or reads its fragments: kNone by the PTX formulas; the others
// plant one wrong index, which must change the result.
enum class FragmentFault {
  kNone,
  kARows,     // a4, a5 taken from row groupID + 8 instead of groupID
  kBColumn,   // b0..b3 taken from column groupID ^ 1
  kCColumns,  // d0 and d1 stored to each other's column
};

// D (16x8) = A (16x16) B (16x8) + C (16x8), row-major; A and B are first rounded to dtype (kBF16
// or kF16). One warp fills the fragments from global memory element by element.
std::vector<float> mma_selftest(DType dtype, const std::vector<float>& a, const std::vector<float>& b,
                                const std::vector<float>& c, FragmentFault fault);

// ldmatrix.x{num}{.trans} of num 8x8 matrices of 16-bit values (matrices[j][row][col], 64 per
// matrix) held in shared memory with a row pitch of 24 elements; returns the 32 lanes' num
// registers (lane-major).
std::vector<uint32_t> ldmatrix_selftest(const std::vector<uint16_t>& matrices, int num, bool trans);

// D = A B (16x16 by 16x8) with both fragments from shared memory by ldmatrix: A by x4; B by x2
// from rows holding B's columns (B^T stored, b_stored_by_k false) or by x2.trans from rows
// holding B's rows (b_stored_by_k true).
std::vector<float> ldmatrix_mma_selftest(DType dtype, const std::vector<float>& a, const std::vector<float>& b,
                                         bool b_stored_by_k);

// cp.async of 256 floats into shared memory and back out by a block of 64 threads:
//   0: 16-byte copies, one group, wait_group 0
//   1: a first group of 16-byte copies (floats 0..127) and a second of 4-byte ones (128..255,
//      every 5th zero-filled); wait_group 1 then the first half is read, wait_group 0 the second
//   2: as 1 but the second half is read after wait_group 1 only (a missing wait)
//   3: one group, read before its wait_group 0 (a missing wait)
// Modes 2 and 3 read copies that have not landed: undefined on a GPU, NaN in the emulator.
std::vector<float> cp_async_selftest(const std::vector<float>& src, int mode);

}  // namespace lmt::cuda
