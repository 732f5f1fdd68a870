// Launches, blocks, fibers and the rendezvous points of the CUDA execution model (docs/testing.md).
//
// A block runs on one host worker thread: its threads are fibers, resumed by the block scheduler
// in the order the schedule asks for, each until its next rendezvous point. Warp collectives
// (shuffles, votes, __syncwarp, ldmatrix, mma) complete when the last lane named in the mask
// arrives: that lane computes every lane's result, then all of them go on. __syncthreads
// completes when every thread of the block has arrived. Rules of the model broken along the way
// are faults: the thread's fiber throws, the block stops, the launch throws KernelFault.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "internal.h"

namespace cuda_emu {

thread_local ThreadContext* tl_thread = nullptr;
thread_local BlockContext* tl_block = nullptr;

namespace {

// ---- fiber stacks: a pool per host thread, each stack with a guard page below it ----------------
constexpr size_t kStackBytes = 256 * 1024;

// One pool for the process: worker threads come and go with each launch, their stacks stay.
std::mutex g_stack_mutex;
std::vector<void*> g_free_stacks;  // base of each mapping (guard page first)

struct PooledStack {
  boost::context::stack_context allocate() {
    const size_t page = static_cast<size_t>(getpagesize());
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(g_stack_mutex);
      if (!g_free_stacks.empty()) {
        base = g_free_stacks.back();
        g_free_stacks.pop_back();
      }
    }
    if (base == nullptr) {
      base = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
      if (base == MAP_FAILED) throw std::bad_alloc();
      mprotect(base, page, PROT_NONE);  // overflow faults instead of corrupting a neighbour
    }
    boost::context::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = static_cast<char*>(base) + page + kStackBytes;
    return sc;
  }
  void deallocate(boost::context::stack_context& sc) {
    const size_t page = static_cast<size_t>(getpagesize());
    std::lock_guard<std::mutex> lock(g_stack_mutex);
    g_free_stacks.push_back(static_cast<char*>(sc.sp) - kStackBytes - page);
  }
};

std::string dim_text(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// The launched kernels, "file:name".
std::mutex g_launched_mutex;
std::set<std::string> g_launched;

struct LaunchLogWriter {
  ~LaunchLogWriter() {
    const char* path = std::getenv("GPT_CUDA_EMU_LAUNCH_LOG");
    if (path == nullptr || *path == '\0') return;
    std::FILE* f = std::fopen(path, "a");
    if (f == nullptr) return;
    for (const std::string& k : g_launched) std::fprintf(f, "%s\n", k.c_str());
    std::fclose(f);
  }
} g_launch_log_writer;

}  // namespace

const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shuffle:
      return "shfl.sync";
    case WarpOp::vote:
      return "vote.sync";
    case WarpOp::syncwarp:
      return "bar.warp.sync";
    case WarpOp::ldmatrix:
      return "ldmatrix";
    case WarpOp::mma:
      return "mma.sync";
  }
  return "?";
}

std::string Schedule::name() const {
  static const char* blocks_names[] = {"index", "reverse", "random"};
  static const char* warps_names[] = {"lockstep", "skewed", "random"};
  std::string s = std::string(blocks_names[static_cast<int>(blocks)]) + ":" +
                  warps_names[static_cast<int>(warps)] + ":" +
                  (copies == CopyLanding::at_issue ? "issue" : "wait") + ":" +
                  std::to_string(workers);
  if (blocks == BlockOrder::random || warps == WarpOrder::random) s += ":" + std::to_string(seed);
  return s;
}

