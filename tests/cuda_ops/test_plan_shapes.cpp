// The kernels at the largest shapes `lmtrain plan` accepts (issue 19): element offsets past 2^31
// and 2^32, more sequences, heads or row chunks than grid y and z hold (65535), more elements
// than a grid x of 256-thread blocks covers (2^39). A GPU needs tens of GiB (or TiB) for these;
// the emulator runs them on buffers mapped lazily (mmap MAP_NORESERVE: a page exists once
// touched, untouched ones read as zeros) and only on the blocks that hold the last rows
// (emu::set_block_filter), and compares those rows with the CPU reference. An index computed in
// 32 bits lands elsewhere (or outside the mapping) and a grid a GPU refuses aborts.
//
// Emulator only: the real build runs the op tests at their ordinary shapes.
#include <catch2/catch.hpp>

#ifdef LMTRAIN_CUDA_EMU
#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cuda/common.cuh"
#include "cuda/emu/emu_hooks.h"
#include "cuda/kernels.cuh"
#include "tests/cpu/cpu_test_util.h"

namespace {

using lmt::emu::BlockIndex;
using lmt::testing::check_close;

constexpr double kAtol = 1e-5, kRtol = 1e-4;

// Anonymous memory reserved, not committed.
class LazyBuffer {
 public:
  explicit LazyBuffer(size_t bytes)
      : bytes_(bytes),
        ptr_(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) {}
  ~LazyBuffer() {
    if (ok()) munmap(ptr_, bytes_);
  }
  LazyBuffer(const LazyBuffer&) = delete;
  LazyBuffer& operator=(const LazyBuffer&) = delete;
  bool ok() const { return ptr_ != MAP_FAILED; }
  float* f() const { return static_cast<float*>(ptr_); }
  void* raw() const { return ptr_; }
  int32_t* i() const { return static_cast<int32_t*>(ptr_); }

 private:
  size_t bytes_;
  void* ptr_;
};

// Skips (visibly) where the address space cannot be reserved (a ulimit -v, overcommit_memory=2).
#define REQUIRE_MAPPED(...)                                                                            \
  do {                                                                                                 \
    for (const LazyBuffer* lmt_buffer : {__VA_ARGS__})                                                 \
      if (!lmt_buffer->ok()) {                                                                         \
        WARN("SKIPPED: cannot reserve the address space of a lazily mapped buffer (ulimit -v? vm.overcommit_memory=2?)"); \
        return;                                                                                        \
      }                                                                                                \
  } while (0)

class BlockFilter {
 public:
  explicit BlockFilter(std::function<bool(BlockIndex, BlockIndex)> keep) { lmt::emu::set_block_filter(std::move(keep)); }
  ~BlockFilter() { lmt::emu::set_block_filter({}); }
  BlockFilter(const BlockFilter&) = delete;
  BlockFilter& operator=(const BlockFilter&) = delete;
};

// The last block of each launch along its outermost axis of more than one block (a slice's last
// sequence or head), or the last `tail` blocks of a one-dimensional grid.
bool last_blocks(BlockIndex block, BlockIndex grid, unsigned tail) {
  if (grid.z > 1) return block.z == grid.z - 1;
  if (grid.y > 1) return block.y == grid.y - 1;
  return block.x + tail >= grid.x;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, double scale = 1.0) {
  return lmt::testing::to_float(lmt::testing::random_vector(n, rng, scale));
}

// Copies n floats from host vector `from` into p + offset, and back.
void put(float* p, size_t offset, const std::vector<float>& from) { std::memcpy(p + offset, from.data(), from.size() * 4); }
std::vector<float> get(const float* p, size_t offset, size_t n) { return std::vector<float>(p + offset, p + offset + n); }

}  // namespace

