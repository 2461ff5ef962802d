// NCCL process group on real GPUs. Skips (visibly) on machines without a CUDA device or NCCL.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "cuda/device.h"
#include "cuda/process_group_nccl.h"

using namespace lmt;
using namespace std::chrono_literals;

namespace {

// Why this machine cannot run the test, or "" when it can with `ranks` GPUs.
std::string skip_reason(int ranks) {
  if (!cuda::have_nccl()) return "built without NCCL";
  const cuda::RuntimeStatus status = cuda::query_runtime();
  if (!status.driver_ok) return "no CUDA driver (" + status.message + ")";
  if (static_cast<int>(status.devices.size()) < ranks)
    return std::to_string(ranks) + " CUDA devices needed, " + std::to_string(status.devices.size()) + " visible";
  return "";
}

// Runs body(rank, ranks, store) on one thread per visible GPU (up to 4), each rank on its own
// GPU, and reports each rank's exception as a failure; skips (visibly) where it cannot run.
void with_gpu_ranks(const std::function<void(int, int, StoreClient&)>& body) {
  const int visible = static_cast<int>(cuda::query_runtime().devices.size());
  const int ranks = std::max(1, std::min(visible, 4));
  if (const std::string why = skip_reason(ranks); !why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  std::vector<std::string> failures(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        StoreClient store("127.0.0.1", server.port(), secret, 30s);
        body(r, ranks, store);
      } catch (const std::exception& e) {
        failures[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) {
    INFO("rank " << r << ": " << failures[r]);
    CHECK(failures[r].empty());
  }
}

}  // namespace

TEST_CASE("nccl group: collectives on device buffers, one rank per GPU", "[cuda][nccl]") {
  with_gpu_ranks([](int r, int ranks, StoreClient& store) {
    auto group = cuda::make_nccl_group(store, r, ranks, r, "nccl/", 60s);
    const size_t n = 1000;
    std::vector<float> host(n * ranks);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(r + 1) * 0.5f + static_cast<float>(i % 7);
    float *data = nullptr, *out = nullptr;
    cudaMalloc(&data, host.size() * sizeof(float));
    cudaMalloc(&out, host.size() * sizeof(float));
    cudaMemset(out, 0xFF, host.size() * sizeof(float));  // poisoned: unwritten values show up as NaN
    cudaMemcpy(data, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
    group->all_reduce(data, host.size(), ReduceOp::kAvg);
    std::vector<float> back(host.size());
    cudaMemcpy(back.data(), data, back.size() * sizeof(float), cudaMemcpyDeviceToHost);
    const float mean_scale = 0.5f * static_cast<float>(ranks + 1) / 2.0f;
    for (size_t i = 0; i < back.size(); ++i)
      if (std::abs(back[i] - (mean_scale + static_cast<float>(i % 7))) > 1e-5f) throw std::runtime_error("avg");
    group->all_gather(data, out, n);
    group->reduce_scatter(out, data, n, ReduceOp::kSum);
    group->broadcast(data, n, 0);
    group->barrier();
    cudaFree(data);
    cudaFree(out);
  });
}

// The gradient buckets' path (train/data_parallel.h): slices reduced in place, enqueued on
// NCCL's stream after an event on the producer's stream. The producer copies the values in only
// after a large copy ahead of them, so a collective not ordered after it reads the poison.
TEST_CASE("nccl group: slice collectives ordered after the producer stream, waited for at wait_pending",
          "[cuda][nccl]") {
  with_gpu_ranks([](int r, int ranks, StoreClient& store) {
    cudaSetDevice(r);
    cudaStream_t producer = nullptr;
    cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking);
    auto group = cuda::make_nccl_group(store, r, ranks, r, "nccl-slices/", 60s, producer);
    if (!group->asynchronous()) throw std::runtime_error("a group with a producer stream is asynchronous");
    const size_t n = 4096, big = size_t{64} << 20;
    std::vector<float> host(n);
    for (size_t i = 0; i < n; ++i) host[i] = static_cast<float>(r + 1) + static_cast<float>(i % 5);
    float *data = nullptr, *delay_a = nullptr, *delay_b = nullptr;
    cudaMalloc(&data, n * sizeof(float));
    cudaMalloc(&delay_a, big);
    cudaMalloc(&delay_b, big);
    cudaMemset(data, 0xFF, n * sizeof(float));  // NaN until the producer's copy lands
    cudaDeviceSynchronize();
    for (int k = 0; k < 8; ++k) cudaMemcpyAsync(delay_b, delay_a, big, cudaMemcpyDeviceToDevice, producer);
    cudaMemcpyAsync(data, host.data(), n * sizeof(float), cudaMemcpyHostToDevice, producer);
    // Slices [0, 1000) and [2000, 2100) all-reduced; [3000, 3000 + 100 * ranks) onto owners.
    group->all_reduce_slices(data, {{0, 1000}, {2000, 100}}, ReduceOp::kAvg);
    std::vector<std::vector<BufferSlice>> owners(static_cast<size_t>(ranks));
    for (int q = 0; q < ranks; ++q) owners[static_cast<size_t>(q)] = {{3000 + static_cast<size_t>(q) * 100, 100}};
    group->reduce_slices_to_owners(data, owners, ReduceOp::kSum);
    group->wait_pending();
    std::vector<float> back(n);
    cudaMemcpyAsync(back.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost, producer);
    cudaStreamSynchronize(producer);
    auto mean = [&](size_t i) { return static_cast<float>(ranks + 1) / 2.0f + static_cast<float>(i % 5); };
    auto sum = [&](size_t i) { return static_cast<float>(ranks * (ranks + 1) / 2) + ranks * static_cast<float>(i % 5); };
    for (size_t i = 0; i < n; ++i) {
      const bool averaged = i < 1000 || (i >= 2000 && i < 2100);
      const size_t own = 3000 + static_cast<size_t>(r) * 100;
      const bool owned = i >= own && i < own + 100;
      const bool others = i >= 3000 && i < 3000 + 100 * static_cast<size_t>(ranks) && !owned;
      if (others) continue;  // unspecified
      const float expected = averaged ? mean(i) : owned ? sum(i) : host[i];
      if (!(std::abs(back[i] - expected) <= 1e-5f * std::abs(expected)))
        throw std::runtime_error("element " + std::to_string(i) + ": " + std::to_string(back[i]) + ", expected " +
                                 std::to_string(expected));
    }
    group.reset();
    cudaFree(data);
    cudaFree(delay_a);
    cudaFree(delay_b);
    cudaStreamDestroy(producer);
  });
}

TEST_CASE("nccl group: a rank that never joins costs the timeout and a PeerLostError, not a hang", "[cuda][nccl]") {
  if (const std::string why = skip_reason(1); !why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  const std::string secret = make_job_secret();
  StoreServer server("127.0.0.1", 0, secret);
  StoreClient store("127.0.0.1", server.port(), secret, 30s);
  // Rank 0 of 2: rank 1 never comes, as when its process died before joining.
  const auto start = std::chrono::steady_clock::now();
  try {
    cuda::make_nccl_group(store, 0, 2, 0, "nccl-lonely/", 3s);
    FAIL("a 2-rank communicator came up with one rank");
  } catch (const PeerLostError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("rank 0 of 2: ncclCommInitRank"));
  }
  CHECK(std::chrono::steady_clock::now() - start < 60s);  // bounded: the timeout, not a hang
}
