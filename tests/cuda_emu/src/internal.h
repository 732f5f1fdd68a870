// Internal state of the emulator shared by its sources: threads, blocks, allocations.
#pragma once

#include <boost/context/fiber.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_emu/emu.h"
#include "cuda_runtime.h"

namespace cuda_emu {

enum class Wait { none, warp_op, barrier, exited };
// Warp collectives, for matching lanes and for messages.
enum class WarpOp { shuffle, vote, syncwarp, ldmatrix, mma };
const char* warp_op_name(WarpOp op);

struct PendingCopy {
  unsigned char* dst;
  const unsigned char* src;
  int src_size;  // bytes read; the rest of the 16 are zero-filled
};

struct ThreadContext {
  uint3 idx{};
  int linear = 0, warp = 0, lane = 0;
  BlockContext* block = nullptr;
  boost::context::fiber fiber;  // the thread, while suspended
  boost::context::fiber sink;   // the scheduler, while the thread runs
  Wait wait = Wait::none;
  bool spun = false;  // the last yield was a spin (no progress)
  // The collective this thread waits at, its inputs and (when complete) its outputs.
  WarpOp op = WarpOp::shuffle;
  const char* file = "";
  int line = 0;
  unsigned mask = 0;
  uint64_t in[12] = {};
  uint64_t out[4] = {};
  // cp.async: copies not yet committed, and committed groups not yet landed (at-wait landing).
  std::vector<PendingCopy> uncommitted;
  std::vector<std::vector<PendingCopy>> groups;  // oldest first
  const char* stack_lo = nullptr;
  const char* stack_hi = nullptr;
};

struct WarpState {
  int arrived = 0;
  WarpOp op = WarpOp::shuffle;
  const char* file = "";
  int line = 0;
  unsigned mask = 0;
  int lanes = 32;  // lanes that exist (the last warp of an odd-sized block has fewer)
};

struct LaunchInfo {
  const char* name;
  const char* file;
  int line;
  dim3 grid, block;
  size_t shared_bytes;
  const Schedule* schedule;
};

struct BlockContext {
  const LaunchInfo* launch = nullptr;
  uint3 idx{};
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  std::vector<ThreadContext> threads;
  std::vector<WarpState> warps;
  int nthreads = 0;
  int exited = 0;
  int barrier_arrived = 0;
  int barrier_sum = 0;
  const char* barrier_file = "";
  int barrier_line = 0;
  std::string fault;  // the first fault, with its location
};

// Current fiber's thread, and yielding back to the block scheduler.
ThreadContext& current();
void yield_to_scheduler(ThreadContext& t);

// "kernel K (launched at file:line) block (x,y,z) thread (x,y,z) [schedule]: "
std::string where(const ThreadContext* t);

// Device memory (runtime.cpp): the allocation containing [p, p + bytes), or false.
struct Region {
  uintptr_t begin = 0, end = 0;
};
bool find_allocation(const void* p, Region* region);
// Device memory around the schedules of one launch: a copy of every allocation before the first
// run; after it, which allocations it changed (and their new bytes); before each later run those
// are restored; after it, every allocation must hold what the first run left (the error says
// where it differs first).
class LaunchMemory {
 public:
  explicit LaunchMemory(const KernelPointers& reach);  // copies the allocations it points into
  void record_first_result();                          // after the first run
  void restore();                                      // before each later run
  std::string compare() const;                         // after each later run: "" when equal
 private:
  struct Saved {
    Region region;
    std::vector<unsigned char> before, after;  // after: only for the changed ones
    bool changed = false;
  };
  std::vector<Saved> saved_;
};

int max_dynamic_shared(const void* kernel);  // the opt-in, or 48 KiB
void set_launch_error(cudaError_t e);

}  // namespace cuda_emu
