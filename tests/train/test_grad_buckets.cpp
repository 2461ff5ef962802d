// Gradient buckets: the plan covers the arena once, in the order the backward pass finishes it,
// and each group the backward hook reports is final at that moment (no later op writes it).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "cpu/cpu_backend.h"
#include "model/gpt.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"
#include "train/grad_buckets.h"

using namespace lmt;

TEST_CASE("grad buckets: every float of the arena in exactly one bucket, ready in backward order", "[train][buckets]") {
  GPTConfig cfg = testing::small_config();
  cfg.num_layers = 3;
  const size_t n = parameter_storage_count(cfg);
  for (size_t bucket_numel : {size_t{1}, size_t{500}, n / 3, n, 10 * n}) {
    INFO("bucket_numel " << bucket_numel);
    const std::vector<GradBucket> buckets = plan_grad_buckets(cfg, bucket_numel);
    std::vector<int> covered(n, 0);
    int previous_ready = -1;
    for (const GradBucket& b : buckets) {
      size_t numel = 0;
      for (const GradSlice& s : b.slices) {
        REQUIRE(s.offset + s.count <= n);
        for (size_t i = s.offset; i < s.offset + s.count; ++i) ++covered[i];
        numel += s.count;
      }
      CHECK(numel == b.numel);
      CHECK(b.ready_group > previous_ready);
      previous_ready = b.ready_group;
    }
    CHECK(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; }));
    CHECK(buckets.back().ready_group == backward_group_count(cfg) - 1);
    if (bucket_numel == 1) CHECK(buckets.size() == static_cast<size_t>(backward_group_count(cfg)));
    if (bucket_numel >= n) CHECK(buckets.size() == 1);
  }
}

TEST_CASE("grad buckets: a group's gradients are final when the backward hook reports it", "[train][buckets]") {
  auto backend = cpu::make_cpu_backend(1);
  GPTConfig cfg = testing::small_config();
  cfg.num_layers = 3;
  GPT model(*backend, cfg);
  model.init_weights(3, 0.2);
  const int B = 2, T = 8;
  const std::vector<int32_t> inputs = testing::random_tokens(B * T, cfg.vocab_size, 1);
  const std::vector<int32_t> targets = testing::random_tokens(B * T, cfg.vocab_size, 2);
  // A snapshot of each group's gradients when it is reported, compared with the end's.
  std::map<int, std::vector<float>> snapshots;
  std::vector<int> order;
  model.zero_grad();
  model.set_backward_hook([&](int group) {
    order.push_back(group);
    std::vector<float>& copy = snapshots[group];
    for (const GradSlice& s : backward_group_slices(cfg, group))
      copy.insert(copy.end(), model.grads() + s.offset, model.grads() + s.offset + s.count);
  });
  model.forward_backward(inputs.data(), targets.data(), B, T, 1.0f);
  model.set_backward_hook({});
  std::vector<int> expected(static_cast<size_t>(backward_group_count(cfg)));
  for (size_t g = 0; g < expected.size(); ++g) expected[g] = static_cast<int>(g);
  CHECK(order == expected);
  for (const auto& [group, copy] : snapshots) {
    INFO("group " << group);
    std::vector<float> now;
    for (const GradSlice& s : backward_group_slices(cfg, group))
      now.insert(now.end(), model.grads() + s.offset, model.grads() + s.offset + s.count);
    CHECK(copy == now);
    // Not trivially equal: the group has gradients.
    CHECK(std::any_of(now.begin(), now.end(), [](float x) { return x != 0.0f; }));
  }
}
