// Memory planning without memory: a Backend and a Communicator that let the real set-up code
// (GptModel, its fine-tuning modes, DataParallel, AdamW) run its allocations without allocating.
//
// SizingBackend hands out distinct fake addresses that are never dereferenced, counts live and peak
// bytes exactly as the CPU and CUDA backends count them (allocation_bytes per allocation), and
// turns every op, copy and fill into a no-op. Building a model on it therefore costs no memory
// and no time, and its peak_bytes() is the peak the same sequence of allocations reaches on a real
// backend. gpt-plan (models/memory_plan.h) is built on it: the plan is the engine's own allocation
// code, not a second formula beside it.
//
// What it cannot know: memory a backend sizes inside an op at run time (the CUDA backend's
// grow-only scratch for attention, the encoder's sort, partial sums: sized by the first step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/communicator.h"

namespace gpt {

class SizingBackend final : public Backend {
 public:
  // device cpu: dtype f32 or f64 (statistics in the same); cuda: bf16 or f32 (statistics f32), and
  // the cuBLASLt workspace the CUDA backend allocates at start is counted from the beginning.
  // Throws std::invalid_argument for a dtype the device does not support.
  SizingBackend(DeviceKind device, DType dtype);

  DeviceKind device() const override { return device_; }
  DType dtype() const override { return dtype_; }
  DType stat_dtype() const override { return stat_dtype_; }
  std::string description() const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  size_t peak_bytes() const override { return peak_bytes_; }
  size_t live_bytes() const { return live_bytes_; }
  // Bytes the backend itself holds from the start (the CUDA matmul workspace; 0 on the CPU).
  size_t startup_bytes() const { return startup_bytes_; }

  // Everything below does nothing.
  void copy_from_host(void*, const void*, size_t) override {}
  void copy_to_host(void*, const void*, size_t) override {}
  void copy(void*, const void*, size_t) override {}
  void fill_zero(void*, size_t) override {}
  void synchronize() override {}
  void upload_f32(Tensor, const float*) override {}
  void download_f32(float*, const Tensor&) override {}
  void encoder_forward(Tensor, const Tensor&, const Tensor&, const Tensor&) override {}
  void encoder_backward(Tensor, Tensor, const Tensor&, const Tensor&) override {}
  void layernorm_forward(Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                         const Tensor&) override {}
  void layernorm_backward(Tensor, Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&) override {}
  void matmul_forward(Tensor, const Tensor&, const Tensor&, const Tensor&) override {}
  void matmul_backward(Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                       const Tensor&) override {}
  void gelu_forward(Tensor, const Tensor&) override {}
  void gelu_backward(Tensor, const Tensor&, const Tensor&) override {}
  void residual_forward(Tensor, const Tensor&, const Tensor&) override {}
  void attention_forward(Tensor, Tensor, const Tensor&, int, int) override {}
  void attention_backward(Tensor, const Tensor&, const Tensor&, const Tensor&, const Tensor&, int,
                          int) override {}
  void crossentropy(Tensor, Tensor, const Tensor&, int, float, LossGrad) override {}
  void rmsnorm_forward(Tensor, Tensor, const Tensor&, const Tensor&, float) override {}
  void residual_rmsnorm_forward(Tensor, Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                                float) override {}
  void rmsnorm_backward(Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&) override {}
  void qk_norm_forward(Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&, int, int,
                       float) override {}
  void qk_norm_backward(Tensor, Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, int, int) override {}
  void rope_forward(Tensor, const Tensor&, const Tensor&, int, int, int) override {}
  void rope_backward(Tensor, const Tensor&, const Tensor&, int, int, int) override {}
  void swiglu_forward(Tensor, const Tensor&) override {}
  void swiglu_backward(Tensor, const Tensor&, const Tensor&) override {}
  double sum_of_squares(const Tensor&) override { return 0.0; }
  double sum(const Tensor&) override { return 0.0; }
  void scale(Tensor, const Tensor&, float) override {}
  void attention_decode(Tensor, const Tensor&, const Tensor&, int, int, int) override {}
  void adamw_update(Tensor, const Tensor&, Tensor, Tensor, Tensor, const AdamWStep&) override {}

 private:
  DeviceKind device_;
  DType dtype_;
  DType stat_dtype_;
  uintptr_t next_address_;
  std::map<uintptr_t, size_t> sizes_;
  size_t startup_bytes_ = 0;
  size_t live_bytes_ = 0;
  size_t peak_bytes_ = 0;
};

// A communicator that only knows its place (rank, world size, whether the data path is device
// memory as with NCCL): enough for DataParallel to lay out its shards and buffers. Every collective
// throws std::logic_error.
class SizingCommunicator final : public Communicator {
 public:
  SizingCommunicator(int world_size, int rank, bool device_buffers);
  std::string kind() const override { return "sizing"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return 0; }
  bool device_buffers() const override { return device_buffers_; }
  void all_reduce_sum(double*, size_t) override { refuse(); }
  void all_reduce_sum(int64_t*, size_t) override { refuse(); }
  void all_reduce_max(int64_t*, size_t) override { refuse(); }
  void all_gather_host(const void*, void*, size_t) override { refuse(); }
  std::vector<std::string> gather_bytes(const std::string&, int) override { refuse(); }
  void broadcast_host(void*, size_t, int) override { refuse(); }
  void barrier() override { refuse(); }
  void reduce_scatter(const void*, void*, size_t, CommDType, bool) override { refuse(); }
  void all_gather(const void*, void*, size_t, CommDType) override { refuse(); }
  [[noreturn]] void abort(const std::string& message) override;

 private:
  [[noreturn]] static void refuse();
  int world_size_, rank_;
  bool device_buffers_;
};

}  // namespace gpt