Schedule parse_schedule(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ':')) parts.push_back(part);
  auto bad = [&]() {
    return std::invalid_argument("GPT_CUDA_EMU_SCHEDULES: bad schedule '" + text +
                                 "' (want blocks:warps:copies:workers[:seed], e.g. "
                                 "reverse:skewed:wait:1)");
  };
  if (parts.size() < 4 || parts.size() > 5) throw bad();
  Schedule s;
  if (parts[0] == "index")
    s.blocks = BlockOrder::index;
  else if (parts[0] == "reverse")
    s.blocks = BlockOrder::reverse;
  else if (parts[0] == "random")
    s.blocks = BlockOrder::random;
  else
    throw bad();
  if (parts[1] == "lockstep")
    s.warps = WarpOrder::lockstep;
  else if (parts[1] == "skewed")
    s.warps = WarpOrder::skewed;
  else if (parts[1] == "random")
    s.warps = WarpOrder::random;
  else
    throw bad();
  if (parts[2] == "issue")
    s.copies = CopyLanding::at_issue;
  else if (parts[2] == "wait")
    s.copies = CopyLanding::at_wait;
  else
    throw bad();
  try {
    s.workers = std::stoi(parts[3]);
    if (parts.size() == 5) s.seed = std::stoull(parts[4]);
  } catch (const std::exception&) {
    throw bad();
  }
  if (s.workers < 1 || s.workers > 64) throw bad();
  return s;
}

namespace {
std::vector<Schedule>& schedule_list() {
  static std::vector<Schedule> list = [] {
    std::vector<Schedule> l;
    const char* env = std::getenv("GPT_CUDA_EMU_SCHEDULES");
    if (env != nullptr && *env != '\0') {
      std::stringstream ss(env);
      std::string item;
      while (std::getline(ss, item, ',')) l.push_back(parse_schedule(item));
    }
    if (l.empty()) {
      l.push_back(parse_schedule("index:lockstep:issue:1"));
      l.push_back(parse_schedule("reverse:skewed:wait:1"));
      l.push_back(parse_schedule("random:random:wait:2:7"));
    }
    return l;
  }();
  return list;
}
}  // namespace

const std::vector<Schedule>& schedules() {
  return schedule_list();
}
void set_schedules(std::vector<Schedule> list) {
  if (list.empty()) throw std::invalid_argument("set_schedules: empty list");
  schedule_list() = std::move(list);
}

std::vector<std::string> launched_kernels() {
  std::lock_guard<std::mutex> lock(g_launched_mutex);
  return {g_launched.begin(), g_launched.end()};
}

// ---- the thread's view ------------------------------------------------------------------------

ThreadContext& current() {
  if (tl_thread == nullptr) {
    std::fprintf(stderr, "cuda_emu: device code called outside a kernel launch\n");
    std::abort();
  }
  return *tl_thread;
}
const uint3& thread_index() {
  return current().idx;
}
const uint3& block_index() {
  return current().block->idx;
}
const dim3& block_dim() {
  return current().block->launch->block;
}
const dim3& grid_dim() {
  return current().block->launch->grid;
}
void* dynamic_shared() {
  return current().block->smem;
}

std::string where(const ThreadContext* t) {
  const BlockContext* b = t != nullptr ? t->block : tl_block;
  if (b == nullptr) return "cuda_emu: ";
  const LaunchInfo& l = *b->launch;
  std::string s = "kernel " + std::string(l.name) + " (launched at " + l.file + ":" +
                  std::to_string(l.line) + ") block " + dim_text(b->idx);
  if (t != nullptr) {
    s += " thread " + dim_text(t->idx) + " (warp " + std::to_string(t->warp) + " lane " +
         std::to_string(t->lane) + ")";
  }
  return s + " [schedule " + l.schedule->name() + "]: ";
}

void fault(const std::string& what) {
  throw KernelFault(where(tl_thread) + what);
}

void yield_to_scheduler(ThreadContext& t) {
  t.sink = std::move(t.sink).resume();
  tl_thread = &t;
}

void spin_yield() {
  ThreadContext& t = current();
  t.spun = true;
  yield_to_scheduler(t);
}

// ---- rendezvous -------------------------------------------------------------------------------

namespace {

std::string site(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line);
}

// Computes the results of a complete warp collective into each lane's `out`.
void complete_warp_op(BlockContext& b, int warp, WarpState& w);

