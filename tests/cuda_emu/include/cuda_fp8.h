// fp8 storage types for the CPU emulation of CUDA (tests/cuda_emu): named by nccl.h only.
#pragma once

#include "cuda_emu/core.h"

struct __nv_fp8_e4m3 {
  unsigned char __x;
};
struct __nv_fp8_e5m2 {
  unsigned char __x;
};
