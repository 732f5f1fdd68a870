// The GPT-2 model: pre-LN transformer blocks, learned position embeddings, tied
// input/output embeddings, a 4x GELU MLP, the vocabulary padded to a multiple of 128 (the
// padded logits are excluded from the softmax). Explicit forward and backward passes,
// written once against the Backend interface, so the same code runs on the CPU (f32, or f64
// for gradient checks) and on CUDA.
//
//   x   = wte[tokens] + wpe[0:T]
//   for each layer l:
//     x = x + attn_proj(attention(qkv(ln1(x))))
//     x = x + fc_proj(gelu(fc(ln2(x))))
//   logits = lnf(x) · wteᵀ          (N, Vp), columns >= V masked in the loss
//
// Memory: parameters live in one arena allocated at construction; the activations in one arena
// for a maximum batch (max_batch, max_seq), allocated by the first forward (or
// allocate_activations); forward/backward accept any B <= max_batch and T <= max_seq and allocate
// nothing after that. The gradient arena is allocated when first needed (parameters(),
// zero_grad(), forward_backward(), or set_trainable). Both hold only what the trainable set needs:
// gradients for the layers that train (a stacked tensor gets rows for its lowest to its highest
// trained layer, not for all L), and per-layer activations for the layers the backward runs
// through; the frozen layers below them share one slot, since nothing reads their activations
// again. So a model that is only evaluated (everything frozen) holds no gradients and one layer of
// activations, and freezing the lower blocks saves their gradients and their activations.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/model_interface.h"
#include "engine/safetensors.h"
#include "kernels/rope.h"
#include "models/gpt_params.h"
#include "models/model.h"

namespace gpt {

// The targets as a comma-separated list ("qkv,attproj"), in table order.
std::string lora_targets_text(const LoraConfig& lc);
// Sets lc's targets from such a list (an empty list, or a trailing comma, adds none); returns the
// first name that is not a target ("" when every name is one: check `ok`).
// Hugging Face's names are taken too: q_proj, k_proj, v_proj (together: qkv), o_proj (attproj),
// gate_proj, up_proj (together: fc), down_proj (fcproj).
struct LoraTargetsParse {
  bool ok = true;
  std::string unknown;
  std::string why;  // when a known name cannot be taken alone
};
LoraTargetsParse set_lora_targets(LoraConfig& lc, const std::string& list);

// The decoder's shape. Two families share the model code: GPT-2 ("gpt2": LayerNorm with biases,
// learned position embeddings, a 4x GELU MLP, biases on every matrix, a tied output layer) and
// the Llama family ("llama": Llama 2/3, SmolLM2, Qwen2, Qwen3: RMSNorm, rotary positions,
// grouped-query attention, a SwiGLU MLP, no biases but optional q/k/v ones, optional QK-norm, a
// tied or untied output layer). The fields after vocab_size belong to the Llama family; GPT-2
// keeps their defaults. docs/models.md says what each means and how Hugging Face names it.
struct GptConfig {
  std::string family = "gpt2";  // "gpt2" or "llama"
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  int max_seq_len = 1024;
  int vocab_size = 50257;
  int n_kv_head = 0;       // key/value heads, dividing n_head (0: n_head)
  int head_dim = 0;        // channels per head (0: n_embd / n_head)
  int mlp_hidden = 0;      // the SwiGLU MLP's width (GPT-2: 4·n_embd)
  double norm_eps = 1e-5;  // RMSNorm's epsilon (GPT-2's LayerNorm: 1e-5, fixed)
  double rope_theta = 10000.0;
  cpu::RopeScaling rope_scaling;  // factor 0: none
  bool qkv_bias = false;          // biases on q, k and v (Qwen2)
  bool qk_norm = false;           // RMSNorm over each head of q and k before RoPE (Qwen3)
  bool tied_head = true;          // the output layer is the token embedding

  bool llama() const { return family == "llama"; }
  static constexpr int kVocabMultiple = 128;
  int padded_vocab_size() const {
    return (vocab_size + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple;
  }
  int kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head; }
  int head_size() const { return head_dim > 0 ? head_dim : n_embd / n_head; }
  int attn_width() const { return n_head * head_size(); }  // attention output, NH·HS
  int qkv_width() const { return (n_head + 2 * kv_heads()) * head_size(); }
  int mlp_width() const { return llama() ? mlp_hidden : 4 * n_embd; }
  int fc_width() const { return llama() ? 2 * mlp_hidden : 4 * n_embd; }  // [gate | up] for SwiGLU
  // Throws std::invalid_argument naming the field (non-positive sizes, n_embd % n_head != 0,
  // n_head % n_kv_head != 0, an odd head_dim, Llama fields set on GPT-2, ...).
  void validate() const;
  // Parameter count (without the padded vocabulary rows, which are kept at zero).
  int64_t num_parameters() const;
  // Training FLOPs per token (forward + backward, as in the PaLM paper's MFU accounting):
  // 6·N_params(the block matrices + the output layer) + 6·L·T·NH·HS for causal attention.
  double flops_per_token(int seq_len) const;
};

// The parameters (Param, their names, shapes, weight decay, HF and llm.c
// names): models/gpt_params.h.

class GptModel : public LanguageModel {
 public:
  using MemoryUse = gpt::MemoryUse;
  GptModel(const GptConfig& config, Backend& backend, int max_batch, int max_seq);
  ~GptModel() override;