// GPT-2 1.5B (Vp 50304) at B=64, T=1024: the logits hold B*T*Vp = 3.3e9 elements, past 2^31.
TEST_CASE("plan's largest shapes: the classifier at GPT-2 1.5B with B=64 and T=1024 (B*T*Vp > 2^31)", "[cuda][limits][shapes]") {
  const int N = 64 * 1024, V = 50257, Vp = 50304, rows = 2;
  LazyBuffer logits(size_t{4} * N * Vp), losses(size_t{4} * N), targets(size_t{4} * N);
  REQUIRE_MAPPED(&logits, &losses, &targets);
  REQUIRE(static_cast<double>(N) * Vp > 2147483648.0);
  std::mt19937 rng(19);
  std::vector<float> last = random_floats(size_t{rows} * Vp, rng, 4.0);
  std::vector<int32_t> last_targets = {V - 1, 7};
  const size_t first = static_cast<size_t>(N - rows) * Vp;
  put(logits.f(), first, last);
  for (int r = 0; r < rows; ++r) targets.i()[N - rows + r] = last_targets[static_cast<size_t>(r)];
  const float dloss = 1.0f / N;
  {
    BlockFilter filter([](BlockIndex b, BlockIndex g) { return last_blocks(b, g, rows); });
    lmt::cuda::launch_classifier<float>(logits.f(), losses.f(), logits.f(), targets.i(), dloss, N, V, Vp, nullptr);
  }
  auto cpu = lmt::cpu::make_cpu_backend(1);
  std::vector<float> expected_dlogits(last.size()), expected_losses(rows);
  cpu->classifier_forward_backward(expected_dlogits.data(), expected_losses.data(), last.data(), last_targets.data(),
                                   dloss, rows, V, Vp);
  check_close(get(losses.f(), N - rows, rows), expected_losses, kAtol, kRtol, "losses of the last rows");
  check_close(get(logits.f(), first, last.size()), expected_dlogits, kAtol, kRtol, "dlogits of the last rows");
}