// Arrives at a warp collective; returns when every lane of the mask has arrived and the results
// are in t.out.
void arrive_warp(ThreadContext& t, WarpOp op, unsigned mask, const char* file, int line) {
  BlockContext& b = *t.block;
  WarpState& w = b.warps[t.warp];
  const unsigned existing = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1u);
  if (((mask >> t.lane) & 1u) == 0) {
    fault(std::string(warp_op_name(op)) + " at " + site(file, line) + ": the calling lane " +
          std::to_string(t.lane) + " is not in the mask");
  }
  if ((mask & ~existing) != 0) {
    fault(std::string(warp_op_name(op)) + " at " + site(file, line) +
          ": the mask names lanes that do not exist in this warp");
  }
  const int base = t.warp * 32;
  // The first lane to arrive checks the others; a lane that exits or goes to a barrier while the
  // warp waits is caught there (on_exit, arrive_barrier).
  for (int lane = 0; w.arrived == 0 && lane < w.lanes; ++lane) {
    if (((mask >> lane) & 1u) == 0) continue;
    const ThreadContext& other = b.threads[base + lane];
    if (other.wait == Wait::exited) {
      fault(std::string(warp_op_name(op)) + " at " + site(file, line) + ": lane " +
            std::to_string(lane) + " of the mask has exited");
    }
    if (other.wait == Wait::barrier) {
      fault("divergence: " + std::string(warp_op_name(op)) + " at " + site(file, line) +
            " while lane " + std::to_string(lane) + " of the mask waits at __syncthreads (" +
            site(other.file, other.line) + ")");
    }
  }
  if (w.arrived == 0) {
    w.op = op;
    w.file = file;
    w.line = line;
    w.mask = mask;
  } else if (w.op != op || w.line != line || w.mask != mask ||
             (w.file != file && std::strcmp(w.file, file) != 0)) {
    fault("divergence: " + std::string(warp_op_name(op)) + " at " + site(file, line) +
          " while other lanes of the warp wait at " + warp_op_name(w.op) + " at " +
          site(w.file, w.line));
  }
  t.op = op;
  t.file = file;
  t.line = line;
  t.mask = mask;
  t.wait = Wait::warp_op;
  ++w.arrived;
  if (w.arrived == __builtin_popcount(mask)) {
    complete_warp_op(b, t.warp, w);
    for (int lane = 0; lane < w.lanes; ++lane) {
      if ((mask >> lane) & 1u) b.threads[base + lane].wait = Wait::none;
    }
    w.arrived = 0;
  } else {
    yield_to_scheduler(t);
  }
}

void arrive_barrier(ThreadContext& t, int predicate, const char* file, int line) {
  BlockContext& b = *t.block;
  const WarpState& w = b.warps[t.warp];
  if (w.arrived > 0) {
    fault("divergence: __syncthreads at " + site(file, line) +
          " while other lanes of the warp wait at " + warp_op_name(w.op) + " at " +
          site(w.file, w.line));
  }
  if (b.barrier_arrived == 0) {
    b.barrier_file = file;
    b.barrier_line = line;
    b.barrier_sum = 0;
  } else if (b.barrier_line != line ||
             (b.barrier_file != file && std::strcmp(b.barrier_file, file) != 0)) {
    fault("divergence: __syncthreads at " + site(file, line) + " while other threads wait at " +
          "__syncthreads at " + site(b.barrier_file, b.barrier_line));
  }
  t.file = file;
  t.line = line;
  t.wait = Wait::barrier;
  ++b.barrier_arrived;
  b.barrier_sum += predicate != 0;
  if (b.barrier_arrived + b.exited == b.nthreads) {
    if (b.exited > 0) {
      int gone = 0;
      while (b.threads[gone].wait != Wait::exited) ++gone;
      fault("__syncthreads at " + site(file, line) +
            " is not reached by the whole block: " + std::to_string(b.exited) +
            " threads have exited (the first: thread " + dim_text(b.threads[gone].idx) + ")");
    }
    for (ThreadContext& other : b.threads) {
      if (other.wait != Wait::barrier) continue;
      other.wait = Wait::none;
      other.out[0] = static_cast<uint64_t>(b.barrier_sum);
    }
    b.barrier_arrived = 0;
  } else {
    yield_to_scheduler(t);
  }
}

}  // namespace