  const GptConfig& config() const { return config_; }
  Backend& backend() override { return backend_; }
  int max_batch() const override { return max_batch_; }
  int max_seq() const override { return max_seq_; }

  // GPT-2 initialisation: normal(0, 0.02) for weights and embeddings, residual projections
  // (attproj_w, fcproj_w) scaled by 1/sqrt(2·n_layer), zeros for biases, ones for LayerNorm
  // weights; padded vocabulary rows are zero. Deterministic in `seed`.
  void init_weights(uint64_t seed) override;

  // ---- LanguageModel (models/model.h) ----------------------------------------------------------
  std::string family() const override { return config_.family; }
  ModelShape shape() const override;
  nlohmann::json config_json() const override;  // gpt_io.cpp
  int64_t num_parameters() const override { return config_.num_parameters(); }
  double flops_per_token(int seq_len) const override { return config_.flops_per_token(seq_len); }
  bool param_kind(const std::string& name, ParamKind* kind, bool* bias) const override;
  SafeTensorsFile weights_to_safetensors() override;  // gpt_interop.cpp

  // ---- TrainableModel ------------------------------------------------------------------------
  // tokens, targets: host (B,T) int32; targets may be null (logits only). Returns the sum of the
  // per-token losses over unmasked targets (0 when targets is null).
  double forward(const int32_t* tokens, const int32_t* targets, int B, int T) override;
  // Forward with the fused classifier writing dlogits scaled by dloss, then the full backward.
  // Gradients ACCUMULATE into the gradient arena (call zero_grad() once per optimizer step).
  // Returns the sum of the per-token losses over unmasked targets.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                          float dloss) override;
  void zero_grad() override;
  std::vector<ParamGroup> parameters() override;

  // The logits of the last forward, copied to the host as fp32 (B, T, Vp).
  std::vector<float> logits_to_host(int B, int T) override;

  // ---- fine-tuning ----------------------------------------------------------------------------
  // Which parameters train. The predicate gets the parameter's name (param_name) and its layer
  // (-1 for tensors that are not stacked over layers); frozen parameters get no gradient (their
  // backward work is skipped, and backpropagation stops below the lowest trainable layer) and no
  // optimizer state. Default: everything trains. Call before creating the optimizer.
  void set_trainable(
      const std::function<bool(const std::string& name, int layer)>& predicate) override;
  // freeze() (LanguageModel): nothing trains, no gradients, and all layers run in one
  // activation slot.
  bool is_trainable(Param p, int layer) const;
  int64_t num_trainable_parameters() const override;

  // LoRA (Hu et al. 2021) on the chosen block matrices: W x + (alpha / rank) · B (A x), A
  // (rank, in) initialised uniform(±1/sqrt(in)) as PEFT does, B (out, rank) zero, so the
  // model is unchanged at the start. Freezes every base parameter (set_trainable
  // afterwards to train some of them too).
  void enable_lora(const LoraConfig& lora, uint64_t seed) override;
  bool lora_enabled() const override;
  const LoraConfig& lora_config() const override;
  // W += (alpha / rank) · B A for every adapted matrix, then B = 0, so the adapters can be dropped
  // (or kept: they are the identity now).
  void merge_lora() override;
  // Adapter tensors ("lora.<target>.A" (L, rank, in), "lora.<target>.B" (L, out, rank)).
  std::vector<std::pair<std::string, Tensor>> lora_tensors() const override;

  // A classification head on the final hidden state of one position per row: logits (B, K) =
  // lnf(x)[b, pos_b] · cls_wᵀ + cls_b. In this mode forward/forward_backward read the class label
  // from `targets`: each row has exactly one target >= 0, at the position to classify (the last
  // non-pad token), holding the class id; rows with every target masked are padding rows.
  void enable_class_head(int num_classes, uint64_t seed) override;
  int num_classes() const override { return num_classes_; }
  // With a class head enabled, whether forward/forward_backward use it (true) or the language-model
  // head (false: e.g. for replayed pretraining batches that keep the LM head and body in shape).
  void set_class_head_active(bool active) override { class_head_active_ = active; }
  bool class_head_active() const override { return head_ && class_head_active_; }
  Tensor class_param(int i) const override;  // 0: cls_w (K, C), 1: cls_b (K)
  // Class logits (B, K) of the last forward in class-head mode.
  std::vector<float> class_logits_to_host(int B) override;

