// ProcessGroup over Gloo's TCP transport, rendezvous through our store.
#include <fmt/format.h>
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "parallel/process_group.h"
#include "parallel/store.h"

namespace lmt {
namespace {

// Gloo's Store interface over our client, with every key under a prefix.
class GlooStoreAdapter : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(StoreClient& client, std::string prefix) : client_(client), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    client_.set(prefix_ + key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    const std::string value = client_.get(prefix_ + key);
    return {value.begin(), value.end()};
  }
  void wait(const std::vector<std::string>& keys) override {
    for (const auto& key : keys) client_.get(prefix_ + key);
  }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override { wait(keys); }

 private:
  StoreClient& client_;
  std::string prefix_;
};

void sum_into(void* out, const void* in_a, const void* in_b, size_t n) {
  auto* o = static_cast<float*>(out);
  const auto* a = static_cast<const float*>(in_a);
  const auto* b = static_cast<const float*>(in_b);
  for (size_t i = 0; i < n; ++i) o[i] = a[i] + b[i];
}

class GlooGroup : public ProcessGroup {
 public:
  GlooGroup(std::shared_ptr<gloo::rendezvous::Context> context, std::chrono::milliseconds timeout)
      : context_(std::move(context)), timeout_(timeout) {}
  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }
  std::string name() const override { return "gloo"; }

  void all_reduce(float* data, size_t count, ReduceOp op) override {
    if (count == 0) return;
    guard("all_reduce", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, count);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&sum_into));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
    if (op == ReduceOp::kAvg) {
      const float inv = 1.0f / static_cast<float>(size());
      for (size_t i = 0; i < count; ++i) data[i] *= inv;
    }
  }

  void reduce_scatter(const float* input, float* output, size_t count, ReduceOp op) override {
    // Gloo 0.5 has no reduce-scatter collective with this interface: reduce everything, keep
    // this rank's block. Twice the traffic of a true reduce-scatter, the same result.
    scratch_.assign(input, input + count * size());
    all_reduce(scratch_.data(), scratch_.size(), op);
    std::copy_n(scratch_.data() + count * rank(), count, output);
  }

  // Packed into one buffer for one all-reduce. Gloo 0.5 has no reduce to a root with this
  // interface either, so the owners' slices are all-reduced the same way and each rank keeps its
  // own: the traffic of reduce_scatter above.
  void all_reduce_slices(float* base, const std::vector<BufferSlice>& slices, ReduceOp op) override {
    if (slices.size() == 1) {
      all_reduce(base + slices[0].offset, slices[0].count, op);
      return;
    }
    reduce_packed(base, {slices}, -1, op);
  }
  void reduce_slices_to_owners(float* base, const std::vector<std::vector<BufferSlice>>& by_rank,
                               ReduceOp op) override {
    reduce_packed(base, by_rank, rank(), op);
  }

  void all_gather(const float* input, float* output, size_t count) override {
    if (count == 0) return;
    guard("all_gather", [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(const_cast<float*>(input), count);
      opts.setOutput(output, count * size());
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    });
  }

  void broadcast(float* data, size_t count, int root) override {
    if (count == 0) return;
    guard("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(data, count);
      opts.setRoot(root);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  void barrier() override {
    guard("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

 private:
  uint32_t next_tag() { return tag_++; }

  // The lists' slices packed in order, all-reduced, and unpacked: every list's, or only list
  // `only`'s.
  void reduce_packed(float* base, const std::vector<std::vector<BufferSlice>>& lists, int only, ReduceOp op) {
    packed_.clear();
    for (const auto& slices : lists)
      for (const BufferSlice& s : slices) packed_.insert(packed_.end(), base + s.offset, base + s.offset + s.count);
    all_reduce(packed_.data(), packed_.size(), op);
    const float* in = packed_.data();
    for (size_t list = 0; list < lists.size(); ++list)
      for (const BufferSlice& s : lists[list]) {
        if (only < 0 || static_cast<size_t>(only) == list) std::copy_n(in, s.count, base + s.offset);
        in += s.count;
      }
  }

  template <class F>
  void guard(const char* what, F&& f) {
    try {
      f();
    } catch (const gloo::EnforceNotMet& e) {
      throw PeerLostError(fmt::format("rank {} of {}: gloo {} failed: {}", rank(), size(), what, e.what()));
    } catch (const gloo::Exception& e) {
      throw PeerLostError(fmt::format("rank {} of {}: gloo {} failed: {} (another rank probably exited; see its log)",
                              rank(), size(), what, e.what()));
    }
  }

  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::chrono::milliseconds timeout_;
  uint32_t tag_ = 1;
  std::vector<float> scratch_;
  std::vector<float> packed_;  // all_reduce_slices, reduce_slices_to_owners
};

class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single process"; }
  void all_reduce(float*, size_t, ReduceOp) override {}
  void reduce_scatter(const float* input, float* output, size_t count, ReduceOp) override {
    std::copy_n(input, count, output);
  }
  void all_gather(const float* input, float* output, size_t count) override { std::copy_n(input, count, output); }
  void broadcast(float*, size_t, int) override {}
  void barrier() override {}
  void all_reduce_slices(float*, const std::vector<BufferSlice>&, ReduceOp) override {}
  void reduce_slices_to_owners(float*, const std::vector<std::vector<BufferSlice>>&, ReduceOp) override {}
};

}  // namespace

std::unique_ptr<ProcessGroup> make_single_process_group() { return std::make_unique<SingleProcessGroup>(); }

std::unique_ptr<ProcessGroup> make_gloo_group(StoreClient& store, int rank, int size, const std::string& prefix,
                                              const std::string& interface_host, std::chrono::milliseconds timeout) {
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = interface_host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(timeout);
    GlooStoreAdapter adapter(store, prefix);
    context->connectFullMesh(adapter, device);
    return std::make_unique<GlooGroup>(std::move(context), timeout);
  } catch (const gloo::Exception& e) {
    throw Error(fmt::format("rank {} of {}: cannot connect the gloo process group (address '{}'): {}", rank, size,
                            interface_host, e.what()));
  } catch (const gloo::EnforceNotMet& e) {
    // Gloo's checks (GLOO_ENFORCE) throw this, not gloo::Exception: above all a bind(2) to an
    // address this host does not have.
    throw Error(fmt::format("rank {} of {}: cannot open the gloo process group on address '{}': {}; the address "
                            "comes from LMTRAIN_HOST or the hostfile's name for this host, and must be one of this "
                            "host's own addresses (`ip -brief address` lists them)",
                            rank, size, interface_host, e.what()));
  }
}

}  // namespace lmt
