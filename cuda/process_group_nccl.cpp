#include "cuda/process_group_nccl.h"

#include <fmt/format.h>

#include "core/error.h"
#include "parallel/deadline_wait.h"

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

// The communicator is non-blocking: NCCL calls return at once (ncclInProgress) and report
// failures through ncclCommGetAsyncError. Every wait polls that and the stream against the job's
// collective timeout, so a dead or hung peer ends in ncclCommAbort and a PeerLostError, as with
// Gloo, instead of a cudaStreamSynchronize that never returns.
Progress communicator_progress(ncclComm_t comm, std::string* why) {
  ncclResult_t state = ncclSuccess;
  const ncclResult_t rc = ncclCommGetAsyncError(comm, &state);
  if (rc != ncclSuccess) state = rc;
  if (state == ncclInProgress) return Progress::kPending;
  if (state != ncclSuccess) {
    *why = fmt::format("{} ({})", ncclGetErrorString(state), ncclGetLastError(comm));
    return Progress::kFailed;
  }
  return Progress::kDone;
}

class NcclGroup : public ProcessGroup {
 public:
  NcclGroup(ncclComm_t comm, cudaStream_t stream, int rank, int size, float* scratch,
            std::chrono::milliseconds timeout, cudaStream_t producer, cudaEvent_t produced)
      : comm_(comm),
        stream_(stream),
        rank_(rank),
        size_(size),
        scratch_(scratch),
        timeout_(timeout),
        producer_(producer),
        produced_(produced) {}
  ~NcclGroup() override {
    // A failed or timed-out collective aborted the communicator already; a healthy one is
    // finalized (non-blocking: waited for within the timeout, aborted past it) and destroyed.
    if (comm_) {
      const ncclResult_t rc = ncclCommFinalize(comm_);
      if (rc == ncclSuccess || rc == ncclInProgress) {
        try {
          wait_comm("ncclCommFinalize");
        } catch (const std::exception&) {
        }
      }
      if (comm_) ncclCommDestroy(comm_);
    }
    cudaFree(scratch_);
    if (produced_) cudaEventDestroy(produced_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  void all_reduce(float* data, size_t count, ReduceOp op) override {
    check(ncclAllReduce(data, data, count, ncclFloat, nccl_op(op), live(), stream_), "all_reduce");
    wait("all_reduce");
  }
  void reduce_scatter(const float* input, float* output, size_t count, ReduceOp op) override {
    check(ncclReduceScatter(input, output, count, ncclFloat, nccl_op(op), live(), stream_), "reduce_scatter");
    wait("reduce_scatter");
  }
  void all_gather(const float* input, float* output, size_t count) override {
    check(ncclAllGather(input, output, count, ncclFloat, live(), stream_), "all_gather");
    wait("all_gather");
  }
  void broadcast(float* data, size_t count, int root) override {
    check(ncclBroadcast(data, data, count, ncclFloat, root, live(), stream_), "broadcast");
    wait("broadcast");
  }
  void barrier() override { all_reduce(scratch_, 1, ReduceOp::kSum); }

  // One ncclGroupStart/End of in-place calls, no packing (no staging memory on the GPU).
  void all_reduce_slices(float* base, const std::vector<BufferSlice>& slices, ReduceOp op) override {
    grouped("all_reduce_slices", [&](ncclComm_t comm) {
      for (const BufferSlice& s : slices) {
        float* data = base + s.offset;
        const ncclResult_t rc = ncclAllReduce(data, data, s.count, ncclFloat, nccl_op(op), comm, stream_);
        if (rc != ncclSuccess && rc != ncclInProgress) return rc;
      }
      return ncclSuccess;
    });
  }
  // ncclReduce in place onto each slice's owner: the traffic of one reduce-scatter of the bucket.
  void reduce_slices_to_owners(float* base, const std::vector<std::vector<BufferSlice>>& by_rank,
                               ReduceOp op) override {
    grouped("reduce_slices_to_owners", [&](ncclComm_t comm) {
      for (size_t root = 0; root < by_rank.size(); ++root)
        for (const BufferSlice& s : by_rank[root]) {
          float* data = base + s.offset;
          const ncclResult_t rc = ncclReduce(data, data, s.count, ncclFloat, nccl_op(op), static_cast<int>(root), comm, stream_);
          if (rc != ncclSuccess && rc != ncclInProgress) return rc;
        }
      return ncclSuccess;
    });
  }
  bool asynchronous() const override { return producer_ != nullptr; }
  // The producer's later work is enqueued by the host after this returns, so it is ordered after
  // the collectives without an event.
  void wait_pending() override {
    if (!pending_) return;
    pending_ = false;
    wait("gradient collectives");
  }

 private:
  static ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kAvg ? ncclAvg : ncclSum; }
  std::string where(const char* what) const { return fmt::format("rank {} of {}: nccl {}", rank_, size_, what); }
  // With a producer stream: enqueued after the producer's work so far, waited for in
  // wait_pending(). Without: waited for now.
  template <class Calls>
  void grouped(const char* what, Calls&& calls) {
    if (producer_) after_producer();
    ncclComm_t comm = live();
    check(ncclGroupStart(), what);
    const ncclResult_t rc = calls(comm);
    const ncclResult_t ended = ncclGroupEnd();
    check(rc != ncclSuccess && rc != ncclInProgress ? rc : ended, what);
    if (producer_)
      pending_ = true;
    else
      wait(what);
  }
  // NCCL's stream waits for what the producer stream holds now. One event serves every call:
  // cudaStreamWaitEvent takes the event's state at the time it is called.
  void after_producer() {
    const cudaError_t recorded = cudaEventRecord(produced_, producer_);
    const cudaError_t waited = recorded == cudaSuccess ? cudaStreamWaitEvent(stream_, produced_, 0) : recorded;
    if (waited != cudaSuccess)
      throw Error(fmt::format("{}: ordering after the backend's stream failed: {}", where("event"), cudaGetErrorString(waited)));
  }
  ncclComm_t live() const {
    if (!comm_) throw PeerLostError(fmt::format("rank {} of {}: the NCCL communicator was aborted after an earlier "
                                                "failure", rank_, size_));
    return comm_;
  }
  void abort() {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  // A non-blocking call returns ncclInProgress when it was enqueued and is still being set up.
  void check(ncclResult_t rc, const char* what) {
    if (rc == ncclSuccess || rc == ncclInProgress) return;
    const std::string why = fmt::format("{} ({})", ncclGetErrorString(rc), ncclGetLastError(comm_));
    abort();
    throw PeerLostError(fmt::format("{} failed: {} (another rank probably exited; see its log)", where(what), why));
  }
  // Done when the communicator reports no error and the stream has run the collective.
  void wait(const char* what) {
    wait_with_deadline(
        [&](std::string* why) {
          const Progress comm = communicator_progress(comm_, why);
          if (comm != Progress::kDone) return comm;
          const cudaError_t rc = cudaStreamQuery(stream_);
          if (rc == cudaSuccess) return Progress::kDone;
          if (rc == cudaErrorNotReady) return Progress::kPending;
          *why = cudaGetErrorString(rc);
          return Progress::kFailed;
        },
        timeout_, [&] { abort(); }, where(what));
  }
  void wait_comm(const char* what) {
    wait_with_deadline([&](std::string* why) { return communicator_progress(comm_, why); }, timeout_,
                       [&] { abort(); }, where(what));
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_, size_;
  float* scratch_;
  std::chrono::milliseconds timeout_;
  cudaStream_t producer_;  // the backend's stream, or nullptr: no asynchronous collectives
  cudaEvent_t produced_;
  bool pending_ = false;   // asynchronous collectives not waited for yet
};

}  // namespace

bool have_nccl() { return true; }

std::unique_ptr<ProcessGroup> make_nccl_group(StoreClient& store, int rank, int size, int device,
                                              const std::string& prefix, std::chrono::milliseconds timeout,
                                              void* producer_stream) {
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
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const std::string what = fmt::format("rank {} of {}: ncclCommInitRank on device {}", rank, size, device);
  const ncclResult_t rc = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  if (rc != ncclSuccess && rc != ncclInProgress) {
    if (comm) ncclCommAbort(comm);
    throw Error(fmt::format("{} failed: {}", what, ncclGetErrorString(rc)));
  }
  // Waits for every rank to join: one that never comes costs the timeout, not a hang.
  wait_with_deadline([&](std::string* why) { return communicator_progress(comm, why); }, timeout,
                     [&] { ncclCommAbort(comm); }, what);
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), rank, "cudaStreamCreate");
  float* scratch = nullptr;
  check_cuda(cudaMalloc(&scratch, sizeof(float)), rank, "cudaMalloc");
  cudaEvent_t produced = nullptr;
  if (producer_stream) check_cuda(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming), rank, "cudaEventCreate");
  return std::make_unique<NcclGroup>(comm, stream, rank, size, scratch, timeout,
                                     static_cast<cudaStream_t>(producer_stream), produced);
}

#else

bool have_nccl() { return false; }

std::unique_ptr<ProcessGroup> make_nccl_group(StoreClient&, int rank, int, int, const std::string&,
                                              std::chrono::milliseconds, void*) {
  throw Error(fmt::format("rank {}: this lmtrain was built without NCCL (nccl.h and libnccl were not found at "
                          "configure time); install NCCL and rebuild", rank));
}

#endif

}  // namespace lmt::cuda
