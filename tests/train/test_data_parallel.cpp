// DataParallel's gradient buckets against its one-collective path, on in-process ranks: the
// same averaged gradients and norm at ZeRO stages 0 and 1, whether the buckets are reduced after
// the backward pass, on the communication thread during it, or (as NCCL does) enqueued on an
// asynchronous group during it and completed only at wait_pending().
#include <catch2/catch.hpp>

#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "model/gpt.h"
#include "tests/model/model_test_util.h"
#include "tests/parallel/gloo_ranks.h"
#include "train/data_parallel.h"
#include "train/grad_buckets.h"

using namespace lmt;
using lmt::testing::expect;

namespace {

// An asynchronous group over another: its *_async collectives run only at wait_pending(), the
// latest a real one (NCCL on its stream) may finish, so a caller that reads a result early sees
// the unreduced input, and one that writes the slices in between changes the result. Counts
// what was started.
class DeferredGroup : public ProcessGroup {
 public:
  explicit DeferredGroup(ProcessGroup& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return "deferred " + inner_.name(); }
  void all_reduce(float* data, size_t count, ReduceOp op) override { inner_.all_reduce(data, count, op); }
  void reduce_scatter(const float* input, float* output, size_t count, ReduceOp op) override {
    inner_.reduce_scatter(input, output, count, op);
  }
  void all_gather(const float* input, float* output, size_t count) override { inner_.all_gather(input, output, count); }
  void broadcast(float* data, size_t count, int root) override { inner_.broadcast(data, count, root); }
  void barrier() override { inner_.barrier(); }
  bool asynchronous() const override { return true; }
  void all_reduce_slices(float* base, const std::vector<BufferSlice>& slices, ReduceOp op) override {
    ++started;
    pending_.push_back([=, this] { inner_.all_reduce_slices(base, slices, op); });
  }
  void reduce_slices_to_owners(float* base, const std::vector<std::vector<BufferSlice>>& by_rank,
                               ReduceOp op) override {
    ++started;
    pending_.push_back([=, this] { inner_.reduce_slices_to_owners(base, by_rank, op); });
  }
  void wait_pending() override {
    for (; !pending_.empty(); pending_.pop_front()) pending_.front()();
  }
  int started = 0;

 private:
  ProcessGroup& inner_;
  std::deque<std::function<void()>> pending_;
};

enum class Mode { kWhole, kBucketsAfter, kBucketsThread, kAsyncAfter, kAsyncOverlap };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kWhole: return "one collective";
    case Mode::kBucketsAfter: return "buckets after the backward pass";
    case Mode::kBucketsThread: return "buckets on the communication thread";
    case Mode::kAsyncAfter: return "asynchronous group, after the backward pass";
    case Mode::kAsyncOverlap: return "asynchronous group, during the backward pass";
  }
  return "?";
}

struct RankResult {
  std::vector<float> grads;  // the owned range
  double norm = 0;
};

// One step's gradients of `group`'s rank, averaged by DataParallel in `mode`.
RankResult reduced_gradients(ProcessGroup& group, int zero_stage, Mode mode, size_t bucket_numel) {
  auto backend = cpu::make_cpu_backend(1);
  GPTConfig cfg = testing::small_config();
  cfg.num_layers = 3;
  GPT model(*backend, cfg);
  model.init_weights(7, 0.2);
  const int B = 2, T = 8;
  const auto inputs = testing::random_tokens(B * T, cfg.vocab_size, 11 + group.rank());
  const auto targets = testing::random_tokens(B * T, cfg.vocab_size, 21 + group.rank());
  DeferredGroup deferred(group);
  const bool async = mode == Mode::kAsyncAfter || mode == Mode::kAsyncOverlap;
  DataParallel parallel(group, zero_stage, model.num_param_storage(), *backend, async ? &deferred : nullptr);
  const std::vector<GradBucket> buckets = plan_grad_buckets(cfg, bucket_numel);
  if (mode != Mode::kWhole)
    parallel.use_buckets(buckets, mode == Mode::kBucketsThread || mode == Mode::kAsyncOverlap);
  model.zero_grad();
  model.set_backward_hook(parallel.backward_hook(model.grads()));
  model.forward_backward(inputs.data(), targets.data(), B, T, 1.0f);
  model.set_backward_hook({});
  // Overlapping on an asynchronous group: every bucket was started during the backward pass
  // (one call each).
  if (mode == Mode::kAsyncOverlap)
    expect(deferred.started == static_cast<int>(buckets.size()),
           "started " + std::to_string(deferred.started) + " of " + std::to_string(buckets.size()) +
               " buckets during the backward pass");
  if (mode == Mode::kAsyncAfter) expect(deferred.started == 0, "started buckets during the backward pass");
  RankResult out;
  out.norm = parallel.reduce_gradients(model.grads());
  if (async) expect(deferred.started == static_cast<int>(buckets.size()), "every bucket went through the group");
  out.grads.assign(model.grads() + parallel.shard_begin(), model.grads() + parallel.shard_end());
  return out;
}

}  // namespace