// More sequences than grid z holds (B > 65535), and more heads than grid y holds (NH > 65535).
namespace {

struct AttentionShape {
  int B, T, C, NH;
};

// Attention forward and backward at `s` with elements of type T: float runs attention.cu,
// __nv_bfloat16 (head size 64 or 128) the tensor-core attention_mma.cu. The last two sequences
// (or heads) carry data; the CPU reference sees them alone, as a batch of 2 (B > 1) or a model
// of 2 heads (NH > 1), on the same values (rounded to T).
template <typename T>
void check_attention_at_scale(const AttentionShape& s, lmt::DType dtype, double atol, double rtol) {
  const int HS = s.C / s.NH;
  const size_t BT = static_cast<size_t>(s.B) * s.T, C = static_cast<size_t>(s.C), bytes = sizeof(T);
  LazyBuffer qkv(BT * 3 * C * bytes), out(BT * C * bytes), lse(BT * s.NH * 4), dout(BT * C * bytes),
      dqkv(BT * 3 * C * bytes);
  REQUIRE_MAPPED(&qkv, &out, &lse, &dout, &dqkv);
  const bool by_sequence = s.B > 1;
  const int ref_B = by_sequence ? 2 : 1, ref_NH = by_sequence ? 1 : 2, ref_C = ref_NH * HS;
  const size_t ref_BT = static_cast<size_t>(ref_B) * s.T;
  std::mt19937 rng(7);
  auto rounded = [&](std::vector<float> v) {  // to T and back, so that both sides see the same values
    std::vector<uint16_t> narrow(v.size());
    if (dtype == lmt::DType::kF32) return v;
    lmt::convert_from_f32(narrow.data(), dtype, v.data(), v.size());
    lmt::convert_to_f32(v.data(), narrow.data(), dtype, v.size());
    return v;
  };
  const std::vector<float> ref_qkv = rounded(random_floats(ref_BT * 3 * ref_C, rng)),
                           ref_dout = rounded(random_floats(ref_BT * ref_C, rng));
  // Where element (row r, column c) of the reference's (ref_BT, width * ref_C) tensors lives in
  // the big (BT, width * C) one.
  auto big_index = [&](size_t r, size_t c, size_t width) {
    const size_t part = c / ref_C, within = c % ref_C;
    const size_t row = by_sequence ? BT - ref_BT + r : r;
    const size_t column = by_sequence ? within : C - ref_C + within;
    return row * width * C + part * C + column;
  };
  auto set = [&](const LazyBuffer& buffer, size_t index, float value) {
    lmt::convert_from_f32(static_cast<char*>(buffer.raw()) + index * bytes, dtype, &value, 1);
  };
  auto at = [&](const LazyBuffer& buffer, size_t index) {
    float value;
    lmt::convert_to_f32(&value, static_cast<const char*>(buffer.raw()) + index * bytes, dtype, 1);
    return value;
  };
  for (size_t r = 0; r < ref_BT; ++r) {
    for (size_t c = 0; c < 3 * static_cast<size_t>(ref_C); ++c) set(qkv, big_index(r, c, 3), ref_qkv[r * 3 * ref_C + c]);
    for (size_t c = 0; c < static_cast<size_t>(ref_C); ++c) set(dout, big_index(r, c, 1), ref_dout[r * ref_C + c]);
  }
  T* const q = static_cast<T*>(qkv.raw());
  T* const o = static_cast<T*>(out.raw());
  T* const d_out = static_cast<T*>(dout.raw());
  T* const d_qkv = static_cast<T*>(dqkv.raw());
  {
    // The attention kernels: the last sequence or head of each launch (grid z or y). The fp32
    // path's delta kernel (one warp per (b, t, h) row, 8 per block, h fastest): the last 32 rows
    // of 2^20 in the second pass of its 65536 blocks, or for 65536 heads the last block of each
    // t's 8192.
    BlockFilter filter([by_sequence](BlockIndex b, BlockIndex g) {
      if (g.y > 1 || g.z > 1 || g.x == 1) return last_blocks(b, g, 1);
      return by_sequence ? b.x + 4 >= g.x : (b.x + 1) % 8192 == 0;
    });
    lmt::cuda::DeviceScratch scratch;
    if constexpr (std::is_same_v<T, float>) {
      lmt::cuda::launch_attention_forward<float>(o, lse.f(), q, s.B, s.T, s.C, s.NH, nullptr);
      lmt::cuda::launch_attention_backward<float>(d_qkv, d_out, q, o, lse.f(), s.B, s.T, s.C, s.NH, scratch, nullptr);
    } else {
      lmt::cuda::allow_attention_mma_shared_memory();
      lmt::cuda::launch_attention_mma_forward<T>(o, lse.f(), q, s.B, s.T, s.C, s.NH, nullptr);
      lmt::cuda::launch_attention_mma_backward<T>(d_qkv, d_out, q, o, lse.f(), s.B, s.T, s.C, s.NH, scratch, nullptr);
    }
  }
  auto cpu = lmt::cpu::make_cpu_backend(1);
  std::vector<float> ref_out(ref_BT * ref_C), ref_lse(ref_BT * ref_NH), ref_dqkv(ref_BT * 3 * ref_C);
  cpu->attention_forward(ref_out.data(), ref_lse.data(), ref_qkv.data(), ref_B, s.T, ref_C, ref_NH);
  // The backward's out is the device's, as the model passes it (rounded to T).
  std::vector<float> dev_out;
  for (size_t r = 0; r < ref_BT; ++r)
    for (size_t c = 0; c < static_cast<size_t>(ref_C); ++c) dev_out.push_back(at(out, big_index(r, c, 1)));
  cpu->attention_backward(ref_dqkv.data(), ref_dout.data(), ref_qkv.data(), dev_out.data(), ref_lse.data(), ref_B,
                          s.T, ref_C, ref_NH);
  std::vector<float> got_dqkv;
  for (size_t r = 0; r < ref_BT; ++r)
    for (size_t c = 0; c < 3 * static_cast<size_t>(ref_C); ++c) got_dqkv.push_back(at(dqkv, big_index(r, c, 3)));
  // lse (B, NH, T): the last ref_B * ref_NH rows of T.
  const size_t lse_rows = static_cast<size_t>(s.B) * s.NH;
  const std::vector<float> got_lse = get(lse.f(), (lse_rows - 2) * s.T, 2 * static_cast<size_t>(s.T));
  check_close(dev_out, ref_out, atol, rtol, "out of the last two");
  check_close(got_lse, ref_lse, atol, rtol, "lse of the last two");
  check_close(got_dqkv, ref_dqkv, atol, rtol, "dqkv of the last two");
}

}  // namespace

