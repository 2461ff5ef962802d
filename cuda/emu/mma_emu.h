// The emulator's model of the warp-level tensor-core instructions of cuda/mma.cuh: mma.sync
// (m16n8k16, fp32 accumulators, bf16 or fp16 operands), ldmatrix (m8n8, x1/x2/x4, .trans) and
// cp.async with its commit and wait groups. Included by cuda/mma.cuh under LMTRAIN_CUDA_EMU.
//
// mma.sync and ldmatrix are warp collectives (.sync.aligned): every lane hands its operands (its
// fragment registers, or its row address) to a per-warp exchange and waits at warp_sync; the
// first lane to resume computes the whole 16x8 product, or performs every lane's loads, before
// any lane can run on (so a lane that writes shared memory right after an ldmatrix cannot
// change what another lane loads), and each lane then takes its own fragment. The fragments
// are placed exactly as the PTX ISA lays them out ("Matrix Fragments for mma.m16n8k16 with
// floating point type", "Warp-level matrix load instruction: ldmatrix"), so a kernel that reads
// or writes a fragment element at the wrong index gets a wrong result here, as on a GPU. Lanes
// that reach different collectives (divergent code) fail, naming the instructions.
//
// cp.async: each thread queues its copies; cp.async.commit_group closes a group and
// cp.async.wait_group N performs every committed group but the N newest. A copy lands only
// then, and its destination is poisoned (0xFF bytes: NaN in every float type) when it is
// issued, so a kernel that reads a tile before waiting for it reads NaN. Misaligned addresses
// fail; copies still pending when the next block's same thread issues one fail too.
//
// It relies on cuda_emu.h's model: the blocks of a grid run one at a time on one host thread,
// and a lane released from warp_sync runs alone until its next barrier (so the first lane to
// resume computes before any other lane moves on). The per-warp and per-thread state below is
// static for that reason.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda/emu/cuda_emu.h"

