#include "engine/sizing.h"

#include <stdexcept>

namespace gpt {

SizingBackend::SizingBackend(DeviceKind device, DType dtype) : device_(device), dtype_(dtype) {
  // Far from any real mapping, so a stray dereference faults instead of reading memory.
  next_address_ = uintptr_t{1} << 46;
  if (device == DeviceKind::cpu) {
    if (dtype != DType::f32 && dtype != DType::f64)
      throw std::invalid_argument(std::string("the cpu backend computes in f32 or f64, not ") +
                                  dtype_name(dtype));
    stat_dtype_ = dtype;
  } else {
    if (dtype != DType::f32 && dtype != DType::bf16)
      throw std::invalid_argument(std::string("the cuda backend computes in bf16 or f32, not ") +
                                  dtype_name(dtype));
    stat_dtype_ = DType::f32;
    allocate(kCudaMatmulWorkspaceBytes);  // as CudaBackend's constructor does
    startup_bytes_ = live_bytes_;
  }
}

std::string SizingBackend::description() const {
  return std::string("sizing (") + (device_ == DeviceKind::cpu ? "cpu " : "cuda ") +
         dtype_name(dtype_) + "): counts allocations, allocates nothing";
}

void* SizingBackend::allocate(size_t bytes) {
  const size_t rounded = allocation_bytes(bytes);
  const uintptr_t address = next_address_;
  next_address_ += rounded + kAllocationGranule;  // a gap: no two allocations touch
  sizes_[address] = rounded;
  live_bytes_ += rounded;
  if (live_bytes_ > peak_bytes_) peak_bytes_ = live_bytes_;
  return reinterpret_cast<void*>(address);
}

void SizingBackend::release(void* ptr) {
  auto it = sizes_.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == sizes_.end()) return;
  live_bytes_ -= it->second;
  sizes_.erase(it);
}

SizingCommunicator::SizingCommunicator(int world_size, int rank, bool device_buffers)
    : world_size_(world_size), rank_(rank), device_buffers_(device_buffers) {
  if (world_size < 1)
    throw std::invalid_argument("world size must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside [0, " +
                                std::to_string(world_size) + ")");
}

void SizingCommunicator::refuse() {
  throw std::logic_error("the sizing communicator does not communicate (memory planning only)");
}

void SizingCommunicator::abort(const std::string& message) {
  throw std::logic_error("sizing communicator: abort: " + message);
}

}  // namespace gpt