TEST_CASE("plan's largest shapes: attention with 65536 sequences and with 65536 heads", "[cuda][limits][shapes]") {
  for (const AttentionShape s : {AttentionShape{65536, 16, 32, 1}, AttentionShape{1, 3, 65536 * 32, 65536}}) {
    DYNAMIC_SECTION("B=" << s.B << " T=" << s.T << " NH=" << s.NH) {
      check_attention_at_scale<float>(s, lmt::DType::kF32, kAtol, kRtol);
    }
  }
}

// The same for the tensor-core kernels (bf16, head size 64), whose grids are sliced alike.
TEST_CASE("plan's largest shapes: tensor-core attention with 65536 sequences and with 65536 heads",
          "[cuda][limits][shapes][attention]") {
  for (const AttentionShape s : {AttentionShape{65536, 16, 64, 1}, AttentionShape{1, 3, 65536 * 64, 65536}}) {
    DYNAMIC_SECTION("B=" << s.B << " T=" << s.T << " NH=" << s.NH) {
      check_attention_at_scale<__nv_bfloat16>(s, lmt::DType::kBF16, 2e-2, 2e-2);
    }
  }
}

TEST_CASE("plan's largest shapes: cached attention (generation) with 65536 sequences", "[cuda][limits][shapes]") {
  const int B = 65536, Tn = 2, capacity = 2, C = 32, NH = 1;
  const size_t BT = static_cast<size_t>(B) * Tn;
  LazyBuffer qkv(BT * 3 * C * 4), out(BT * C * 4), k_cache(BT * C * 4), v_cache(BT * C * 4);
  REQUIRE_MAPPED(&qkv, &out, &k_cache, &v_cache);
  std::mt19937 rng(11);
  const std::vector<float> ref_qkv = random_floats(2 * Tn * 3 * C, rng);
  put(qkv.f(), (BT - 2 * Tn) * 3 * C, ref_qkv);
  {
    BlockFilter filter([](BlockIndex b, BlockIndex g) { return last_blocks(b, g, 2); });
    lmt::cuda::launch_attention_cached_forward<float>(out.f(), k_cache.f(), v_cache.f(), qkv.f(), B, Tn, 0, capacity, C,
                                                      NH, nullptr);
  }
  auto cpu = lmt::cpu::make_cpu_backend(1);
  std::vector<float> ref_out(2 * Tn * C), ref_k(2 * capacity * C), ref_v(2 * capacity * C);
  cpu->attention_cached_forward(ref_out.data(), ref_k.data(), ref_v.data(), ref_qkv.data(), 2, Tn, 0, capacity, C, NH);
  check_close(get(out.f(), (BT - 2 * Tn) * C, ref_out.size()), ref_out, kAtol, kRtol, "out of the last two sequences");
  check_close(get(k_cache.f(), (BT - 2 * Tn) * C, ref_k.size()), ref_k, 0, 0, "k_cache of the last two sequences");
  check_close(get(v_cache.f(), (BT - 2 * Tn) * C, ref_v.size()), ref_v, 0, 0, "v_cache of the last two sequences");
}

