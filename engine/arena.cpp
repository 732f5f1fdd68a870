#include "engine/arena.h"

#include <stdexcept>

namespace gpt {

int ArenaLayout::add(const std::string& name, DType dtype, Shape shape) {
  if (find(name) >= 0)
    throw std::invalid_argument("ArenaLayout: duplicate tensor name '" + name + "'");
  size_t offset = (total_bytes_ + kAlignment - 1) / kAlignment * kAlignment;
  entries_.push_back(Entry{name, dtype, shape, offset});
  total_bytes_ = offset + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  return static_cast<int>(entries_.size()) - 1;
}

int ArenaLayout::find(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return static_cast<int>(i);
  return -1;
}

Arena::Arena(Backend& backend, ArenaLayout layout) : backend_(backend), layout_(std::move(layout)) {
  if (layout_.total_bytes() > 0) base_ = backend_.allocate(layout_.total_bytes());
}

Arena::~Arena() {
  if (base_) backend_.release(base_);
}

Tensor Arena::operator[](int i) const {
  const auto& e = layout_.entry(i);
  return Tensor(static_cast<char*>(base_) + e.offset, e.dtype, e.shape);
}

Tensor Arena::get(const std::string& name) const {
  int i = layout_.find(name);
  if (i < 0) throw std::out_of_range("arena has no tensor named '" + name + "'");
  return (*this)[i];
}

void Arena::zero() {
  if (base_) backend_.fill_zero(base_, layout_.total_bytes());
}

Tensor layer_view(const Tensor& stacked, int l) {
  const Shape& s = stacked.shape;
  if (s.ndim() < 2) throw ShapeError("layer_view: tensor " + stacked.str() + " has no layer dim");
  if (l < 0 || l >= s[0])
    throw ShapeError("layer_view: layer index out of range for " + stacked.str());
  Shape inner;
  switch (s.ndim()) {
    case 2:
      inner = Shape{s[1]};
      break;
    case 3:
      inner = Shape{s[1], s[2]};
      break;
    default:
      inner = Shape{s[1], s[2], s[3]};
      break;
  }
  char* base = static_cast<char*>(stacked.data) + static_cast<size_t>(l) *
                                                      static_cast<size_t>(inner.numel()) *
                                                      dtype_size(stacked.dtype);
  return Tensor(base, stacked.dtype, inner);
}

}  // namespace gpt
