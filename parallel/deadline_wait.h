// Waiting on work that tells its progress only when asked (a CUDA stream, a non-blocking NCCL
// communicator), with a deadline, so that a peer that died or hangs costs a bounded wait and a
// clear error instead of a job that hangs forever. Plain C++: the NCCL group (cuda/) supplies the
// queries, and the tests drive it with fakes.
#pragma once
#include <chrono>
#include <functional>
#include <string>

namespace lmt {

enum class Progress { kDone, kPending, kFailed };

// Calls `poll` until it returns kDone. When it returns kFailed (having set *why), or when
// `timeout` passes with it still kPending, calls `abort` once (to cancel what is in flight, e.g.
// ncclCommAbort) and throws PeerLostError: "<what> failed: <why>" or "<what> did not finish in
// N s". Polls back off from 20 microseconds to 1 ms, so short waits stay short.
void wait_with_deadline(const std::function<Progress(std::string* why)>& poll, std::chrono::milliseconds timeout,
                        const std::function<void()>& abort, const std::string& what);

}  // namespace lmt