// Layer normalization over 2^20 + 8 rows of 4096: offsets pass 2^32.
TEST_CASE("plan's largest shapes: layernorm forward and backward past 2^32 elements", "[cuda][limits][shapes]") {
  const int N = (1 << 20) + 8, C = 4096, rows = 32;
  const size_t total = static_cast<size_t>(N) * C, first = static_cast<size_t>(N - rows) * C;
  REQUIRE(total > 4294967296.0);
  LazyBuffer inp(total * 4), out(total * 4), dout(total * 4), dinp(total * 4), mean(size_t{4} * N), rstd(size_t{4} * N);
  REQUIRE_MAPPED(&inp, &out, &dout, &dinp, &mean, &rstd);
  std::mt19937 rng(3);
  const auto x = random_floats(size_t{rows} * C, rng), dy = random_floats(size_t{rows} * C, rng);
  const auto weight = random_floats(C, rng), bias = random_floats(C, rng);
  put(inp.f(), first, x);
  put(dout.f(), first, dy);
  std::vector<float> dweight(C, 0.0f), dbias(C, 0.0f);
  const int num_chunks = (N + 255) / 256;
  lmt::cuda::DeviceScratch scratch;
  // Chunks of rows the filter skips add zeros, not the emulator's NaN poison.
  std::memset(scratch.get(2 * static_cast<size_t>(num_chunks) * C * 4), 0, 2 * static_cast<size_t>(num_chunks) * C * 4);
  {
    // The last `rows` rows: 4 blocks of 8 rows, and the last chunk of 256 rows (grid y).
    BlockFilter filter([](BlockIndex b, BlockIndex g) { return g.y > 1 ? b.y == g.y - 1 : b.x + 4 >= g.x; });
    lmt::cuda::launch_layernorm_forward<float>(out.f(), mean.f(), rstd.f(), inp.f(), weight.data(), bias.data(), N, C,
                                               nullptr);
  }
  {
    // The backward's column sums of the last chunk: its grid y's last block; all of add_chunk_sums.
    BlockFilter filter([](BlockIndex b, BlockIndex g) {
      return g.y > 1 ? b.y == g.y - 1 : (g.x <= C / 256 ? true : b.x + 4 >= g.x);
    });
    lmt::cuda::launch_layernorm_backward<float>(dinp.f(), dweight.data(), dbias.data(), dout.f(), inp.f(), weight.data(),
                                                mean.f(), rstd.f(), N, C, scratch, nullptr);
  }
  auto cpu = lmt::cpu::make_cpu_backend(1);
  std::vector<float> ref_out(x.size()), ref_mean(rows), ref_rstd(rows), ref_dinp(x.size(), 0.0f), ref_dw(C, 0.0f),
      ref_db(C, 0.0f);
  cpu->layernorm_forward(ref_out.data(), ref_mean.data(), ref_rstd.data(), x.data(), weight.data(), bias.data(), rows, C);
  cpu->layernorm_backward(ref_dinp.data(), ref_dw.data(), ref_db.data(), dy.data(), x.data(), weight.data(),
                          ref_mean.data(), ref_rstd.data(), rows, C);
  check_close(get(out.f(), first, x.size()), ref_out, kAtol, kRtol, "out of the last rows");
  check_close(get(mean.f(), N - rows, rows), ref_mean, kAtol, kRtol, "mean of the last rows");
  check_close(get(rstd.f(), N - rows, rows), ref_rstd, kAtol, kRtol, "rstd of the last rows");
  check_close(get(dinp.f(), first, x.size()), ref_dinp, kAtol, kRtol, "dinp of the last rows");
  // The last chunk (rows 2^20 .. 2^20 + 7) holds 8 of the rows: its partial sums are dweight's.
  std::vector<float> tail_dw(C, 0.0f), tail_db(C, 0.0f), unused(static_cast<size_t>(8) * C, 0.0f);
  cpu->layernorm_backward(unused.data(), tail_dw.data(), tail_db.data(), dy.data() + (rows - 8) * C,
                          x.data() + (rows - 8) * C, weight.data(), ref_mean.data() + rows - 8,
                          ref_rstd.data() + rows - 8, 8, C);
  check_close(dweight, tail_dw, kAtol, kRtol, "dweight from the last chunk");
  check_close(dbias, tail_db, kAtol, kRtol, "dbias from the last chunk");
}