void barrier(const char* file, int line) {
  arrive_barrier(current(), 1, file, line);
}
int barrier_count(int predicate, const char* file, int line) {
  ThreadContext& t = current();
  arrive_barrier(t, predicate, file, line);
  return static_cast<int>(t.out[0]);
}
void warp_sync(unsigned mask, const char* file, int line) {
  arrive_warp(current(), WarpOp::syncwarp, mask, file, line);
}
uint64_t shuffle(unsigned mask, uint64_t value, int operand, int width, int mode, const char* file,
                 int line) {
  ThreadContext& t = current();
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    fault("shfl.sync at " + site(file, line) + ": width " + std::to_string(width) +
          " is not a power of two up to 32");
  }
  t.in[0] = value;
  t.in[1] = static_cast<uint64_t>(static_cast<int64_t>(operand));
  t.in[2] = static_cast<uint64_t>(width);
  t.in[3] = static_cast<uint64_t>(mode);
  arrive_warp(t, WarpOp::shuffle, mask, file, line);
  return t.out[0];
}
unsigned vote(unsigned mask, int predicate, int mode, const char* file, int line) {
  ThreadContext& t = current();
  t.in[0] = predicate != 0;
  t.in[3] = static_cast<uint64_t>(mode);
  arrive_warp(t, WarpOp::vote, mask, file, line);
  return static_cast<unsigned>(t.out[0]);
}

// ldmatrix and mma are completed by ptx.cpp's functions (declared here, defined there).
void complete_ldmatrix(BlockContext& b, int warp, const WarpState& w);
void complete_mma(BlockContext& b, int warp, const WarpState& w);
void arrive_warp_op(ThreadContext& t, WarpOp op, unsigned mask, const char* file, int line) {
  arrive_warp(t, op, mask, file, line);
}

namespace {

void complete_warp_op(BlockContext& b, int warp, WarpState& w) {
  ThreadContext* lanes = &b.threads[static_cast<size_t>(warp) * 32];
  switch (w.op) {
    case WarpOp::shuffle:
      for (int lane = 0; lane < w.lanes; ++lane) {
        if (((w.mask >> lane) & 1u) == 0) continue;
        ThreadContext& t = lanes[lane];
        const int operand = static_cast<int>(static_cast<int64_t>(t.in[1]));
        const int width = static_cast<int>(t.in[2]);
        const int segment = lane & ~(width - 1);
        int src = lane;
        switch (static_cast<int>(t.in[3])) {
          case 0:
            src = segment + (operand & (width - 1));
            break;
          case 1:
            src = lane ^ operand;
            if (src >= segment + width || src < segment) src = lane;
            break;
          case 2:
            src = lane + operand;
            if (src >= segment + width) src = lane;
            break;
          case 3:
            src = lane - operand;
            if (src < segment) src = lane;
            break;
        }
        if (src < 0 || src >= 32 || ((w.mask >> src) & 1u) == 0) {
          tl_thread = &t;
          fault("shfl.sync at " + site(w.file, w.line) + " reads lane " + std::to_string(src) +
                ", which is not in the mask");
        }
        t.out[0] = lanes[src].in[0];
      }
      break;
    case WarpOp::vote: {
      unsigned ballot = 0;
      for (int lane = 0; lane < w.lanes; ++lane) {
        if (((w.mask >> lane) & 1u) != 0 && lanes[lane].in[0] != 0) ballot |= 1u << lane;
      }
      for (int lane = 0; lane < w.lanes; ++lane) lanes[lane].out[0] = ballot;
      break;
    }
    case WarpOp::syncwarp:
      break;
    case WarpOp::ldmatrix:
      complete_ldmatrix(b, warp, w);
      break;
    case WarpOp::mma:
      complete_mma(b, warp, w);
      break;
  }
}

// ---- the block scheduler ----------------------------------------------------------------------

void land_all_copies(ThreadContext& t) {
  for (auto& group : t.groups) {
    for (const PendingCopy& c : group) {
      std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_size));
      std::memset(c.dst + c.src_size, 0, static_cast<size_t>(16 - c.src_size));
    }
  }
  t.groups.clear();
  for (const PendingCopy& c : t.uncommitted) {
    std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_size));
    std::memset(c.dst + c.src_size, 0, static_cast<size_t>(16 - c.src_size));
  }
  t.uncommitted.clear();
}

