// How the attention kernels (attention.cu, attention_mma.cu) cover a batch: heads from grid y,
// sequences from grid z, which hold at most 65535 each. A larger batch (or head count) runs as
// several launches, each on a slice of sequences and heads whose tensors are indexed from the
// slice's first element; the kernels keep the full T, C and NH, so the strides stay those of the
// whole tensors.
#pragma once
#include <algorithm>
#include <cstddef>

#include "cuda/common.cuh"

namespace lmt::cuda {

constexpr int kMaxGridYZ = 65535;

struct AttentionSlice {
  size_t qkv, out, lse;  // offsets of its first element in (B, T, 3C), (B, T, C) and (B, NH, T)
};

// fn(slice, grid) for each slice; grid x covers seq_len in blocks of `rows_per_block` rows.
template <typename Fn>
void for_each_attention_slice(int B, int seq_len, int C, int NH, int HS, int rows_per_block, Fn&& fn) {
  for (int b0 = 0; b0 < B; b0 += kMaxGridYZ)
    for (int h0 = 0; h0 < NH; h0 += kMaxGridYZ) {
      const size_t bt = static_cast<size_t>(b0) * seq_len, head = static_cast<size_t>(h0) * HS;
      const AttentionSlice slice{bt * 3 * C + head, bt * C + head, (static_cast<size_t>(b0) * NH + h0) * seq_len};
      fn(slice, dim3(ceil_div(seq_len, rows_per_block), std::min(kMaxGridYZ, NH - h0), std::min(kMaxGridYZ, B - b0)));
    }
}

}  // namespace lmt::cuda
