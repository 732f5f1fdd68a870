// Pieces the communicator implementations share: the watchdog that ends a rank stuck in a
// collective, and the rank-order fold of reduce-scatter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "engine/communicator.h"

namespace gpt {

// Watches one collective at a time: when a collective started with begin() has not ended within
// timeout_s, prints which one and how long it waited, then ends the process with status 1 (the
// launcher then ends the other ranks). A dead peer thus never leaves a rank hanging.
class CollectiveWatchdog {
 public:
  CollectiveWatchdog(int rank, double timeout_s);
  ~CollectiveWatchdog();
  void begin(const char* what);
  void end();

 private:
  void loop();
  int rank_;
  double timeout_s_;
  std::atomic<int64_t> started_ns_{0};
  std::atomic<const char*> what_{""};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Scoped begin/end of a watched collective that also adds to the stats.
class WatchedCollective {
 public:
  WatchedCollective(CollectiveWatchdog& dog, CommStats* stats, const char* what, double bytes)
      : dog_(dog), stats_(stats), t0_(std::chrono::steady_clock::now()) {
    dog_.begin(what);
    if (stats_) stats_->bytes += bytes;
  }
  ~WatchedCollective() {
    dog_.end();
    if (stats_)
      stats_->seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  CollectiveWatchdog& dog_;
  CommStats* stats_;
  std::chrono::steady_clock::time_point t0_;
};

// recv = [recv +] parts[0] + parts[1] + ... + parts[world-1], element by element, left to right:
// the part of rank r starts at `parts + r * stride` elements. f32 and f64 only.
void fold_in_rank_order(const void* parts, size_t stride, int world, void* recv, size_t count,
                        CommDType dtype, bool accumulate);

}  // namespace gpt