// What every unfinished thread waits at, for a deadlock message.
std::string describe_waits(const BlockContext& b) {
  std::ostringstream os;
  int shown = 0;
  for (const ThreadContext& t : b.threads) {
    if (t.wait == Wait::exited) continue;
    if (shown++ == 8) {
      os << " ...";
      break;
    }
    os << " thread " << dim_text(t.idx) << ": ";
    switch (t.wait) {
      case Wait::none:
        os << (t.spun ? "spinning" : "runnable");
        break;
      case Wait::warp_op:
        os << warp_op_name(t.op) << " at " << site(t.file, t.line);
        break;
      case Wait::barrier:
        os << "__syncthreads at " << site(t.file, t.line);
        break;
      case Wait::exited:
        break;
    }
    os << ";";
  }
  return os.str();
}

class BlockRunner {
 public:
  BlockRunner(const LaunchInfo& launch, void (*body)(void*), void* context, std::mt19937_64& rng)
      : launch_(launch), body_(body), context_(context), rng_(rng) {
    const dim3 d = launch.block;
    b_.launch = &launch;
    b_.nthreads = static_cast<int>(d.x * d.y * d.z);
    b_.smem_bytes = launch.shared_bytes;
    if (b_.smem_bytes > 0) {
      smem_storage_.resize(b_.smem_bytes + 1024);
      // Aligned as the device aligns dynamic shared memory (at least 1 KiB here).
      const uintptr_t p = reinterpret_cast<uintptr_t>(smem_storage_.data());
      b_.smem = reinterpret_cast<unsigned char*>((p + 1023) & ~uintptr_t{1023});
    }
  }

  // Runs block `idx` to its end; false (with b_.fault) when it faulted.
  bool run(uint3 idx) {
    const dim3 d = launch_.block;
    b_.idx = idx;
    b_.exited = 0;
    b_.barrier_arrived = 0;
    b_.fault.clear();
    if (b_.smem_bytes > 0) std::memset(b_.smem, 0xFF, b_.smem_bytes);
    // Thread contexts are reused from block to block (only their state is reset).
    if (b_.threads.size() != static_cast<size_t>(b_.nthreads)) {
      b_.threads = std::vector<ThreadContext>(static_cast<size_t>(b_.nthreads));
    }
    const int nwarps = (b_.nthreads + 31) / 32;
    b_.warps.assign(static_cast<size_t>(nwarps), WarpState{});
    b_.warps.back().lanes = b_.nthreads - (nwarps - 1) * 32;
    for (int i = 0; i < b_.nthreads; ++i) {
      ThreadContext& t = b_.threads[static_cast<size_t>(i)];
      t.wait = Wait::none;
      t.spun = false;
      t.uncommitted.clear();
      t.groups.clear();
      t.idx = uint3{static_cast<unsigned>(i) % d.x, (static_cast<unsigned>(i) / d.x) % d.y,
                    static_cast<unsigned>(i) / (d.x * d.y)};
      t.linear = i;
      t.warp = i / 32;
      t.lane = i % 32;
      t.block = &b_;
      ThreadContext* tp = &t;
      PooledStack alloc;
      t.fiber = boost::context::fiber(
          std::allocator_arg, alloc, [this, tp](boost::context::fiber&& sink) {
            tp->sink = std::move(sink);
            tl_thread = tp;
            // This fiber's stack (grows down from about here): accesses to it are the thread's own.
            char marker = 0;
            const uintptr_t here = reinterpret_cast<uintptr_t>(&marker);
            tp->stack_hi = reinterpret_cast<const char*>(here + 2048);
            tp->stack_lo = reinterpret_cast<const char*>(here - (kStackBytes - 16 * 1024));
            try {
              body_(context_);
            } catch (const KernelFault& e) {
              if (b_.fault.empty()) b_.fault = e.what();
            } catch (const std::exception& e) {
              if (b_.fault.empty()) b_.fault = where(tp) + "exception: " + e.what();
            }
            on_exit(*tp);
            return std::move(tp->sink);
          });
    }
    tl_block = &b_;
    schedule_threads();
    // Unwinds the fibers of a faulted block (their destructors resume them with forced_unwind).
    for (ThreadContext& t : b_.threads) t.fiber = boost::context::fiber();
    tl_block = nullptr;
    return b_.fault.empty();
  }

