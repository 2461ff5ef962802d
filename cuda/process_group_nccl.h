// ProcessGroup over NCCL for GPU buffers: every pointer passed to its collectives is device
// memory. Plain C++ header: callers need no CUDA or NCCL headers.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "parallel/process_group.h"
#include "parallel/store.h"

namespace lmt::cuda {

// Whether this build has NCCL (found at configure time).
bool have_nccl();

// One communicator for the job: rank 0 creates the ncclUniqueId and publishes it in the store
// under prefix + "nccl_id"; every rank initializes on CUDA device `device` and gets its own
// non-blocking stream. Collectives are enqueued on that stream and waited for before returning,
// each wait (and the communicator's set-up) bounded by `timeout`: a peer that died or hangs gives
// ncclCommAbort and a PeerLostError naming the rank, not a hang. Other failures are lmt::Error
// naming the rank and NCCL's message.
//
// With `producer_stream` (a cudaStream_t: the backend's), the group is asynchronous(): its
// *_async collectives make NCCL's stream wait for an event recorded on the producer stream at the
// call, so they run after the work enqueued there so far (the gradients they reduce) and overlap
// what is enqueued later; wait_pending() waits for them within the timeout.
std::unique_ptr<ProcessGroup> make_nccl_group(StoreClient& store, int rank, int size, int device,
                                              const std::string& prefix, std::chrono::milliseconds timeout,
                                              void* producer_stream = nullptr);

}  // namespace lmt::cuda
