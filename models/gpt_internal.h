// Internals shared by the GptModel sources (gpt.cpp: layout, forward, backward;
// gpt_finetune.cpp: freezing, LoRA, the class head; gpt_generate.cpp: the KV-cache decoder).
// Not part of the public API.
#pragma once

#include <memory>
#include <vector>

#include "engine/arena.h"
#include "models/gpt.h"

namespace gpt {

// Per-layer activations kept from forward to backward, stacked over layers.
enum Act : int {
  kTokens = 0,  // (B, T) i32
  kTargets,     // (B, T) i32
  kEncoded,     // (B, T, C)
  kLn1,         // (L, B, T, C)
  kLn1Mean,     // (L, B, T)     stat dtype (LayerNorm only; RMSNorm keeps no mean)
  kLn1Rstd,     // (L, B, T)     stat dtype
  kQkv,         // (L, B, T, W)  W = (NH + 2·NKV)·HS: [q | k | v], after QK-norm and RoPE
  kQkvRaw,      // (L, B, T, W)  the projection before QK-norm (only with qk_norm)
  kQkRstd,      // (L, B, T, NH + NKV) QK-norm's statistics (only with qk_norm)
  kAtty,        // (L, B, T, NH·HS) attention output, before the projection
  kAttLse,      // (L, B, NH, T) stat dtype
  kResidual2,   // (L, B, T, C)  stream after the attention block
  kLn2,         // (L, B, T, C)
  kLn2Mean,     // (L, B, T)
  kLn2Rstd,     // (L, B, T)
  kFch,         // (L, B, T, F)  fc output, before GELU (4C) or SwiGLU ([gate | up], 2H)
  kFchGelu,     // (L, B, T, H)  after the activation
  kResidual3,   // (L, B, T, C)  stream after the MLP block
  kLnf,         // (B, T, C)
  kLnfMean,     // (B, T)
  kLnfRstd,     // (B, T)
  kLogits,      // (B, T, Vp)    overwritten in place by dlogits during training
  kLosses,      // (B, T)        stat dtype
  // backward scratch, reused by every layer
  kDResidual,  // (B, T, C)     gradient of the residual stream (accumulates)
  kDLn,        // (B, T, C)     gradient at a LayerNorm output
  kDQkv,       // (B, T, W)
  kDAtty,      // (B, T, NH·HS)
  kDFch,       // (B, T, F)
  kDFchAct,    // (B, T, H)     gradient after SwiGLU (GPT-2's GELU runs in place in kDFch)
  kNumActs
};

// View of activation `idx` for layer l (or the whole entry for unstacked ones) with shape s.
inline Tensor act_view(const Arena& arena, const std::vector<int64_t>& layer_numel, int idx, int l,
                       Shape s) {
  Tensor base = arena[idx];
  const size_t offset = static_cast<size_t>(l) * layer_numel[idx] * dtype_size(base.dtype);
  return Tensor(static_cast<char*>(base.data) + offset, base.dtype, s);
}

// The stacked entries hold L - layer_offset slots: layer l is in slot max(0, l - layer_offset).
// layer_offset = lowest - 1 when the backward stops at layer `lowest` > 0, so the frozen layers
// below it all run in slot 0, and slot 0 ends up holding layer lowest-1, whose output (residual3)
// is the one activation of theirs the backward reads.
struct GptModel::Activations {
  std::unique_ptr<Arena> arena;
  // Per-slot stride (in elements) of each stacked entry, for the maximum (B, T).
  std::vector<int64_t> layer_numel;
  int layer_offset = 0;
  Tensor view(int idx, int l, Shape s) const {
    return act_view(*arena, layer_numel, idx, l > layer_offset ? l - layer_offset : 0, s);
  }
};

// LoRA adapters: for each target, A (L, r, in) and B (L, out, r) with their gradients, the saved
// products h = x·Aᵀ (L, B, T, r) for the backward, and scratch for the low-rank path.
struct GptModel::Lora {
  LoraConfig config;
  std::unique_ptr<Arena> params;  // "qkv.A", "qkv.B", ...
  std::unique_ptr<Arena> grads;
  std::unique_ptr<Arena>
      acts;  // "qkv.h" (L, B, T, r), ..., "u" (B, T, 4C), "dh" (B, T, r), "dx" (B, T, 4C)
  int a_index[4] = {-1, -1, -1, -1};
  int b_index[4] = {-1, -1, -1, -1};
  int h_index[4] = {-1, -1, -1, -1};
  bool trainable = true;
};

// The classification head: cls_w (K, C), cls_b (K), their gradients, and per-batch buffers.
struct GptModel::ClassHead {
  std::unique_ptr<Arena> params;  // cls_w, cls_b
  std::unique_ptr<Arena> grads;
  std::unique_ptr<Arena> acts;  // x (B, C), logits (B, K), losses (B), labels (B) i32, dx (B, C)
  std::vector<int> positions;   // per row: the classified position, -1 for a padding row
  bool trainable = true;
};

}  // namespace gpt