  const std::string& fault() const { return b_.fault; }

 private:
  void on_exit(ThreadContext& t) {
    land_all_copies(t);
    t.wait = Wait::exited;
    ++b_.exited;
    if (!b_.fault.empty()) return;
    // A lane that leaves while its warp waits for it at a collective.
    const WarpState& w = b_.warps[static_cast<size_t>(t.warp)];
    if (w.arrived > 0 && ((w.mask >> t.lane) & 1u) != 0) {
      b_.fault = where(&t) + "exited while lanes of its warp wait for it at " + warp_op_name(w.op) +
                 " at " + site(w.file, w.line);
      return;
    }
    if (b_.barrier_arrived > 0 && b_.barrier_arrived + b_.exited == b_.nthreads) {
      b_.fault = where(&t) + "exited while the rest of the block waits at __syncthreads at " +
                 site(b_.barrier_file, b_.barrier_line) +
                 ": that barrier is not reached by the whole block";
    }
  }

  // Resumes thread t until its next rendezvous; true when it did more than spin.
  bool step(ThreadContext& t) {
    t.spun = false;
    tl_thread = &t;
    t.fiber = std::move(t.fiber).resume();
    tl_thread = nullptr;
    return !t.spun;
  }

  bool runnable(const ThreadContext& t) const { return t.wait == Wait::none; }

  void schedule_threads() {
    const Schedule& s = *launch_.schedule;
    const int nwarps = static_cast<int>(b_.warps.size());
    std::vector<int> warp_order(static_cast<size_t>(nwarps));
    std::iota(warp_order.begin(), warp_order.end(), 0);
    std::vector<int> lane_order(32);
    std::iota(lane_order.begin(), lane_order.end(), 0);
    int idle_sweeps = 0;
    const auto started = std::chrono::steady_clock::now();
    while (b_.exited < b_.nthreads && b_.fault.empty()) {
      bool progress = false, any_runnable = false;
      if (s.warps == WarpOrder::random) {
        std::shuffle(warp_order.begin(), warp_order.end(), rng_);
        std::shuffle(lane_order.begin(), lane_order.end(), rng_);
      }
      for (int wi = 0; wi < nwarps && b_.fault.empty(); ++wi) {
        const int warp = warp_order[static_cast<size_t>(wi)];
        const int lanes = b_.warps[static_cast<size_t>(warp)].lanes;
        // lockstep and random: each lane one step per sweep; skewed: the warp runs until every
        // lane waits at a block barrier or has exited (or only spins).
        for (int rounds = 0; b_.fault.empty(); ++rounds) {
          bool warp_progress = false;
          for (int li = 0; li < 32 && b_.fault.empty(); ++li) {
            const int lane = lane_order[static_cast<size_t>(li)];
            if (lane >= lanes) continue;
            ThreadContext& t = b_.threads[static_cast<size_t>(warp * 32 + lane)];
            if (!runnable(t)) continue;
            any_runnable = true;
            if (step(t)) warp_progress = true;
          }
          progress = progress || warp_progress;
          if (s.warps != WarpOrder::skewed || !warp_progress || rounds > 1000000) break;
        }
      }
      if (!b_.fault.empty()) break;
      if (!any_runnable) {
        b_.fault = where(nullptr) + "deadlock: no thread can go on;" + describe_waits(b_);
        break;
      }
      if (progress) {
        idle_sweeps = 0;
        continue;
      }
      // Only spinning threads: another block (another worker) may still release them.
      ++idle_sweeps;
      if (s.workers > 1) {
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() - started > std::chrono::seconds(60)) {
          b_.fault = where(nullptr) + "deadlock: threads spin for over 60 s;" + describe_waits(b_);
        }
      } else if (idle_sweeps > 100) {
        b_.fault = where(nullptr) +
                   "deadlock: threads spin on memory that no running block will write (blocks run "
                   "one at a time in this schedule);" +
                   describe_waits(b_);
      }
    }
  }

  const LaunchInfo& launch_;
  void (*body_)(void*);
  void* context_;
  std::mt19937_64& rng_;
  BlockContext b_;
  std::vector<unsigned char> smem_storage_;
};

