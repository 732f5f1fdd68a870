// An arena: one allocation from a Backend, carved into named tensor views. Parameters, gradients,
// optimizer state and activations each get one, allocated once at start (llm.c style), so the
// training step never allocates. The same layout code answers "how many bytes" without allocating
// (ArenaLayout), which is what a memory planner needs.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace gpt {

// Describes the tensors of an arena before it exists: name, dtype, shape; each tensor starts at a
// 256-byte aligned offset (enough for 16-byte vector loads and cuBLASLt's alignment wishes).
class ArenaLayout {
 public:
  static constexpr size_t kAlignment = 256;
  // Returns the index of the new entry.
  int add(const std::string& name, DType dtype, Shape shape);
  size_t total_bytes() const { return total_bytes_; }
  int size() const { return static_cast<int>(entries_.size()); }
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    size_t offset;
  };
  const Entry& entry(int i) const { return entries_.at(i); }
  int find(const std::string& name) const;  // -1 when absent

 private:
  std::vector<Entry> entries_;
  size_t total_bytes_ = 0;
};

class Arena {
 public:
  Arena(Backend& backend, ArenaLayout layout);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  Tensor operator[](int i) const;
  Tensor get(const std::string& name) const;  // throws std::out_of_range naming the tensor
  const ArenaLayout& layout() const { return layout_; }
  void* data() const { return base_; }
  size_t bytes() const { return layout_.total_bytes(); }
  void zero();

 private:
  Backend& backend_;
  ArenaLayout layout_;
  void* base_ = nullptr;
};

// A view of layer l of a stacked (L, ...) tensor: drops the leading dim.
Tensor layer_view(const Tensor& stacked, int l);

}  // namespace gpt
