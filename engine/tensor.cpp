#include "engine/tensor.h"

#include <sstream>

namespace gpt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::bf16:
      return 2;
    case DType::f64:
      return 8;
    case DType::i32:
      return 4;
  }
  throw std::logic_error("dtype_size: unknown dtype");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::f64:
      return "f64";
    case DType::i32:
      return "i32";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  if (name == "f32" || name == "fp32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "f64" || name == "fp64" || name == "float64") return DType::f64;
  if (name == "i32" || name == "int32") return DType::i32;
  throw std::invalid_argument("unknown dtype '" + name + "' (expected f32, bf16, f64 or i32)");
}

Shape::Shape(std::initializer_list<int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    throw ShapeError("Shape: at most " + std::to_string(kMaxDims) + " dims");
  }
  for (int64_t d : dims) {
    if (d < 0) throw ShapeError("Shape: negative dimension");
    dims_[ndim_++] = d;
  }
}

int64_t Shape::operator[](int i) const {
  if (i < 0) i += ndim_;
  if (i < 0 || i >= ndim_) throw ShapeError("Shape: dim index out of range in " + str());
  return dims_[i];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[i];
  return ndim_ == 0 ? 0 : n;
}

int64_t Shape::cols() const {
  return ndim_ == 0 ? 0 : dims_[ndim_ - 1];
}

int64_t Shape::rows() const {
  if (ndim_ == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i + 1 < ndim_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (ndim_ != other.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < ndim_; ++i) os << (i ? ", " : "") << dims_[i];
  os << ")";
  return os.str();
}

Tensor Tensor::reshape(Shape new_shape) const {
  if (new_shape.numel() != shape.numel()) {
    throw ShapeError("reshape " + shape.str() + " -> " + new_shape.str() +
                     ": element counts differ");
  }
  return Tensor(data, dtype, new_shape);
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype)) + shape.str();
}

void check_dtype(const Tensor& t, DType expected, const char* what) {
  if (t.dtype != expected) {
    throw ShapeError(std::string(what) + ": expected dtype " + dtype_name(expected) + ", got " +
                     t.str());
  }
}

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  // Leading dims may be split or merged ((B, T, C) passes for (N, C)); the element count and, for
  // matrices, the row width must match.
  const bool width_ok = expected.ndim() <= 1 || t.shape.cols() == expected.cols();
  if (t.shape.numel() != expected.numel() || !width_ok) {
    throw ShapeError(std::string(what) + ": expected shape " + expected.str() + ", got " +
                     t.shape.str());
  }
}

void check_not_empty(const Tensor& t, const char* what) {
  if (t.empty()) throw ShapeError(std::string(what) + ": tensor is empty (null data)");
}

}  // namespace gpt
