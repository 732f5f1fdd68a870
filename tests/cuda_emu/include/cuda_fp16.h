// Half precision for the CPU emulation of CUDA (tests/cuda_emu): the storage type only (nccl.h
// names it; no kernel of the project computes in fp16).
#pragma once

#include "cuda_emu/core.h"

struct __half {
  unsigned short __x;
};
struct __half2 {
  __half x, y;
};
typedef __half half;