// 65537 chunks of 256 rows: more than grid y holds. The bias gradients (column_sum) and the
// layernorm's parameter gradients are the sums over all of them.
TEST_CASE("plan's largest shapes: column sums over more than 65535 chunks of rows", "[cuda][limits][shapes]") {
  const int num_chunks = 65537, N = num_chunks * 256, C = 32, rows = 256;
  const size_t total = static_cast<size_t>(N) * C, first = static_cast<size_t>(N - rows) * C;
  LazyBuffer inp(total * 4), dout(total * 4), dinp(total * 4), mean(size_t{4} * N), rstd(size_t{4} * N);
  REQUIRE_MAPPED(&inp, &dout, &dinp, &mean, &rstd);
  std::mt19937 rng(5);
  const auto x = random_floats(size_t{rows} * C, rng), dy = random_floats(size_t{rows} * C, rng);
  const auto weight = random_floats(C, rng), row_mean = random_floats(rows, rng), row_rstd = random_floats(rows, rng);
  put(inp.f(), first, x);
  put(dout.f(), first, dy);
  put(mean.f(), N - rows, row_mean);
  put(rstd.f(), N - rows, row_rstd);
  lmt::cuda::DeviceScratch scratch;
  std::memset(scratch.get(2 * static_cast<size_t>(num_chunks) * C * 4), 0, 2 * static_cast<size_t>(num_chunks) * C * 4);
  std::vector<float> column_sums(C, 0.0f), dweight(C, 0.0f), dbias(C, 0.0f);
  {
    // Grid y strides over the chunks: its block 1 takes chunks 1 and 65536 (the last, with the
    // data; chunk 1 adds zeros). One-dimensional grids: the last 32 blocks (256 rows of dinp) or
    // add_chunk_sums' single block.
    BlockFilter filter([](BlockIndex b, BlockIndex g) { return g.y > 1 ? b.y == 1 : b.x + 32 >= g.x; });
    lmt::cuda::launch_column_sum<float>(column_sums.data(), dout.f(), N, C, scratch, nullptr);
    lmt::cuda::launch_layernorm_backward<float>(dinp.f(), dweight.data(), dbias.data(), dout.f(), inp.f(), weight.data(),
                                                mean.f(), rstd.f(), N, C, scratch, nullptr);
  }
  std::vector<float> expected_sums(C, 0.0f);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c) expected_sums[static_cast<size_t>(c)] += dy[static_cast<size_t>(r) * C + c];
  check_close(column_sums, expected_sums, kAtol, kRtol, "column sums of the last chunk");
  auto cpu = lmt::cpu::make_cpu_backend(1);
  std::vector<float> ref_dinp(x.size(), 0.0f), ref_dw(C, 0.0f), ref_db(C, 0.0f);
  cpu->layernorm_backward(ref_dinp.data(), ref_dw.data(), ref_db.data(), dy.data(), x.data(), weight.data(),
                          row_mean.data(), row_rstd.data(), rows, C);
  check_close(get(dinp.f(), first, x.size()), ref_dinp, kAtol, kRtol, "layernorm dinp of the last chunk");
  check_close(dweight, ref_dw, kAtol, kRtol, "layernorm dweight over 65537 chunks");
  check_close(dbias, ref_db, kAtol, kRtol, "layernorm dbias over 65537 chunks");
}