namespace lmt::emu {

// The collectives of this file, named in failures.
enum class WarpOp : uint32_t { kMmaBF16 = 1, kMmaF16, kLdmatrix, kLdmatrixTrans };

inline const char* warp_op_name(uint32_t op) {
  switch (static_cast<WarpOp>(op)) {
    case WarpOp::kMmaBF16: return "mma.sync.m16n8k16 (bf16)";
    case WarpOp::kMmaF16: return "mma.sync.m16n8k16 (f16)";
    case WarpOp::kLdmatrix: return "ldmatrix";
    case WarpOp::kLdmatrixTrans: return "ldmatrix.trans";
  }
  return "?";
}

// --- PTX fragment layouts (groupID = lane >> 2, threadID_in_group = lane % 4) ------------------
// m16n8k16 .f16/.bf16: A (16x16, row) holds a0..a7 in four registers, two per register (the
// lower index in the lower half); B (16x8, col) b0..b3 in two; C/D (16x8, f32) c0..c3.
inline int mma_a_row(int lane, int i) { return (lane >> 2) + ((i & 2) ? 8 : 0); }  // i in {2,3,6,7}: +8
inline int mma_a_col(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
inline int mma_b_row(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
inline int mma_b_col(int lane) { return lane >> 2; }
inline int mma_c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
inline int mma_c_col(int lane, int i) { return (lane % 4) * 2 + (i & 1); }

namespace detail {

inline float half_to_float(uint16_t bits, WarpOp op) {
  return op == WarpOp::kMmaBF16 ? ::lmt::bf16_to_f32(bits) : ::lmt::f16_to_f32(bits);
}
inline uint16_t element(const uint32_t* registers, int i) {
  return static_cast<uint16_t>(registers[i / 2] >> (16 * (i & 1)));
}

struct LaneOperands {
  uint32_t op = 0, seq = 0;
  uint32_t a[4] = {}, b[2] = {};
  float c[4] = {};
  const void* row = nullptr;  // ldmatrix: this lane's row address
  int matrices = 0;           // ldmatrix: x1, x2 or x4
  // Results for this lane, written by the lane that computes the collective.
  float d[4] = {};
  uint32_t r[4] = {};
};

struct WarpExchange {
  // Two sets of slots used alternately: a lane can reach the next collective (and write its
  // slots) while another still reads this one's results, but it cannot pass that next one, so
  // the set after it is free again.
  LaneOperands lanes[2][32];
  uint32_t computed[2] = {};  // seq + 1 of the collective whose results a set holds
  uint32_t next_seq[32] = {};
};

inline WarpExchange& warp_exchange() {
  static WarpExchange exchanges[32];  // at most 1024 threads per block
  const unsigned linear = thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z);
  return exchanges[linear / 32];
}

// Hands this lane's operands in, waits for the warp and returns the set the results are in.
inline LaneOperands* warp_collective(LaneOperands mine, WarpOp op, void (*compute)(LaneOperands*)) {
  WarpExchange& ex = warp_exchange();
  const int lane = lane_id();
  const uint32_t seq = ex.next_seq[lane]++;
  LaneOperands* set = ex.lanes[seq & 1];
  mine.op = static_cast<uint32_t>(op);
  mine.seq = seq;
  set[lane] = mine;
  // mma.sync and ldmatrix are .aligned: the whole warp, always. They order no memory.
  warp_sync(0xffffffffu, false);
  if (ex.computed[seq & 1] != seq + 1) {
    for (int l = 0; l < 32; ++l)
      if (set[l].op != mine.op || set[l].seq != seq) {
        char what[160];
        std::snprintf(what, sizeof what, "lanes of a warp met at different warp collectives (lane %d: %s, lane %d: %s)",
                      lane, warp_op_name(mine.op), l, warp_op_name(set[l].op));
        fail(what);
      }
    compute(set);
    ex.computed[seq & 1] = seq + 1;
  }
  return set;
}

inline void compute_mma(LaneOperands* lanes) {
  const auto op = static_cast<WarpOp>(lanes[0].op);
  float a[16][16], b[16][8], d[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i)
      a[mma_a_row(lane, i)][mma_a_col(lane, i)] = half_to_float(element(lanes[lane].a, i), op);
    for (int i = 0; i < 4; ++i) b[mma_b_row(lane, i)][mma_b_col(lane)] = half_to_float(element(lanes[lane].b, i), op);
    for (int i = 0; i < 4; ++i) d[mma_c_row(lane, i)][mma_c_col(lane, i)] = lanes[lane].c[i];
  }
  // The products of 16-bit values are exact in fp32; they are summed in fp32, k in order.
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      float sum = d[m][n];
      for (int k = 0; k < 16; ++k) sum += a[m][k] * b[k][n];
      d[m][n] = sum;
    }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) lanes[lane].d[i] = d[mma_c_row(lane, i)][mma_c_col(lane, i)];
}

// ldmatrix m8n8 .b16: lanes 8j..8j+7 give the row addresses of matrix j (16 bytes each, 16-byte
// aligned). Lane l receives, in register j, elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1)
// of matrix j; with .trans, elements (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4).
inline void compute_ldmatrix(LaneOperands* lanes) {
  const bool trans = static_cast<WarpOp>(lanes[0].op) == WarpOp::kLdmatrixTrans;
  const int matrices = lanes[0].matrices;
  for (int l = 0; l < 32; ++l)
    if (lanes[l].matrices != matrices) fail("lanes of a warp ran ldmatrix with different .num");
  for (int j = 0; j < matrices; ++j)
    for (int row = 0; row < 8; ++row) {
      const void* p = lanes[8 * j + row].row;
      if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0)
        fail("an ldmatrix row address is not 16-byte aligned");
    }
  for (int l = 0; l < 32; ++l)
    for (int j = 0; j < matrices; ++j) {
      uint16_t pair[2];
      for (int e = 0; e < 2; ++e) {
        const int row = trans ? 2 * (l % 4) + e : l / 4;
        const int col = trans ? l / 4 : 2 * (l % 4) + e;
        std::memcpy(&pair[e], static_cast<const char*>(lanes[8 * j + row].row) + 2 * col, 2);
      }
      lanes[l].r[j] = static_cast<uint32_t>(pair[0]) | static_cast<uint32_t>(pair[1]) << 16;
    }
}

}  // namespace detail

