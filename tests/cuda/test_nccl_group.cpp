// NCCL process group on real GPUs. Skips (visibly) on machines without a CUDA device or NCCL.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <thread>

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

}  // namespace

TEST_CASE("nccl group: collectives on device buffers, one rank per GPU", "[cuda][nccl]") {
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
