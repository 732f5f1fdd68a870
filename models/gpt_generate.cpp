// Generation with a KV cache. prefill() runs the prompt through the normal forward and copies every
// layer's key and value heads (after RoPE in the Llama family) into the cache (L, B, Tmax,
// 2·NKV·HS: each key/value head once, never repeated per query head, and no queries); decode() then
// runs the same forward (block_forward, gpt.cpp) for one token per row: each layer computes the new
// token's projections, appends them to the cache, and attends over the cached keys and values
// (Backend::attention_decode). A new token costs O(T) attention work per layer instead of the O(T²)
// of recomputing the whole sequence.
#include <stdexcept>
#include <string>
#include <vector>

#include "models/gpt.h"
#include "models/gpt_internal.h"

namespace gpt {

// A cache row holds one position's key and value heads, [k | v], 2·NKV·HS values: the part of a
// qkv row after its NH·HS query values.
Tensor GptModel::cache_view(int l, int B) const {
  const int64_t width = config_.qkv_width() - config_.attn_width();
  const size_t row = static_cast<size_t>(width) * dtype_size(backend_.dtype());
  const Tensor cache = (*kv_cache_)[0];
  char* cache_l =
      static_cast<char*>(cache.data) + static_cast<size_t>(l) * max_batch_ * max_seq_ * row;
  return Tensor(cache_l, cache.dtype, {B, max_seq_, width});
}

void GptModel::cache_qkv(int l, const Tensor& qkv, int B, int P, int pos) {
  const size_t esize = dtype_size(backend_.dtype());
  const size_t qkv_row = static_cast<size_t>(config_.qkv_width()) * esize;
  const size_t q_part = static_cast<size_t>(config_.attn_width()) * esize;
  const size_t row = qkv_row - q_part;
  char* cache_l = static_cast<char*>(cache_view(l, B).data);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < P; ++t)
      backend_.copy(
          cache_l + (static_cast<size_t>(b) * max_seq_ + pos + t) * row,
          static_cast<const char*>(qkv.data) + (static_cast<size_t>(b) * P + t) * qkv_row + q_part,
          row);
}

std::vector<float> GptModel::prefill(const int32_t* tokens, int B, int P) {
  // Generation always uses the language-model head (a class head, if any, is left aside).
  upload_batch(tokens, nullptr, B, P);
  const int L = config_.n_layer, Vp = config_.padded_vocab_size();
  if (!kv_cache_) {
    ArenaLayout layout;
    layout.add("kv", backend_.dtype(),
               {L, max_batch_, max_seq_, config_.qkv_width() - config_.attn_width()});
    kv_cache_ = std::make_unique<Arena>(backend_, std::move(layout));
  }
  // Each layer's q, k, v go to the cache as the layer runs: the activation slots may be shared
  // by the layers (a frozen model keeps one).
  forward_impl(B, P, /*lm_logits=*/true, Attend::causal_fill_cache);
  const std::vector<float> all = logits_to_host(B, P);
  std::vector<float> last(static_cast<size_t>(B) * Vp);
  for (int b = 0; b < B; ++b)
    std::copy(all.begin() + (static_cast<size_t>(b) * P + P - 1) * Vp,
              all.begin() + (static_cast<size_t>(b) * P + P) * Vp,
              last.begin() + static_cast<size_t>(b) * Vp);
  return last;
}

std::vector<float> GptModel::decode(const int32_t* tokens, int B, int pos) {
  if (!kv_cache_) throw std::logic_error("decode: call prefill first");
  if (B <= 0 || B > max_batch_)
    throw std::invalid_argument("decode: batch size outside the allocation");
  if (pos <= 0 || pos >= max_seq_) {
    throw std::out_of_range("decode: position " + std::to_string(pos) +
                            " is outside the context (" + std::to_string(max_seq_) + " tokens)");
  }
  upload_batch(tokens, nullptr, B, 1);
  // The same forward as training's with T = 1 from position pos: each block appends its q, k, v
  // to the cache and attends over it.
  forward_impl(B, 1, /*lm_logits=*/true, Attend::decode, pos);
  return logits_to_host(B, 1);
}

}  // namespace gpt
