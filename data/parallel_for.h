// A minimal work-sharing loop over std::thread for the data tools (tokenizer training and
// encoding), which run outside the training process and its OpenMP pool.
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lmt::data {

// Threads to use for `requested` (0 = all hardware threads), never more than `num_items`.
inline int resolve_num_threads(int requested, size_t num_items) {
  const int available = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::clamp<size_t>(num_items, 1, static_cast<size_t>(available)));
}

// Calls work(item, worker) for every item in [0, num_items), items handed out in order to
// `num_workers` threads (worker in [0, num_workers)). Runs inline when num_workers <= 1. The
// first exception thrown by any call is rethrown here after all threads have stopped.
template <class Work>
void parallel_for(size_t num_items, int num_workers, Work&& work) {
  if (num_workers <= 1) {
    for (size_t item = 0; item < num_items; ++item) work(item, 0);
    return;
  }
  std::atomic<size_t> next_item{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int worker) {
    try {
      for (size_t item = next_item++; item < num_items; item = next_item++) work(item, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next_item = num_items;  // the others stop after their current item
    }
  };
  std::vector<std::thread> threads;
  for (int worker = 1; worker < num_workers; ++worker) threads.emplace_back(run, worker);
  run(0);
  for (auto& thread : threads) thread.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace lmt::data