std::string strip_template(const char* name) {
  std::string s(name);
  const size_t lt = s.find('<');
  if (lt != std::string::npos) s.resize(lt);
  while (!s.empty() && (s.back() == ' ')) s.pop_back();
  return s;
}

// Runs the whole grid under one schedule; returns the first fault ("" when none).
std::string run_grid(const LaunchInfo& info, void (*body)(void*), void* context) {
  const Schedule& s = *info.schedule;
  const dim3 g = info.grid;
  const size_t nblocks = static_cast<size_t>(g.x) * g.y * g.z;
  std::vector<size_t> order(nblocks);
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 order_rng(s.seed);
  if (s.blocks == BlockOrder::reverse) std::reverse(order.begin(), order.end());
  if (s.blocks == BlockOrder::random) std::shuffle(order.begin(), order.end(), order_rng);
  auto index_of = [&](size_t linear) {
    return uint3{static_cast<unsigned>(linear % g.x), static_cast<unsigned>((linear / g.x) % g.y),
                 static_cast<unsigned>(linear / (static_cast<size_t>(g.x) * g.y))};
  };
  std::atomic<size_t> next{0};
  std::mutex fault_mutex;
  std::string first_fault;
  std::atomic<bool> failed{false};
  auto worker = [&](int id) {
    std::mt19937_64 rng(s.seed * 1000003u + static_cast<uint64_t>(id));
    BlockRunner runner(info, body, context, rng);
    for (;;) {
      if (failed.load()) return;
      const size_t i = next.fetch_add(1);
      if (i >= nblocks) return;
      if (!runner.run(index_of(order[i]))) {
        std::lock_guard<std::mutex> lock(fault_mutex);
        if (first_fault.empty()) first_fault = runner.fault();
        failed = true;
        return;
      }
    }
  };
  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(s.workers), nblocks));
  if (workers <= 1) {
    worker(0);
  } else {
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w) pool.emplace_back(worker, w);
    for (std::thread& t : pool) t.join();
  }
  return first_fault;
}

}  // namespace

void launch_kernel(const void* kernel, const char* name, const char* file, int line,
                   const LaunchConfig& config, const KernelPointers& pointers, void (*body)(void*),
                   void* body_context) {
  if (tl_thread != nullptr) {
    throw KernelFault(where(tl_thread) + "launches a kernel from device code (not emulated)");
  }
  const dim3 g = config.grid, b = config.block;
  const uint64_t threads = static_cast<uint64_t>(b.x) * b.y * b.z;
  if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 ||
      g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
    set_launch_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (config.shared_bytes > static_cast<size_t>(max_dynamic_shared(kernel))) {
    set_launch_error(cudaErrorInvalidValue);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(g_launched_mutex);
    g_launched.insert(std::string(file) + ":" + strip_template(name));
  }
  const std::vector<Schedule>& list = schedules();
  std::unique_ptr<LaunchMemory> memory;
  if (list.size() > 1) memory = std::make_unique<LaunchMemory>(pointers);
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) memory->restore();
    const LaunchInfo info{name, file, line, g, b, config.shared_bytes, &list[i]};
    const std::string f = run_grid(info, body, body_context);
    if (!f.empty()) throw KernelFault(f);
    if (list.size() == 1) break;
    if (i == 0) {
      memory->record_first_result();
    } else {
      const std::string diff = memory->compare();
      if (!diff.empty()) {
        throw KernelFault("kernel " + std::string(name) + " (launched at " + file + ":" +
                          std::to_string(line) + ") leaves different bits under schedule " +
                          list[i].name() + " than under " + list[0].name() + ": " + diff);
      }
    }
  }
}

}  // namespace cuda_emu
