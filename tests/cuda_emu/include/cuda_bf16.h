// bfloat16 for the CPU emulation of CUDA (tests/cuda_emu): the storage type and the conversions
// the kernels and tests use, with CUDA's rounding (round to nearest even; NaN -> 0x7FFF).
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda_emu/core.h"

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f);  // round to nearest even, as __float2bfloat16
  operator float() const {
    const uint32_t bits = static_cast<uint32_t>(__x) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) {
  __nv_bfloat16 r;
  r.__x = v;
  return r;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 v) {
  return v.__x;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return __ushort_as_bfloat16(0x7FFF);  // NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return __ushort_as_bfloat16(static_cast<unsigned short>(bits >> 16));
}
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return __ushort_as_bfloat16(0x7FFF);
  return __ushort_as_bfloat16(static_cast<unsigned short>(bits >> 16));
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  return __float2bfloat16_rn(f);
}
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(__float2bfloat16_rn(f).__x) {}
inline float __bfloat162float(__nv_bfloat16 v) {
  return static_cast<float>(v);
}
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) {
  return __floats2bfloat162_rn(v.x, v.y);
}
inline float2 __bfloat1622float2(__nv_bfloat162 v) {
  return make_float2(static_cast<float>(v.x), static_cast<float>(v.y));
}
