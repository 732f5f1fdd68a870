// The model interface everything above models/ uses: what the trainer needs (TrainableModel),
// plus trainability, LoRA, the class head, prefill/decode for generation, the weights in our
// naming for checkpoints, and the memory the model holds (for gpt-plan). A model family (GPT-2:
// models/gpt.h) implements it; make_model builds one from its config, keyed by family name, so
// that a new family adds files under models/ and touches no app.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/model_interface.h"
#include "engine/safetensors.h"

namespace gpt {

struct LoraConfig {
  int rank = 8;
  float alpha = 16.0f;
  // Which block matrices get adapters (GPT-2's targets; a family maps them onto its matrices).
  bool qkv = true;
  bool attproj = true;
  bool fc = false;
  bool fcproj = false;
  float scale() const { return alpha / static_cast<float>(rank); }
  // Target t in the order of the family's parameter table (GPT-2: qkv, attproj, fc, fcproj).
  bool& target(int t) { return *flags()[t]; }
  bool target(int t) const { return *const_cast<LoraConfig*>(this)->flags()[t]; }

 private:
  std::array<bool*, 4> flags() { return {&qkv, &attproj, &fc, &fcproj}; }
};

// The sizes the apps print and check, whatever the family.
struct ModelShape {
  std::string family;  // "gpt2"
  int n_layer = 0;
  int n_head = 0;
  int n_embd = 0;
  int context = 0;  // the longest sequence the model takes (max_seq_len)
  int vocab_size = 0;
  int padded_vocab_size = 0;
};

// What a parameter is, for the trainability rules (models/trainability.h).
enum class ParamKind {
  embedding,   // token and position embeddings
  norm,        // a block's normalisation
  final_norm,  // the normalisation before the output layer
  linear,      // a block's matrices and their biases
};

// Bytes of the device memory a model holds now, as its backend counts them (each arena rounded by
// allocation_bytes): parameters (base, LoRA adapters, class head), their gradients, and
// activations (the forward/backward buffers, LoRA's and the head's, the KV cache).
struct MemoryUse {
  size_t parameters = 0;
  size_t gradients = 0;
  size_t activations = 0;
};

// A model of some family, allocated for micro-batches of up to (max_batch, max_seq).
class LanguageModel : public TrainableModel {
 public:
  // ---- what it is -------------------------------------------------------------------------------
  virtual std::string family() const = 0;
  virtual ModelShape shape() const = 0;
  // The family's config as a checkpoint's trainer_state.json holds it ("model_config").
  virtual nlohmann::json config_json() const = 0;
  virtual int max_batch() const = 0;
  virtual int max_seq() const = 0;
  // The config's parameter count, as the apps print it.
  virtual int64_t num_parameters() const = 0;
  // Training FLOPs per token at sequence length seq_len (for MFU).
  virtual double flops_per_token(int seq_len) const = 0;
  // What parameter `name` is (false: no such parameter), for the trainability rules.
  virtual bool param_kind(const std::string& name, ParamKind* kind, bool* bias) const = 0;

  // ---- weights ----------------------------------------------------------------------------------
  // The family's initialisation, deterministic in seed.
  virtual void init_weights(uint64_t seed) = 0;
  // Every parameter as F32 in our naming, with the config in the metadata: a checkpoint's
  // model.safetensors.
  virtual SafeTensorsFile weights_to_safetensors() = 0;

  // ---- the language-model head ------------------------------------------------------------------
  // The logits of the last forward, copied to the host as fp32 (B, T, Vp).
  virtual std::vector<float> logits_to_host(int B, int T) = 0;

  // ---- trainability -----------------------------------------------------------------------------
  // Which parameters train: the predicate gets a parameter's name and its layer (-1 for tensors
  // not stacked over layers), "lora" for the adapters and "cls_w"/"cls_b" for the class head.
  virtual void set_trainable(
      const std::function<bool(const std::string& name, int layer)>& predicate) = 0;
  // Nothing trains: for a model that is only evaluated or sampled from.
  void freeze() {
    set_trainable([](const std::string&, int) { return false; });
  }
  virtual int64_t num_trainable_parameters() const = 0;

  // ---- LoRA -------------------------------------------------------------------------------------
  virtual void enable_lora(const LoraConfig& lora, uint64_t seed) = 0;
  virtual bool lora_enabled() const = 0;
  virtual const LoraConfig& lora_config() const = 0;
  virtual void merge_lora() = 0;
  // Adapter tensors ("lora.<target>.A" (L, rank, in), "lora.<target>.B" (L, out, rank)).
  virtual std::vector<std::pair<std::string, Tensor>> lora_tensors() const = 0;

  // ---- the class head ---------------------------------------------------------------------------
  virtual void enable_class_head(int num_classes, uint64_t seed) = 0;
  virtual int num_classes() const = 0;
  virtual void set_class_head_active(bool active) = 0;
  virtual bool class_head_active() const = 0;
  virtual Tensor class_param(int i) const = 0;  // 0: cls_w (K, C), 1: cls_b (K)
  virtual std::vector<float> class_logits_to_host(int B) = 0;

  // ---- generation with a KV cache ---------------------------------------------------------------
  // The prompt (B, P) in; the next-token logits (B, Vp) at position P-1 out.
  virtual std::vector<float> prefill(const int32_t* tokens, int B, int P) = 0;
  // Token (B) at position pos in; the logits (B, Vp) for position pos + 1 out.
  virtual std::vector<float> decode(const int32_t* tokens, int B, int pos) = 0;

  // ---- memory (gpt-plan) ------------------------------------------------------------------------
  // Allocates the activation arena now (the first forward does it otherwise).
  virtual void allocate_activations() = 0;
  virtual MemoryUse memory_use() const = 0;
};

// Builds a model of `family` from its config JSON (as config_json() writes it; `source` names
// where it came from in errors), with fresh, uninitialised weights. Throws std::invalid_argument
// for an unknown family or a bad config. The families are listed in models/model.cpp.
std::unique_ptr<LanguageModel> make_model(const std::string& family, const nlohmann::json& config,
                                          const std::string& source, Backend& backend,
                                          int max_batch, int max_seq);

}  // namespace gpt
