#include "train/grad_buckets.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace lmt {

int backward_group_count(const GPTConfig& cfg) { return cfg.num_layers + 2; }

std::vector<GradSlice> backward_group_slices(const GPTConfig& cfg, int group) {
  const int L = cfg.num_layers;
  LMT_CHECK(group >= 0 && group < L + 2, "backward group " + std::to_string(group) + " out of range");
  std::vector<GradSlice> slices;
  for (const ParamTensor& t : parameter_layout(cfg)) {
    const bool embedding = t.name == "wte" || t.name == "wpe";
    const bool final_norm = t.name == "lnfw" || t.name == "lnfb";
    if (group == 0 && final_norm) slices.push_back({t.offset, t.numel});
    if (group == L + 1 && embedding) slices.push_back({t.offset, t.numel});
    if (group >= 1 && group <= L && !embedding && !final_norm) {
      const size_t layer = static_cast<size_t>(L - group);  // group 1 is the last block
      const size_t per_layer = t.numel / static_cast<size_t>(L);
      slices.push_back({t.offset + layer * per_layer, per_layer});
    }
  }
  return slices;
}

std::vector<GradBucket> plan_grad_buckets(const GPTConfig& cfg, size_t bucket_numel) {
  std::vector<GradBucket> buckets;
  GradBucket current;
  for (int group = 0; group < backward_group_count(cfg); ++group) {
    for (const GradSlice& s : backward_group_slices(cfg, group)) {
      current.slices.push_back(s);
      current.numel += s.count;
    }
    current.ready_group = group;
    if (current.numel >= bucket_numel || group + 1 == backward_group_count(cfg)) {
      // The same tensor of neighbouring blocks lies side by side: one slice (less packing).
      std::sort(current.slices.begin(), current.slices.end(),
                [](const GradSlice& a, const GradSlice& b) { return a.offset < b.offset; });
      std::vector<GradSlice> merged;
      for (const GradSlice& s : current.slices) {
        if (!merged.empty() && merged.back().offset + merged.back().count == s.offset)
          merged.back().count += s.count;
        else
          merged.push_back(s);
      }
      current.slices = std::move(merged);
      buckets.push_back(std::move(current));
      current = GradBucket{};
    }
  }
  return buckets;
}

}  // namespace lmt
