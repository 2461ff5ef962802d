// Collective communication between the ranks of a job, behind one interface: Gloo for CPU
// buffers (process_group_gloo.cpp), NCCL for GPU buffers (cuda/, when built with CUDA). The
// trainer calls only this interface, so data parallelism and ZeRO-1 are written once.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace lmt {

class StoreClient;

enum class ReduceOp { kSum, kAvg };

// count floats from base + offset.
struct BufferSlice {
  size_t offset = 0;
  size_t count = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  // In place: data[i] = reduce over ranks of data[i]. Every rank gets bit-identical results.
  virtual void all_reduce(float* data, size_t count, ReduceOp op) = 0;
  // input holds size() * count values; rank r receives the reduction of block r in output
  // (count values).
  virtual void reduce_scatter(const float* input, float* output, size_t count, ReduceOp op) = 0;
  // input holds count values; output receives size() * count: block r from rank r.
  virtual void all_gather(const float* input, float* output, size_t count) = 0;
  virtual void broadcast(float* data, size_t count, int root) = 0;
  virtual void barrier() = 0;

  // Collectives on slices of one buffer (the gradient buckets of train/data_parallel.h), in
  // place. On an asynchronous() group (NCCL on its own stream) they are ordered after the work
  // the backend has enqueued so far and may still run when the call returns: wait_pending()
  // waits for all of them (bounded like any collective), and the backend's work enqueued after
  // it sees their results; nothing may touch the slices in between. Other groups finish them
  // before returning. The same calls give the same bits, whenever they run.
  //
  // Each slice as by all_reduce, all in one operation.
  virtual void all_reduce_slices(float* base, const std::vector<BufferSlice>& slices, ReduceOp op) = 0;
  // by_rank[r]: slices reduced onto rank r (size() lists); each rank's own slices hold the
  // reduction afterwards, the others' are unspecified. ZeRO-1's reduce-scatter of a bucket.
  virtual void reduce_slices_to_owners(float* base, const std::vector<std::vector<BufferSlice>>& by_rank,
                                       ReduceOp op) = 0;
  virtual bool asynchronous() const { return false; }
  virtual void wait_pending() {}
};

// A single process: every collective is the identity (avg of one value is the value).
std::unique_ptr<ProcessGroup> make_single_process_group();

// Gloo over TCP. Connects all `size` ranks through the rendezvous store (keys under `prefix`),
// with `interface_host` as the address other ranks dial (empty: this host's name). Throws
// lmt::Error naming the rank that did not arrive when `timeout` passes.
std::unique_ptr<ProcessGroup> make_gloo_group(StoreClient& store, int rank, int size, const std::string& prefix,
                                              const std::string& interface_host, std::chrono::milliseconds timeout);

}  // namespace lmt
