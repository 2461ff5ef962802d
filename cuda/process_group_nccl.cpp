#include "cuda/process_group_nccl.h"

#include <fmt/format.h>

#include "core/error.h"

#if LMTRAIN_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace lmt::cuda {

#if LMTRAIN_WITH_NCCL
namespace {

void check_cuda(cudaError_t rc, int rank, const char* what) {
  if (rc != cudaSuccess)
    throw Error(fmt::format("rank {}: {} failed: {}", rank, what, cudaGetErrorString(rc)));
}

class NcclGroup : public ProcessGroup {
 public:
  NcclGroup(ncclComm_t comm, cudaStream_t stream, int rank, int size, float* scratch)
      : comm_(comm), stream_(stream), rank_(rank), size_(size), scratch_(scratch) {}
  ~NcclGroup() override {
    ncclCommDestroy(comm_);
    cudaFree(scratch_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  void all_reduce(float* data, size_t count, ReduceOp op) override {
    check(ncclAllReduce(data, data, count, ncclFloat, nccl_op(op), comm_, stream_), "all_reduce");
    wait("all_reduce");
  }
  void reduce_scatter(const float* input, float* output, size_t count, ReduceOp op) override {
    check(ncclReduceScatter(input, output, count, ncclFloat, nccl_op(op), comm_, stream_), "reduce_scatter");
    wait("reduce_scatter");
  }
  void all_gather(const float* input, float* output, size_t count) override {
    check(ncclAllGather(input, output, count, ncclFloat, comm_, stream_), "all_gather");
    wait("all_gather");
  }
  void broadcast(float* data, size_t count, int root) override {
    check(ncclBroadcast(data, data, count, ncclFloat, root, comm_, stream_), "broadcast");
    wait("broadcast");
  }
  void barrier() override { all_reduce(scratch_, 1, ReduceOp::kSum); }

 private:
  static ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kAvg ? ncclAvg : ncclSum; }
  void check(ncclResult_t rc, const char* what) const {
    if (rc != ncclSuccess)
      throw PeerLostError(fmt::format("rank {} of {}: nccl {} failed: {} (another rank probably exited; see its log)",
                              rank_, size_, what, ncclGetErrorString(rc)));
  }
  void wait(const char* what) const { check_cuda(cudaStreamSynchronize(stream_), rank_, what); }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_, size_;
  float* scratch_;
};

}  // namespace

bool have_nccl() { return true; }

std::unique_ptr<ProcessGroup> make_nccl_group(StoreClient& store, int rank, int size, int device,
                                              const std::string& prefix) {
  check_cuda(cudaSetDevice(device), rank, fmt::format("cudaSetDevice({})", device).c_str());
  ncclUniqueId id;
  const std::string key = prefix + "nccl_id";
  if (rank == 0) {
    const ncclResult_t rc = ncclGetUniqueId(&id);
    if (rc != ncclSuccess) throw Error(fmt::format("rank 0: ncclGetUniqueId failed: {}", ncclGetErrorString(rc)));
    store.set(key, std::string(reinterpret_cast<const char*>(&id), sizeof(id)));
  } else {
    const std::string bytes = store.get(key);
    if (bytes.size() != sizeof(id))
      throw Error(fmt::format("rank {}: the store's '{}' holds {} bytes, not an ncclUniqueId ({})", rank, key,
                              bytes.size(), sizeof(id)));
    std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(&id));
  }
  ncclComm_t comm;
  const ncclResult_t rc = ncclCommInitRank(&comm, size, id, rank);
  if (rc != ncclSuccess)
    throw Error(fmt::format("rank {} of {}: ncclCommInitRank on device {} failed: {}", rank, size, device,
                            ncclGetErrorString(rc)));
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), rank, "cudaStreamCreate");
  float* scratch = nullptr;
  check_cuda(cudaMalloc(&scratch, sizeof(float)), rank, "cudaMalloc");
  return std::make_unique<NcclGroup>(comm, stream, rank, size, scratch);
}

#else

bool have_nccl() { return false; }

std::unique_ptr<ProcessGroup> make_nccl_group(StoreClient&, int rank, int, int, const std::string&) {
  throw Error(fmt::format("rank {}: this lmtrain was built without NCCL (nccl.h and libnccl were not found at "
                          "configure time); install NCCL and rebuild", rank));
}

#endif

}  // namespace lmt::cuda
