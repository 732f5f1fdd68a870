// Generation with a KV cache. prefill() runs the prompt through the normal forward and copies every
// layer's packed q|k|v rows into the cache (L, B, Tmax, 3C); decode() then feeds one token per row:
// each layer computes the new token's projections, appends them to the cache, and attends over the
// cached keys and values (Backend::attention_decode). A new token costs O(T) attention work per
// layer instead of the O(T²) of recomputing the whole sequence.
#include <stdexcept>
#include <string>
#include <vector>

#include "models/gpt.h"
#include "models/gpt_internal.h"

namespace gpt {

void GptModel::cache_qkv(int l, const Tensor& qkv, int B, int P) {
  const size_t row = static_cast<size_t>(3) * config_.n_embd * dtype_size(backend_.dtype());
  char* cache_l = static_cast<char*>((*kv_cache_)[0].data) + static_cast<size_t>(l) * max_batch_ * max_seq_ * row;
  for (int b = 0; b < B; ++b) {
    backend_.copy(cache_l + static_cast<size_t>(b) * max_seq_ * row,
                  static_cast<const char*>(qkv.data) + static_cast<size_t>(b) * P * row, P * row);
  }
}

std::vector<float> GptModel::prefill(const int32_t* tokens, int B, int P) {
  // Generation always uses the language-model head (a class head, if any, is left aside).
  upload_batch(tokens, nullptr, B, P);
  const int L = config_.n_layer, C = config_.n_embd, Vp = config_.padded_vocab_size();
  if (!kv_cache_) {
    ArenaLayout layout;
    layout.add("kv", backend_.dtype(), {L, max_batch_, max_seq_, 3 * C});
    kv_cache_ = std::make_unique<Arena>(backend_, std::move(layout));
  }
  // Each layer's q, k, v go to the cache as the layer runs: the activation slots may be shared
  // by the layers (a frozen model keeps one).
  forward_impl(B, P, /*lm_logits=*/true, /*fill_kv_cache=*/true);
  const std::vector<float> all = logits_to_host(B, P);
  std::vector<float> last(static_cast<size_t>(B) * Vp);
  for (int b = 0; b < B; ++b)
    std::copy(all.begin() + (static_cast<size_t>(b) * P + P - 1) * Vp,
              all.begin() + (static_cast<size_t>(b) * P + P) * Vp, last.begin() + static_cast<size_t>(b) * Vp);
  return last;
}

std::vector<float> GptModel::decode(const int32_t* tokens, int B, int pos) {
  if (!kv_cache_) throw std::logic_error("decode: call prefill first");
  if (B <= 0 || B > max_batch_) throw std::invalid_argument("decode: batch size outside the allocation");
  if (pos <= 0 || pos >= max_seq_) {
    throw std::out_of_range("decode: position " + std::to_string(pos) + " is outside the context (" +
                            std::to_string(max_seq_) + " tokens)");
  }
  upload_batch(tokens, nullptr, B, 1);
  const Arena& a = *acts_->arena;
  const auto& ln = acts_->layer_numel;
  const int L = config_.n_layer, C = config_.n_embd, NH = config_.n_head, Vp = config_.padded_vocab_size();
  auto A = [&](int idx, Shape s) { return act_view(a, ln, idx, 0, s); };  // layer-0 slots as scratch
  const size_t esize = dtype_size(backend_.dtype());
  const size_t row = static_cast<size_t>(3) * C * esize;
  const Shape bc{B, 1, C};

  Tensor wpe = param(Param::wpe);
  Tensor wpe_at(static_cast<char*>(wpe.data) + static_cast<size_t>(pos) * C * esize, wpe.dtype,
                {config_.max_seq_len - pos, C});
  Tensor residual = A(kEncoded, bc);
  backend_.encoder_forward(residual, A(kTokens, {B, 1}), param(Param::wte), wpe_at);
  Tensor cache = (*kv_cache_)[0];
  for (int l = 0; l < L; ++l) {
    Tensor ln1 = A(kLn1, bc), qkv = A(kQkv, {B, 1, 3 * C}), atty = A(kAtty, bc);
    Tensor residual2 = A(kResidual2, bc), ln2 = A(kLn2, bc);
    Tensor fch = A(kFch, {B, 1, 4 * C}), fch_gelu = A(kFchGelu, {B, 1, 4 * C});
    Tensor residual3 = A(kResidual3, bc);
    backend_.layernorm_forward(ln1, A(kLn1Mean, {B}), A(kLn1Rstd, {B}), residual,
                               layer_view(param(Param::ln1_w), l), layer_view(param(Param::ln1_b), l));
    backend_.matmul_forward(qkv, ln1, layer_view(param(Param::qkv_w), l), layer_view(param(Param::qkv_b), l));
    if (lora_on(LoraTarget::qkv)) lora_forward(LoraTarget::qkv, l, ln1, qkv, B);
    char* cache_l = static_cast<char*>(cache.data) + static_cast<size_t>(l) * max_batch_ * max_seq_ * row;
    for (int b = 0; b < B; ++b) {
      backend_.copy(cache_l + (static_cast<size_t>(b) * max_seq_ + pos) * row,
                    static_cast<char*>(qkv.data) + static_cast<size_t>(b) * row, row);
    }
    // The first B rows of this layer's cache, viewed as (B, Tmax, 3C).
    Tensor cache_view(cache_l, cache.dtype, {B, max_seq_, 3 * C});
    backend_.attention_decode(Tensor(atty.data, atty.dtype, {B, C}), cache_view, pos, NH);
    backend_.matmul_forward(residual2, atty, layer_view(param(Param::attproj_w), l),
                            layer_view(param(Param::attproj_b), l));
    if (lora_on(LoraTarget::attproj)) lora_forward(LoraTarget::attproj, l, atty, residual2, B);
    backend_.residual_forward(residual2, residual2, residual);
    backend_.layernorm_forward(ln2, A(kLn2Mean, {B}), A(kLn2Rstd, {B}), residual2,
                               layer_view(param(Param::ln2_w), l), layer_view(param(Param::ln2_b), l));
    backend_.matmul_forward(fch, ln2, layer_view(param(Param::fc_w), l), layer_view(param(Param::fc_b), l));
    if (lora_on(LoraTarget::fc)) lora_forward(LoraTarget::fc, l, ln2, fch, B);
    backend_.gelu_forward(fch_gelu, fch);
    backend_.matmul_forward(residual3, fch_gelu, layer_view(param(Param::fcproj_w), l),
                            layer_view(param(Param::fcproj_b), l));
    if (lora_on(LoraTarget::fcproj)) lora_forward(LoraTarget::fcproj, l, fch_gelu, residual3, B);
    backend_.residual_forward(residual3, residual3, residual2);
    residual = residual3;  // read by the next layer before its residual3 is rewritten
  }
  Tensor lnf = A(kLnf, bc);
  backend_.layernorm_forward(lnf, A(kLnfMean, {B}), A(kLnfRstd, {B}), residual, param(Param::lnf_w),
                             param(Param::lnf_b));
  Tensor logits = A(kLogits, {B, 1, Vp});
  backend_.matmul_forward(logits, lnf, param(Param::wte), Tensor());
  std::vector<float> host(static_cast<size_t>(B) * Vp);
  backend_.download_f32(host.data(), logits);
  return host;
}

}  // namespace gpt
