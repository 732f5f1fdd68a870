// The emulator's own API for tests (beyond what CUDA code sees): the schedules, the fault type and
// the record of launched kernels. See docs/testing.md for what the emulator shows and what not.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_emu/core.h"

namespace cuda_emu {

// A kernel that broke a rule of the execution model (divergence, a barrier part of the block
// never reaches, deadlock, a misaligned or out-of-bounds vector access, results that depend on
// the schedule). Thrown by the launch; the message names the kernel, block, thread and schedule.
class KernelFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// In which order blocks start (one host worker runs one block at a time, to its end).
enum class BlockOrder { index, reverse, random };
// In which order a block's threads run between rendezvous points: lockstep (every thread one
// step in index order), skewed (each warp alone until it reaches a block barrier), random.
enum class WarpOrder { lockstep, skewed, random };
// When cp.async data reaches shared memory: at the copy, or only when the issuing thread's
// cp.async.wait_group lets its group go.
enum class CopyLanding { at_issue, at_wait };

struct Schedule {
  BlockOrder blocks = BlockOrder::index;
  WarpOrder warps = WarpOrder::lockstep;
  CopyLanding copies = CopyLanding::at_issue;
  int workers = 1;  // host threads running blocks at once
  uint64_t seed = 1;
  std::string name() const;
};

// Every launch runs under each of these and must leave the same bits in device memory. Default:
// (index, lockstep, at issue, 1 worker), (reverse, skewed, at wait, 1), (random, random, at wait,
// 2 workers). GPT_CUDA_EMU_SCHEDULES overrides it: a comma-separated list of
// blocks:warps:copies:workers[:seed], e.g. "index:lockstep:issue:1,reverse:skewed:wait:1".
const std::vector<Schedule>& schedules();
void set_schedules(std::vector<Schedule> list);
Schedule parse_schedule(const std::string& text);

// "file:kernel" of every kernel launched by this process so far (templates without arguments).
std::vector<std::string> launched_kernels();

}  // namespace cuda_emu
