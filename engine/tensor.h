// Tensor views: a pointer, a dtype and a shape. A view never owns memory; memory lives in arenas
// (engine/arena.h) allocated once by a Backend. Views are cheap to copy and are what the Backend's
// checked entry points take, so that shapes and dtypes are asserted at the API boundary.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace gpt {

// f32: CPU training and the CUDA fp32 mode. bf16: CUDA mixed precision. f64: CPU gradient checks.
// i32: token ids and targets.
enum class DType : uint8_t { f32, bf16, f64, i32 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
DType dtype_from_name(const std::string& name);  // throws on an unknown name

// Up to 4 dimensions, row-major, contiguous.
class Shape {
 public:
  static constexpr int kMaxDims = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  int ndim() const { return ndim_; }
  int64_t operator[](int i) const;
  int64_t numel() const;
  int64_t rows() const;  // product of all dims but the last (1 for a vector)
  int64_t cols() const;  // the last dim
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string str() const;  // "(2, 3, 4)"

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Shape shape;

  Tensor() = default;
  Tensor(void* data_, DType dtype_, Shape shape_) : data(data_), dtype(dtype_), shape(shape_) {}
  bool empty() const { return data == nullptr; }
  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // A view of the same memory with another shape of the same element count.
  Tensor reshape(Shape new_shape) const;
  std::string str() const;  // "f32(2, 3, 4)"
};

// Thrown at API boundaries for a wrong shape, dtype or argument; the message names what was wrong.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Checks used by the Backend entry points.
void check_dtype(const Tensor& t, DType expected, const char* what);
void check_shape(const Tensor& t, const Shape& expected, const char* what);
void check_not_empty(const Tensor& t, const char* what);

}  // namespace gpt