// d += a b (16x16 by 16x8), fp32 accumulators; op says whether a and b hold bf16 or f16.
inline void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], WarpOp op) {
  detail::LaneOperands mine;
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  std::memcpy(mine.c, d, sizeof mine.c);
  const detail::LaneOperands* set = detail::warp_collective(mine, op, detail::compute_mma);
  std::memcpy(d, set[lane_id()].d, sizeof mine.d);
}

inline void ldmatrix(uint32_t* r, int matrices, const void* row, bool trans) {
  detail::LaneOperands mine;
  mine.row = row;
  mine.matrices = matrices;
  // The shared-memory checker (cuda_emu.h) sees each row read by the lane that names it.
  if (lane_id() < 8 * matrices) smem_touch(row, 16, false);
  const detail::LaneOperands* set =
      detail::warp_collective(mine, trans ? WarpOp::kLdmatrixTrans : WarpOp::kLdmatrix, detail::compute_ldmatrix);
  for (int j = 0; j < matrices; ++j) r[j] = set[lane_id()].r[j];
}

// --- cp.async ---------------------------------------------------------------------------------
namespace detail {

struct AsyncCopy {
  void* dst;
  const void* src;
  int bytes, src_bytes;  // src_bytes < bytes: the rest is zero-filled
};

struct AsyncCopies {
  std::vector<AsyncCopy> copies;  // issued, not landed, oldest first
  std::vector<size_t> group_ends;  // committed groups: their end in `copies`
  dim3 block{0, 0, 0};
};

inline AsyncCopies& thread_copies() {
  static std::vector<AsyncCopies> threads(1024);
  const unsigned linear = thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z);
  AsyncCopies& mine = threads[linear];
  const bool same_block = mine.block.x == block_idx.x && mine.block.y == block_idx.y && mine.block.z == block_idx.z;
  if (!same_block) {
    if (!mine.copies.empty()) fail("a thread exited with cp.async copies that no cp.async.wait_group completed");
    mine.group_ends.clear();
    mine.block = block_idx;
  }
  return mine;
}

}  // namespace detail

inline void cp_async(void* dst, const void* src, int bytes, int src_bytes) {
  if (bytes != 4 && bytes != 8 && bytes != 16) fail("cp.async copies 4, 8 or 16 bytes");
  if (src_bytes < 0 || src_bytes > bytes) fail("cp.async: src-size larger than cp-size");
  if (reinterpret_cast<uintptr_t>(dst) % static_cast<unsigned>(bytes) != 0 ||
      (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % static_cast<unsigned>(bytes) != 0))
    fail("cp.async: an address is not aligned to the copy size");
  detail::thread_copies().copies.push_back({dst, src, bytes, src_bytes});
  // For the shared-memory checker (cuda_emu.h) the issuing thread writes the destination when
  // the copy is issued and again when it lands.
  smem_touch(dst, static_cast<size_t>(bytes), true);
  std::memset(dst, 0xFF, static_cast<size_t>(bytes));  // undefined until it lands
}

inline void cp_async_commit() {
  detail::AsyncCopies& mine = detail::thread_copies();
  mine.group_ends.push_back(mine.copies.size());
}

inline void cp_async_wait(int pending_groups) {
  detail::AsyncCopies& mine = detail::thread_copies();
  const int groups = static_cast<int>(mine.group_ends.size());
  if (groups <= pending_groups) return;
  const size_t landed = mine.group_ends[static_cast<size_t>(groups - pending_groups - 1)];
  for (size_t i = 0; i < landed; ++i) {
    const detail::AsyncCopy& c = mine.copies[i];
    smem_touch(c.dst, static_cast<size_t>(c.bytes), true);
    std::memset(c.dst, 0, static_cast<size_t>(c.bytes));
    if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
  }
  mine.copies.erase(mine.copies.begin(), mine.copies.begin() + static_cast<long>(landed));
  mine.group_ends.erase(mine.group_ends.begin(), mine.group_ends.begin() + (groups - pending_groups));
  for (size_t& end : mine.group_ends) end -= landed;
}

}  // namespace lmt::emu