TEST_CASE("data parallel: gradient buckets, overlapped or not, on a host or an asynchronous group, average like "
          "one collective at ZeRO stages 0 and 1",
          "[train][buckets][parallel]") {
  const Mode modes[] = {Mode::kWhole, Mode::kBucketsAfter, Mode::kBucketsThread, Mode::kAsyncAfter,
                        Mode::kAsyncOverlap};
  for (int world : {2, 3})
    for (int zero_stage : {0, 1})
      // 700 floats: several buckets, most of several slices and (stage 1) crossing shards.
      for (size_t bucket_numel : {size_t{700}, size_t{1} << 30}) {
        INFO("world " << world << ", stage " << zero_stage << ", bucket_numel " << bucket_numel);
        std::map<Mode, std::vector<RankResult>> results;
        for (Mode mode : modes) {
          std::vector<RankResult> ranks(static_cast<size_t>(world));
          testing::with_ranks(world, [&](ProcessGroup& g) {
            ranks[static_cast<size_t>(g.rank())] = reduced_gradients(g, zero_stage, mode, bucket_numel);
          });
          results[mode] = ranks;
        }
        const std::vector<RankResult>& whole = results[Mode::kWhole];
        for (Mode mode : modes) {
          INFO(mode_name(mode));
          for (int r = 0; r < world; ++r) {
            INFO("rank " << r);
            const RankResult& got = results[mode][static_cast<size_t>(r)];
            const RankResult& bucketed = results[Mode::kBucketsAfter][static_cast<size_t>(r)];
            REQUIRE(got.grads.size() == whole[static_cast<size_t>(r)].grads.size());
            // Every bucketed mode gives the bytes of the others: same buckets, same collectives.
            if (mode != Mode::kWhole) {
              CHECK(got.grads == bucketed.grads);
              CHECK(got.norm == bucketed.norm);
            }
            // Against one collective: each float is the same sum of the ranks' values, added
            // in an order that may depend on where it falls in the buffer (3 ranks).
            for (size_t i = 0; i < got.grads.size(); ++i) {
              const float expected = whole[static_cast<size_t>(r)].grads[i];
              if (world == 2)
                REQUIRE(got.grads[i] == expected);
              else
                REQUIRE(std::abs(got.grads[i] - expected) <= 1e-6f * std::abs(expected) + 1e-8f);
            }
            CHECK(got.norm == Approx(whole[static_cast<size_t>(r)].norm).epsilon(1e-6));
          }
        }
      }
}

// The checkpoint's moments come through stream_gathered: every rank's shard, in arena order, in
// pieces of at most `chunk`, to the ranks that pass a sink; at stage 1 every rank takes part.
TEST_CASE("data parallel: stream_gathered hands the whole arena over in order and in pieces, at ZeRO stages 0 and 1",
          "[train][parallel][checkpoint]") {
  const size_t n = 1001;  // not a multiple of any world size here: the last shard is short
  for (int world : {1, 2, 3})
    for (int zero_stage : {0, 1})
      for (size_t chunk : {size_t{64}, size_t{1} << 20}) {
        INFO("world " << world << ", stage " << zero_stage << ", chunk " << chunk);
        std::vector<std::vector<float>> received(static_cast<size_t>(world));
        testing::with_ranks(world, [&](ProcessGroup& g) {
          auto backend = cpu::make_cpu_backend(1);
          DataParallel parallel(g, zero_stage, n, *backend);
          // Arena element i holds i; a rank knows only its shard.
          auto fetch = [&](size_t first, size_t count, float* dst) {
            expect(parallel.shard_begin() + first + count <= parallel.shard_end(), "fetch outside the shard");
            for (size_t k = 0; k < count; ++k) dst[k] = static_cast<float>(parallel.shard_begin() + first + k);
          };
          // Rank 0 keeps what it receives; the last rank too (at stage 0 it then fetches alone).
          const bool keeps = g.rank() == 0 || g.rank() == world - 1;
          std::vector<float>& mine = received[static_cast<size_t>(g.rank())];
          auto sink = [&](const float* data, size_t count) {
            expect(count >= 1 && count <= chunk, "a piece of " + std::to_string(count) + " values");
            mine.insert(mine.end(), data, data + count);
          };
          parallel.stream_gathered(fetch, keeps ? std::function<void(const float*, size_t)>(sink) : nullptr, chunk);
          // At stage 0 nothing is collective: a rank that leaves at once would close its
          // connections while the others still set theirs up.
          g.barrier();
        });
        std::vector<float> arena(n);
        for (size_t i = 0; i < n; ++i) arena[i] = static_cast<float>(i);
        CHECK(received[0] == arena);
        CHECK(received[static_cast<size_t>(world - 1)] == arena);
        for (int r = 1; r + 1 < world; ++r) CHECK(received[static_cast<size_t>(r)].empty());
      }
}
