// Collective communication between the ranks of a job, behind one interface: Gloo for CPU
// buffers (process_group_gloo.cpp), NCCL for GPU buffers (cuda/, when built with CUDA). The
// trainer calls only this interface, so data parallelism and ZeRO-1 are written once.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace lmt {

class StoreClient;

enum class ReduceOp { kSum, kAvg };

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
};

// A single process: every collective is the identity (avg of one value is the value).
std::unique_ptr<ProcessGroup> make_single_process_group();

// Gloo over TCP. Connects all `size` ranks through the rendezvous store (keys under `prefix`),
// with `interface_host` as the address other ranks dial (empty: this host's name). Throws
// lmt::Error naming the rank that did not arrive when `timeout` passes.
std::unique_ptr<ProcessGroup> make_gloo_group(StoreClient& store, int rank, int size, const std::string& prefix,
                                              const std::string& interface_host, std::chrono::milliseconds timeout);

}  // namespace lmt