  // ---- generation with a KV cache ---------------------------------------------------------------
  // Runs the prompt (B, P) through the model, keeps every layer's q, k, v in the cache, and returns
  // the next-token logits (B, Vp) at position P-1.
  std::vector<float> prefill(const int32_t* tokens, int B, int P) override;
  // Feeds token (B) at position pos (= tokens so far) and returns the logits (B, Vp) for position
  // pos + 1. Costs O(pos) attention work per layer: earlier positions come from the cache.
  std::vector<float> decode(const int32_t* tokens, int B, int pos) override;
  // Parameter views, e.g. for tests and checkpoints (a tensor the config lacks has no elements).
  Tensor param(Param p) const;
  bool has_param(Param p) const { return present_[static_cast<int>(p)]; }
  // Empty when no layer of p trains, or before gradients exist. For a stacked p: the rows of layers
  // grad_first_layer(p) .. (its highest trained layer), not all L.
  Tensor grad(Param p) const;
  int grad_first_layer(Param p) const { return grad_first_[static_cast<int>(p)]; }
  // Allocates the activation arena now, laid out for the trainable set of now (the first forward
  // does it otherwise; set_trainable drops it, to be laid out again).
  void allocate_activations() override;
  Arena& param_arena() { return *params_; }
  Arena& grad_arena() {
    ensure_grads();
    return *grads_;
  }

  // The device memory held now (LanguageModel::memory_use).
  MemoryUse memory_use() const override;

 private:
  struct Activations;
  struct Lora;
  struct ClassHead;
  enum class LoraTarget : int { qkv = 0, attproj, fc, fcproj, count };
  // How a block's attention runs: over the batch's own T positions (causal), the same while
  // copying each layer's q, k, v into the KV cache (causal_fill_cache: prefill), or for one new
  // position per row attending over the cache (decode: T = 1).
  enum class Attend { causal, causal_fill_cache, decode };
  // The forward from the tokens uploaded by upload_batch to the final LayerNorm (and the logits
  // when lm_logits). `pos` is the position of the first token (decode: the new token's).
  void forward_impl(int B, int T, bool lm_logits, Attend attend = Attend::causal, int pos = 0);
  // One block, written once for training, prefill and decode: reads the residual stream
  // (B, T, C), writes layer l's activations (decode: the layer-0 slots, as scratch), returns the
  // stream after the block.
  Tensor block_forward(int l, const Tensor& residual, int B, int T, Attend attend, int pos);
  // The key/value part of qkv (B, P, W) into cache rows pos.. of layer l.
  void cache_qkv(int l, const Tensor& qkv, int B, int P, int pos);
  Tensor cache_view(int l, int B) const;  // layer l's first B rows of the cache (B, Tmax, 2·NKV·HS)
  void ensure_activations();
  void backward_impl(int B, int T);
  void backward_from_lnf(int B, int T);
  void upload_batch(const int32_t* tokens, const int32_t* targets, int B, int T);
  double class_head_forward(const int32_t* targets, int B, int T, float dloss, LossGrad grad);
  Tensor grad_for(Param p, int layer) const;  // empty when frozen or absent
  // Layer l's slice of p (or all of an unstacked p; layer -1); empty when the config lacks p.
  Tensor weight(Param p, int layer) const;
  // The block's normalisations: LayerNorm (GPT-2) or RMSNorm (mean unused), and their backward.
  void norm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp, Param w, Param b,
                    int layer);
  void norm_backward(Tensor dinp, const Tensor& dout, const Tensor& inp, const Tensor& mean,
                     const Tensor& rstd, Param w, Param b, int layer);
  Tensor output_weight() const;  // wte (tied) or lm_head
  void allocate_grads();
  void ensure_grads() {
    if (!grads_) allocate_grads();
  }
  int lowest_layer_needing_grad() const;
  bool embeddings_need_grad() const;
  void lora_forward(LoraTarget t, int l, const Tensor& x, Tensor out, int N);
  void lora_backward(LoraTarget t, int l, const Tensor& x, const Tensor& dout, Tensor dx, int N);
  bool lora_on(LoraTarget t) const;

  GptConfig config_;
  Backend& backend_;
  int max_batch_;
  int max_seq_;
  std::unique_ptr<Arena> params_;
  std::unique_ptr<Arena> grads_;  // only the tensors that have something to train
  int grad_index_[kNumParams] = {};
  int grad_first_[kNumParams] = {};  // the layer of a stacked gradient's first row
  std::unique_ptr<Activations> acts_;
  std::vector<std::vector<uint8_t>> trainable_;  // [Param][layer] (one entry for unstacked)
  std::unique_ptr<Lora> lora_;
  std::unique_ptr<ClassHead> head_;
  int num_classes_ = 0;
  bool class_head_active_ = true;
  std::unique_ptr<Arena> kv_cache_;  // (L, B, Tmax, 2·NKV·HS), allocated by the first prefill
  bool present_[kNumParams] = {};    // whether the config has each parameter
  std::unique_ptr<Arena> rope_;      // the Llama family's cos, sin tables (max_seq, HS / 2)
};

}  // namespace gpt