// B*T = 2^30 tokens (the most a micro-batch may hold) of 512 channels: 2^39 elements, a grid of
// 2^31 blocks of 256 threads, one more than grid x holds.
TEST_CASE("plan's largest shapes: the embedding of 2^30 tokens of 512 channels (2^39 elements)",
          "[cuda][limits][shapes]") {
  const int B = 1 << 20, T = 1 << 10, C = 512, V = 4;
  const size_t BT = static_cast<size_t>(B) * T, total = BT * C;
  LazyBuffer out(total * 4), tokens(BT * 4);
  REQUIRE_MAPPED(&out, &tokens);
  std::mt19937 rng(13);
  const auto wte = random_floats(static_cast<size_t>(V) * C, rng), wpe = random_floats(static_cast<size_t>(T) * C, rng);
  tokens.i()[BT - 1] = 3;
  tokens.i()[BT - 2] = 1;
  {
    // The element-wise kernel strides over the elements with 65536 blocks: its last two blocks
    // hold the last row's 512 elements on their last pass.
    BlockFilter filter([](BlockIndex b, BlockIndex g) { return b.x + 2 >= g.x; });
    lmt::cuda::launch_encoder_forward<float>(out.f(), tokens.i(), wte.data(), wpe.data(), B, T, C, nullptr);
  }
  std::vector<float> expected(C);
  for (int c = 0; c < C; ++c) expected[static_cast<size_t>(c)] = wte[3 * C + c] + wpe[static_cast<size_t>(T - 1) * C + c];
  check_close(get(out.f(), total - C, C), expected, 0, 0, "the last token's embedding");
}

// Element-wise kernels over 2^32 + 300 elements, past 2^32: GELU and AdamW (the parameter arena).
TEST_CASE("plan's largest shapes: GELU and AdamW past 2^32 elements", "[cuda][limits][shapes]") {
  const size_t n = (size_t{1} << 32) + 300, tail = 300;
  LazyBuffer a(n * 4), b(n * 4), m(n * 4), v(n * 4);
  REQUIRE_MAPPED(&a, &b, &m, &v);
  std::mt19937 rng(17);
  const auto x = random_floats(tail, rng, 3.0), g = random_floats(tail, rng), m0 = random_floats(tail, rng, 0.1);
  auto v0 = random_floats(tail, rng, 0.1);
  for (float& value : v0) value = std::fabs(value);
  put(a.f(), n - tail, x);
  put(b.f(), n - tail, g);
  put(m.f(), n - tail, m0);
  put(v.f(), n - tail, v0);
  // Both kernels stride with 256-thread blocks over a grid of 65536: elements n - 300 .. n - 1
  // sit in blocks 0 and 1 of the grid's last pass ((n - 300) mod 2^24 = 0).
  BlockFilter filter([](BlockIndex block, BlockIndex) { return block.x < 2; });
  auto cpu = lmt::cpu::make_cpu_backend(1);
  SECTION("GELU") {
    lmt::cuda::launch_gelu_forward<float>(m.f(), a.f(), n, nullptr);
    std::vector<float> expected(tail);
    cpu->gelu_forward(expected.data(), x.data(), tail);
    check_close(get(m.f(), n - tail, tail), expected, kAtol, kRtol, "the last 300 GELU outputs");
  }
  SECTION("AdamW") {
    lmt::cuda::launch_adamw(a.f(), b.f(), m.f(), v.f(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 0.1f, 0.05f, nullptr);
    std::vector<float> params = x, moment1 = m0, moment2 = v0;
    cpu->adamw_update(params.data(), g.data(), moment1.data(), moment2.data(), tail, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                      1.0f, 1);
    // t = 1 on the CPU: bias corrections 1 - 0.9 and 1 - 0.95, as given to the kernel.
    check_close(get(a.f(), n - tail, tail), params, kAtol, kRtol, "the last 300 parameters");
    check_close(get(m.f(), n - tail, tail), moment1, kAtol, kRtol, "the last 300 first moments");
    check_close(get(v.f(), n - tail, tail), moment2, kAtol, kRtol, "the last 300 second moments");
  }
}
#endif
