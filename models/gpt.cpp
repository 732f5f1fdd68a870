#include "models/gpt.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/rng.h"
#include "models/gpt_internal.h"

namespace gpt {

namespace {

bool is_stacked(Param p) {
  return param_spec(p).stacked;
}
bool is_decayed(Param p) {
  return param_spec(p).decayed;
}

Shape to_shape(const std::vector<int64_t>& s) {
  return s.size() == 1 ? Shape{s[0]} : s.size() == 2 ? Shape{s[0], s[1]} : Shape{s[0], s[1], s[2]};
}

}  // namespace

void GptConfig::validate() const {
  auto positive = [](int v, const char* name) {
    if (v <= 0)
      throw std::invalid_argument(std::string(name) + " must be positive, got " +
                                  std::to_string(v));
  };
  positive(n_layer, "n_layer");
  positive(n_head, "n_head");
  positive(n_embd, "n_embd");
  positive(max_seq_len, "max_seq_len");
  positive(vocab_size, "vocab_size");
  if (family != "gpt2" && family != "llama")
    throw std::invalid_argument("family '" + family + "' is not known (gpt2 or llama)");
  // Every derived width (4·C, (NH + 2·NKV)·HS, 2·mlp_hidden, the padded vocabulary) is an int.
  const int64_t hs = head_dim > 0 ? head_dim : n_embd / n_head;
  const int64_t kv = n_kv_head > 0 ? n_kv_head : n_head;
  const int64_t widest =
      std::max({int64_t{4} * n_embd, (n_head + 2 * kv) * hs, int64_t{2} * std::max(mlp_hidden, 0),
                int64_t{vocab_size} + kVocabMultiple});
  if (widest > std::numeric_limits<int>::max())
    throw std::invalid_argument("sizes too large: a width of " + std::to_string(widest) +
                                " does not fit a 32-bit int");
  if (!llama()) {
    if (n_embd % n_head != 0) {
      throw std::invalid_argument("n_embd (" + std::to_string(n_embd) +
                                  ") must be divisible by n_head (" + std::to_string(n_head) + ")");
    }
    const GptConfig plain;
    if (n_kv_head != 0 || head_dim != 0 || mlp_hidden != 0 || norm_eps != plain.norm_eps ||
        rope_theta != plain.rope_theta || rope_scaling.factor != 0.0 || qkv_bias || qk_norm ||
        !tied_head)
      throw std::invalid_argument(
          "n_kv_head, head_dim, mlp_hidden, norm_eps, rope_theta, rope_scaling, qkv_bias, "
          "qk_norm and tied_head belong to the llama family, not gpt2");
    return;
  }
  positive(mlp_hidden, "mlp_hidden");
  if (n_kv_head < 0 || head_dim < 0)
    throw std::invalid_argument("n_kv_head and head_dim must not be negative (0: the default)");
  if (head_dim == 0 && n_embd % n_head != 0)
    throw std::invalid_argument("n_embd (" + std::to_string(n_embd) +
                                ") must be divisible by n_head (" + std::to_string(n_head) +
                                ") unless head_dim is given");
  if (n_head % kv_heads() != 0)
    throw std::invalid_argument("n_head (" + std::to_string(n_head) +
                                ") must be a multiple of n_kv_head (" + std::to_string(kv_heads()) +
                                ")");
  if (head_size() % 2 != 0)
    throw std::invalid_argument("head_dim (" + std::to_string(head_size()) +
                                ") must be even for rotary position embeddings");
  if (!(norm_eps > 0.0) || !(norm_eps < 1.0))
    throw std::invalid_argument("norm_eps must be in (0, 1)");
  if (!(rope_theta > 1.0)) throw std::invalid_argument("rope_theta must be greater than 1");
  const cpu::RopeScaling& s = rope_scaling;
  if (s.factor != 0.0 && (!(s.factor >= 1.0) || !(s.low_freq_factor > 0.0) ||
                          !(s.high_freq_factor > s.low_freq_factor) || s.original_context <= 0))
    throw std::invalid_argument(
        "rope_scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and a positive "
        "original_context");
}

namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t GptConfig::num_parameters() const {
  // Counted with the real vocabulary (padded rows are always zero and not trained in effect).
  int64_t n = 0;
  for (int pi = 0; pi < kNumParams; ++pi)
    n += numel(gpt_param_shape(*this, static_cast<Param>(pi)));
  const int64_t padding = static_cast<int64_t>(padded_vocab_size() - vocab_size) * n_embd;
  return n - padding * (tied_head ? 1 : 2);  // wte's padded rows, and lm_head's
}

double GptConfig::flops_per_token(int seq_len) const {
  // The block matrices (the linear kind's weights) and the output layer (V real rows of wte or of
  // the untied lm_head).
  int64_t matmul_params = static_cast<int64_t>(vocab_size) * n_embd;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const ParamSpec& p = gpt_params()[pi];
    if (p.kind == ParamKind::linear && !p.bias)
      matmul_params += numel(gpt_param_shape(*this, p.id));
  }
  const double L = n_layer, A = attn_width(), T = seq_len;
  return 6.0 * static_cast<double>(matmul_params) +
         6.0 * L * T * A;  // 6·N + attention (causal half of 12·L·T·NH·HS)
}

GptModel::GptModel(const GptConfig& config, Backend& backend, int max_batch, int max_seq)
    : config_(config), backend_(backend), max_batch_(max_batch), max_seq_(max_seq) {
  config_.validate();
  if (max_batch <= 0) throw std::invalid_argument("batch size must be positive");
  if (max_seq <= 0 || max_seq > config_.max_seq_len) {
    throw std::invalid_argument(
        "sequence length " + std::to_string(max_seq) +
        " must be in [1, max_seq_len=" + std::to_string(config_.max_seq_len) + "]");
  }
  const DType dt = backend_.dtype();

  // Parameters (the gradients take the same layout, less what is frozen).
  ArenaLayout param_layout;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    param_layout.add(param_name(p), dt, to_shape(gpt_param_shape(config_, p)));
  }
  params_ = std::make_unique<Arena>(backend_, std::move(param_layout));
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    present_[pi] = param_present(config_, p);
    trainable_.emplace_back(is_stacked(p) ? config_.n_layer : 1, present_[pi] ? 1 : 0);
    grad_index_[pi] = -1;  // no gradients until they are needed (ensure_grads)
  }
  if (config_.llama()) {  // the rotary tables for positions 0 .. max_seq-1
    const int half = config_.head_size() / 2;
    ArenaLayout rope;
    rope.add("cos", backend_.stat_dtype(), {max_seq_, half});
    rope.add("sin", backend_.stat_dtype(), {max_seq_, half});
    rope_ = std::make_unique<Arena>(backend_, std::move(rope));
    std::vector<float> cos(static_cast<size_t>(max_seq_) * half), sin(cos.size());
    cpu::rope_table<float>(cos.data(), sin.data(), max_seq_, config_.head_size(),
                           config_.rope_theta, config_.rope_scaling);
    backend_.upload_f32((*rope_)[0], cos.data());
    backend_.upload_f32((*rope_)[1], sin.data());
  }

  acts_ = std::make_unique<Activations>();  // laid out by the first forward (allocate_activations)
}

void GptModel::allocate_activations() {
  const int64_t C = config_.n_embd, Vp = config_.padded_vocab_size(), NH = config_.n_head;
  const int64_t W = config_.qkv_width(), Aw = config_.attn_width();
  const int64_t F = config_.fc_width(), H = config_.mlp_width();
  const bool layernorm = !config_.llama();  // RMSNorm keeps no mean
  const int64_t qk = config_.qk_norm ? 1 : 0;
  const bool gated = config_.llama();  // SwiGLU: its input gradient needs a buffer of its own
  const DType dt = backend_.dtype();
  const DType sd = backend_.stat_dtype();
  // Layers below the lowest one the backward runs through share slot 0 (see Activations).
  const int lowest = lowest_layer_needing_grad();
  const int offset = lowest > 0 ? lowest - 1 : 0;
  const int64_t L = config_.n_layer - offset;
  const int64_t B = max_batch_, T = max_seq_;
  ArenaLayout a;
  a.add("tokens", DType::i32, {B, T});
  a.add("targets", DType::i32, {B, T});
  a.add("encoded", dt, {B, T, C});
  a.add("ln1", dt, {L, B, T, C});
  a.add("ln1_mean", sd, {layernorm ? L : 0, B, T});
  a.add("ln1_rstd", sd, {L, B, T});
  a.add("qkv", dt, {L, B, T, W});
  a.add("qkv_raw", dt, {qk * L, B, T, W});
  a.add("qk_rstd", sd, {qk * L, B, T, NH + config_.kv_heads()});
  a.add("atty", dt, {L, B, T, Aw});
  a.add("att_lse", sd, {L, B, NH, T});
  a.add("residual2", dt, {L, B, T, C});
  a.add("ln2", dt, {L, B, T, C});
  a.add("ln2_mean", sd, {layernorm ? L : 0, B, T});
  a.add("ln2_rstd", sd, {L, B, T});
  a.add("fch", dt, {L, B, T, F});
  a.add("fch_gelu", dt, {L, B, T, H});
  a.add("residual3", dt, {L, B, T, C});
  a.add("lnf", dt, {B, T, C});
  a.add("lnf_mean", sd, {layernorm ? B : 0, T});
  a.add("lnf_rstd", sd, {B, T});
  a.add("logits", dt, {B, T, Vp});
  a.add("losses", sd, {B, T});
  a.add("dresidual", dt, {B, T, C});
  a.add("dln", dt, {B, T, C});
  a.add("dqkv", dt, {B, T, W});
  a.add("datty", dt, {B, T, Aw});
  a.add("dfch", dt, {B, T, F});
  a.add("dfch_act", dt, {gated ? B : 0, T, H});
  acts_->arena.reset();  // release the old arena before allocating the new one
  acts_->layer_numel.clear();
  for (int i = 0; i < a.size(); ++i) {
    const bool stacked = i >= kLn1 && i <= kResidual3;  // the (L, ...) entries
    const Shape& s = a.entry(i).shape;
    acts_->layer_numel.push_back(stacked && s[0] > 0 ? s.numel() / s[0] : s.numel());
  }
  acts_->layer_offset = offset;
  acts_->arena = std::make_unique<Arena>(backend_, std::move(a));
}

GptModel::~GptModel() = default;

ModelShape GptModel::shape() const {
  ModelShape s;
  s.family = family();
  s.n_layer = config_.n_layer;
  s.n_head = config_.n_head;
  s.n_embd = config_.n_embd;
  s.context = config_.max_seq_len;
  s.vocab_size = config_.vocab_size;
  s.padded_vocab_size = config_.padded_vocab_size();
  return s;
}

bool GptModel::param_kind(const std::string& name, ParamKind* kind, bool* bias) const {
  const ParamSpec* p = find_param(name);
  if (!p) return false;
  *kind = p->kind;
  *bias = p->bias;
  return true;
}

void GptModel::ensure_activations() {
  if (!acts_->arena) allocate_activations();
}

Tensor GptModel::param(Param p) const {
  return (*params_)[static_cast<int>(p)];
}
Tensor GptModel::grad(Param p) const {
  const int i = grad_index_[static_cast<int>(p)];
  return i < 0 || !grads_ ? Tensor() : (*grads_)[i];
}

GptModel::MemoryUse GptModel::memory_use() const {
  MemoryUse m;
  auto add = [](size_t& total, const std::unique_ptr<Arena>& arena) {
    if (arena && arena->bytes() > 0) total += allocation_bytes(arena->bytes());
  };
  add(m.parameters, params_);
  add(m.gradients, grads_);
  add(m.activations, acts_->arena);  // null until the first forward
  add(m.activations, kv_cache_);
  add(m.activations, rope_);
  if (lora_) {
    add(m.parameters, lora_->params);
    add(m.gradients, lora_->grads);
    add(m.activations, lora_->acts);
  }
  if (head_) {
    add(m.parameters, head_->params);
    add(m.gradients, head_->grads);
    add(m.activations, head_->acts);
  }
  return m;
}

// Gradients exist only for what trains: a stacked tensor gets the rows of its lowest to its
// highest trained layer, so frozen parts and LoRA's frozen base cost no gradient memory.
void GptModel::allocate_grads() {
  const Arena& params = *params_;
  ArenaLayout layout;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const auto& t = trainable_[pi];
    const auto first = std::find(t.begin(), t.end(), uint8_t{1});
    grad_first_[pi] = 0;
    grad_index_[pi] = -1;
    if (first == t.end()) continue;
    const auto& e = params.layout().entry(pi);
    Shape shape = e.shape;
    if (is_stacked(static_cast<Param>(pi))) {
      const int lo = static_cast<int>(first - t.begin());
      const int hi = static_cast<int>(t.rend() - std::find(t.rbegin(), t.rend(), uint8_t{1})) - 1;
      grad_first_[pi] = lo;
      const int64_t n = hi - lo + 1;
      shape = e.shape.ndim() == 2 ? Shape{n, e.shape[1]} : Shape{n, e.shape[1], e.shape[2]};
    }
    grad_index_[pi] = layout.add(e.name, e.dtype, shape);
  }
  grads_.reset();  // release the old arena before allocating the new one
  grads_ = std::make_unique<Arena>(backend_, std::move(layout));
}

void GptModel::init_weights(uint64_t seed) {
  Rng rng(seed);
  const int L = config_.n_layer, C = config_.n_embd, V = config_.vocab_size;
  const double std_base = 0.02, std_proj = 0.02 / std::sqrt(2.0 * L);
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    if (!has_param(p)) continue;
    Tensor t = param(p);
    std::vector<float> host(static_cast<size_t>(t.numel()), 0.0f);
    switch (param_spec(p).init) {
      case ParamInit::ones:
        std::fill(host.begin(), host.end(), 1.0f);
        break;
      case ParamInit::zeros:
        break;
      case ParamInit::embedding: {
        // Real rows only; the padded rows stay zero (they never receive gradient).
        const size_t real = static_cast<size_t>(V) * C;
        for (size_t i = 0; i < real; ++i) host[i] = static_cast<float>(rng.normal() * std_base);
        break;
      }
      case ParamInit::residual:
        for (auto& x : host) x = static_cast<float>(rng.normal() * std_proj);
        break;
      case ParamInit::normal:
        for (auto& x : host) x = static_cast<float>(rng.normal() * std_base);
        break;
    }
    backend_.upload_f32(t, host.data());
  }
  if (grads_) grads_->zero();
}

Tensor GptModel::grad_for(Param p, int layer) const {
  const int pi = static_cast<int>(p);
  if (!is_stacked(p)) return trainable_[pi][0] ? grad(p) : Tensor();
  return trainable_[pi][layer] ? layer_view(grad(p), layer - grad_first_[pi]) : Tensor();
}

bool GptModel::is_trainable(Param p, int layer) const {
  const auto& t = trainable_.at(static_cast<int>(p));
  return is_stacked(p) ? t.at(layer) != 0 : t.at(0) != 0;
}

bool GptModel::embeddings_need_grad() const {
  return trainable_[static_cast<int>(Param::wte)][0] || trainable_[static_cast<int>(Param::wpe)][0];
}

// The lowest layer whose backward must run: the lowest layer with a trainable parameter or an
// adapter (0 when the embeddings train; L when nothing below the final LayerNorm trains).
int GptModel::lowest_layer_needing_grad() const {
  if (embeddings_need_grad()) return 0;
  for (int l = 0; l < config_.n_layer; ++l) {
    if (lora_ && lora_->trainable) return l;
    for (int pi = 0; pi < kNumParams; ++pi)
      if (is_stacked(static_cast<Param>(pi)) && trainable_[pi][l]) return l;
  }
  return config_.n_layer;
}

std::vector<ParamGroup> GptModel::parameters() {
  ensure_grads();
  std::vector<ParamGroup> groups;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    if (!has_param(p)) continue;
    const auto& t = trainable_[pi];
    const bool uniform = std::all_of(t.begin(), t.end(), [&](uint8_t x) { return x == t[0]; });
    if (uniform) {
      groups.push_back(ParamGroup{param_name(p), param(p), grad(p), is_decayed(p), t[0] != 0});
    } else {  // mixed trainability over layers: one group per layer
      for (int l = 0; l < config_.n_layer; ++l) {
        groups.push_back(ParamGroup{std::string(param_name(p)) + "." + std::to_string(l),
                                    layer_view(param(p), l), grad_for(p, l), is_decayed(p),
                                    t[l] != 0});
      }
    }
  }
  if (head_) {
    groups.push_back(
        ParamGroup{"cls_w", (*head_->params)[0], (*head_->grads)[0], true, head_->trainable});
    groups.push_back(
        ParamGroup{"cls_b", (*head_->params)[1], (*head_->grads)[1], false, head_->trainable});
  }
  if (lora_) {
    const auto& layout = lora_->params->layout();
    for (int i = 0; i < layout.size(); ++i) {
      groups.push_back(ParamGroup{"lora." + layout.entry(i).name, (*lora_->params)[i],
                                  (*lora_->grads)[i], false, lora_->trainable});
    }
  }
  return groups;
}

void GptModel::zero_grad() {
  ensure_grads();
  grads_->zero();
  if (head_) head_->grads->zero();
  if (lora_) lora_->grads->zero();
}

void GptModel::upload_batch(const int32_t* tokens, const int32_t* targets, int B, int T) {
  if (B <= 0 || B > max_batch_ || T <= 0 || T > max_seq_) {
    throw std::invalid_argument("batch (" + std::to_string(B) + ", " + std::to_string(T) +
                                ") exceeds the model's allocation (" + std::to_string(max_batch_) +
                                ", " + std::to_string(max_seq_) + ")");
  }
  const size_t n = static_cast<size_t>(B) * T;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      throw std::out_of_range("token id " + std::to_string(tokens[i]) + " at position " +
                              std::to_string(i) + " is outside the vocabulary [0, " +
                              std::to_string(config_.vocab_size) + ")");
    }
  }
  ensure_activations();
  const Arena& a = *acts_->arena;
  backend_.copy_from_host(a[kTokens].data, tokens, n * sizeof(int32_t));
  if (targets) backend_.copy_from_host(a[kTargets].data, targets, n * sizeof(int32_t));
}

void GptModel::forward_impl(int B, int T, bool lm_logits, Attend attend, int pos) {
  const int L = config_.n_layer, C = config_.n_embd;
  const int Vp = config_.padded_vocab_size();
  auto A = [&](int idx, int l, Shape s) { return acts_->view(idx, l, s); };
  const Shape btc{B, T, C};

  // The position embeddings from row `pos` on (none in the Llama family: RoPE in the blocks).
  Tensor wpe_at;
  if (has_param(Param::wpe)) {
    const Tensor wpe = param(Param::wpe);
    wpe_at =
        Tensor(static_cast<char*>(wpe.data) + static_cast<size_t>(pos) * C * dtype_size(wpe.dtype),
               wpe.dtype, {config_.max_seq_len - pos, C});
  }
  Tensor encoded = A(kEncoded, 0, btc);
  backend_.encoder_forward(encoded, A(kTokens, 0, {B, T}), param(Param::wte), wpe_at);

  Tensor residual = encoded;
  for (int l = 0; l < L; ++l) residual = block_forward(l, residual, B, T, attend, pos);
  Tensor lnf = A(kLnf, 0, btc);
  norm_forward(lnf, A(kLnfMean, 0, {B, T}), A(kLnfRstd, 0, {B, T}), residual, Param::lnf_w,
               Param::lnf_b, -1);
  if (lm_logits) backend_.matmul_forward(A(kLogits, 0, {B, T, Vp}), lnf, output_weight(), Tensor());
}

Tensor GptModel::weight(Param p, int layer) const {
  if (!has_param(p)) return Tensor();
  return layer >= 0 ? layer_view(param(p), layer) : param(p);
}

Tensor GptModel::output_weight() const {
  return param(config_.tied_head ? Param::wte : Param::lm_head);
}

void GptModel::norm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp, Param w,
                            Param b, int layer) {
  if (config_.llama()) {
    backend_.rmsnorm_forward(out, rstd, inp, weight(w, layer),
                             static_cast<float>(config_.norm_eps));
    return;
  }
  backend_.layernorm_forward(out, mean, rstd, inp, weight(w, layer), weight(b, layer));
}

void GptModel::norm_backward(Tensor dinp, const Tensor& dout, const Tensor& inp, const Tensor& mean,
                             const Tensor& rstd, Param w, Param b, int layer) {
  if (config_.llama()) {
    backend_.rmsnorm_backward(dinp, grad_for(w, layer), dout, inp, weight(w, layer), rstd);
    return;
  }
  backend_.layernorm_backward(dinp, grad_for(w, layer), grad_for(b, layer), dout, inp,
                              weight(w, layer), mean, rstd);
}

Tensor GptModel::block_forward(int l, const Tensor& residual, int B, int T, Attend attend,
                               int pos) {
  const int C = config_.n_embd, NH = config_.n_head, NKV = config_.kv_heads();
  const int W = config_.qkv_width(), Aw = config_.attn_width();
  const int F = config_.fc_width(), H = config_.mlp_width();
  const int N = B * T;
  const int slot = attend == Attend::decode ? 0 : l;
  auto A = [&](int idx, Shape s) { return acts_->view(idx, slot, s); };
  const Shape btc{B, T, C};
  Tensor ln1 = A(kLn1, btc), ln1_mean = A(kLn1Mean, {B, T}), ln1_rstd = A(kLn1Rstd, {B, T});
  Tensor qkv = A(kQkv, {B, T, W});
  Tensor atty = A(kAtty, {B, T, Aw});
  Tensor residual2 = A(kResidual2, btc);
  Tensor ln2 = A(kLn2, btc), ln2_mean = A(kLn2Mean, {B, T}), ln2_rstd = A(kLn2Rstd, {B, T});
  Tensor fch = A(kFch, {B, T, F}), fch_act = A(kFchGelu, {B, T, H});
  Tensor residual3 = A(kResidual3, btc);

  norm_forward(ln1, ln1_mean, ln1_rstd, residual, Param::ln1_w, Param::ln1_b, l);
  // With QK-norm the projection lands in qkv_raw (kept for the backward) and the normalised
  // copy in qkv.
  Tensor proj = config_.qk_norm ? A(kQkvRaw, {B, T, W}) : qkv;
  backend_.matmul_forward(proj, ln1, weight(Param::qkv_w, l), weight(Param::qkv_b, l));
  if (lora_on(LoraTarget::qkv)) lora_forward(LoraTarget::qkv, l, ln1, proj, N);
  if (config_.qk_norm)
    backend_.qk_norm_forward(qkv, A(kQkRstd, {B, T, NH + NKV}), proj, weight(Param::q_norm_w, l),
                             weight(Param::k_norm_w, l), NH, NKV,
                             static_cast<float>(config_.norm_eps));
  if (rope_)  // rotate the query and key heads (decode: the one new position)
    backend_.rope_forward(qkv, (*rope_)[0], (*rope_)[1], NH + NKV, config_.head_size(),
                          attend == Attend::decode ? pos : 0);
  switch (attend) {
    case Attend::causal_fill_cache:
      cache_qkv(l, qkv, B, T, 0);
      [[fallthrough]];
    case Attend::causal:
      backend_.attention_forward(atty, A(kAttLse, {B, NH, T}), qkv, NH, NKV);
      break;
    case Attend::decode:  // the new keys and values join the cache; the query attends rows 0..pos
      cache_qkv(l, qkv, B, 1, pos);
      backend_.attention_decode(Tensor(atty.data, atty.dtype, {B, Aw}),
                                Tensor(qkv.data, qkv.dtype, {B, W}), cache_view(l, B), pos, NH,
                                NKV);
      break;
  }
  backend_.matmul_forward(residual2, atty, weight(Param::attproj_w, l),
                          weight(Param::attproj_b, l));
  if (lora_on(LoraTarget::attproj)) lora_forward(LoraTarget::attproj, l, atty, residual2, N);
  if (config_.llama()) {  // the residual add fused into the RMSNorm after it
    backend_.residual_rmsnorm_forward(residual2, ln2, ln2_rstd, residual2, residual,
                                      weight(Param::ln2_w, l),
                                      static_cast<float>(config_.norm_eps));
  } else {
    backend_.residual_forward(residual2, residual2, residual);
    norm_forward(ln2, ln2_mean, ln2_rstd, residual2, Param::ln2_w, Param::ln2_b, l);
  }
  backend_.matmul_forward(fch, ln2, weight(Param::fc_w, l), weight(Param::fc_b, l));
  if (lora_on(LoraTarget::fc)) lora_forward(LoraTarget::fc, l, ln2, fch, N);
  if (config_.llama())
    backend_.swiglu_forward(Tensor(fch_act.data, fch_act.dtype, {N, H}),
                            Tensor(fch.data, fch.dtype, {N, F}));
  else
    backend_.gelu_forward(fch_act, fch);
  backend_.matmul_forward(residual3, fch_act, weight(Param::fcproj_w, l),
                          weight(Param::fcproj_b, l));
  if (lora_on(LoraTarget::fcproj)) lora_forward(LoraTarget::fcproj, l, fch_act, residual3, N);
  // In a shared slot, `residual` is this slot's residual3: read above, before it is rewritten.
  backend_.residual_forward(residual3, residual3, residual2);
  return residual3;
}

// Backward from the LM head: dlogits (in the logits buffer) -> dlnf, then the rest.
void GptModel::backward_impl(int B, int T) {
  const int C = config_.n_embd, Vp = config_.padded_vocab_size();
  auto A = [&](int idx, int l, Shape s) { return acts_->view(idx, l, s); };
  const Shape btc{B, T, C};
  // Classifier: logits = lnf · Wᵀ (W = wte or lm_head); the logits buffer holds dlogits now.
  const Param out = config_.tied_head ? Param::wte : Param::lm_head;
  backend_.matmul_backward(A(kDLn, 0, btc), grad_for(out, -1), Tensor(), A(kLogits, 0, {B, T, Vp}),
                           A(kLnf, 0, btc), output_weight());
  backward_from_lnf(B, T);
}

// Backward from the gradient at the final LayerNorm's output (in the kDLn buffer) down to the
// lowest layer that needs it.
void GptModel::backward_from_lnf(int B, int T) {
  const int L = config_.n_layer, C = config_.n_embd, NH = config_.n_head;
  const int NKV = config_.kv_heads(), W = config_.qkv_width(), Aw = config_.attn_width();
  const int F = config_.fc_width(), H = config_.mlp_width();
  const int N = B * T;
  auto A = [&](int idx, int l, Shape s) { return acts_->view(idx, l, s); };
  const Shape btc{B, T, C};

  Tensor dresidual = A(kDResidual, 0, btc);
  Tensor dln = A(kDLn, 0, btc);
  Tensor dqkv = A(kDQkv, 0, {B, T, W});
  Tensor datty = A(kDAtty, 0, {B, T, Aw});
  Tensor dfch = A(kDFch, 0, {B, T, F});
  // The gradient at the activation's output: SwiGLU's own buffer, GELU's in place in dfch.
  Tensor dfch_act = config_.llama() ? A(kDFchAct, 0, {B, T, H}) : dfch;
  const int lowest = lowest_layer_needing_grad();
  const bool lnf_trains = trainable_[static_cast<int>(Param::lnf_w)][0] ||
                          trainable_[static_cast<int>(Param::lnf_b)][0];
  if (lowest >= L && !lnf_trains) return;

  backend_.fill_zero(dresidual.data, dresidual.bytes());
  Tensor last_residual = L > 0 ? A(kResidual3, L - 1, btc) : A(kEncoded, 0, btc);
  norm_backward(dresidual, dln, last_residual, A(kLnfMean, 0, {B, T}), A(kLnfRstd, 0, {B, T}),
                Param::lnf_w, Param::lnf_b, -1);

  for (int l = L - 1; l >= lowest; --l) {
    Tensor residual = l == 0 ? A(kEncoded, 0, btc) : A(kResidual3, l - 1, btc);
    Tensor ln1 = A(kLn1, l, btc), ln1_mean = A(kLn1Mean, l, {B, T}),
           ln1_rstd = A(kLn1Rstd, l, {B, T});
    Tensor qkv = A(kQkv, l, {B, T, W});
    Tensor atty = A(kAtty, l, {B, T, Aw});
    Tensor lse = A(kAttLse, l, {B, NH, T});
    Tensor residual2 = A(kResidual2, l, btc);
    Tensor ln2 = A(kLn2, l, btc), ln2_mean = A(kLn2Mean, l, {B, T}),
           ln2_rstd = A(kLn2Rstd, l, {B, T});
    Tensor fch = A(kFch, l, {B, T, F}), fch_act = A(kFchGelu, l, {B, T, H});

    // MLP block: residual3 = residual2 + fcproj(act(fc(norm2(residual2))))
    backend_.matmul_backward(dfch_act, grad_for(Param::fcproj_w, l), grad_for(Param::fcproj_b, l),
                             dresidual, fch_act, weight(Param::fcproj_w, l));
    if (lora_on(LoraTarget::fcproj))
      lora_backward(LoraTarget::fcproj, l, fch_act, dresidual, dfch_act, N);
    if (config_.llama())
      backend_.swiglu_backward(Tensor(dfch.data, dfch.dtype, {N, F}),
                               Tensor(fch.data, fch.dtype, {N, F}),
                               Tensor(dfch_act.data, dfch_act.dtype, {N, H}));
    else
      backend_.gelu_backward(dfch, fch, dfch);
    backend_.matmul_backward(dln, grad_for(Param::fc_w, l), grad_for(Param::fc_b, l), dfch, ln2,
                             weight(Param::fc_w, l));
    if (lora_on(LoraTarget::fc)) lora_backward(LoraTarget::fc, l, ln2, dfch, dln, N);
    norm_backward(dresidual, dln, residual2, ln2_mean, ln2_rstd, Param::ln2_w, Param::ln2_b, l);
    // Attention block: residual2 = residual +
    // attproj(attention(rope(qknorm(qkv(norm1(residual))))))
    backend_.matmul_backward(datty, grad_for(Param::attproj_w, l), grad_for(Param::attproj_b, l),
                             dresidual, atty, weight(Param::attproj_w, l));
    if (lora_on(LoraTarget::attproj))
      lora_backward(LoraTarget::attproj, l, atty, dresidual, datty, N);
    backend_.attention_backward(dqkv, datty, qkv, atty, lse, NH, NKV);
    if (rope_)
      backend_.rope_backward(dqkv, (*rope_)[0], (*rope_)[1], NH + NKV, config_.head_size(), 0);
    Tensor proj = qkv;  // the projection's output: qkv, or qkv_raw before QK-norm
    if (config_.qk_norm) {
      proj = A(kQkvRaw, l, {B, T, W});
      backend_.qk_norm_backward(dqkv, grad_for(Param::q_norm_w, l), grad_for(Param::k_norm_w, l),
                                dqkv, proj, weight(Param::q_norm_w, l), weight(Param::k_norm_w, l),
                                A(kQkRstd, l, {B, T, NH + NKV}), NH, NKV);
    }
    backend_.matmul_backward(dln, grad_for(Param::qkv_w, l), grad_for(Param::qkv_b, l), dqkv, ln1,
                             weight(Param::qkv_w, l));
    if (lora_on(LoraTarget::qkv)) lora_backward(LoraTarget::qkv, l, ln1, dqkv, dln, N);
    norm_backward(dresidual, dln, residual, ln1_mean, ln1_rstd, Param::ln1_w, Param::ln1_b, l);
  }
  if (embeddings_need_grad()) {
    backend_.encoder_backward(grad_for(Param::wte, -1), grad_for(Param::wpe, -1), dresidual,
                              A(kTokens, 0, {B, T}));
  }
}

double GptModel::forward(const int32_t* tokens, const int32_t* targets, int B, int T) {
  upload_batch(tokens, targets, B, T);
  if (class_head_active()) {
    forward_impl(B, T, /*lm_logits=*/false);
    return class_head_forward(targets, B, T, 1.0f, LossGrad::none);
  }
  forward_impl(B, T, /*lm_logits=*/true);
  if (!targets) return 0.0;
  const Arena& a = *acts_->arena;
  const auto& ln = acts_->layer_numel;
  Tensor losses = act_view(a, ln, kLosses, 0, {B * T});
  backend_.crossentropy(losses, act_view(a, ln, kLogits, 0, {B * T, config_.padded_vocab_size()}),
                        act_view(a, ln, kTargets, 0, {B * T}), config_.vocab_size, 1.0f,
                        LossGrad::none);
  return backend_.sum(losses);
}

double GptModel::forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                                  float dloss) {
  if (!targets) throw std::invalid_argument("forward_backward needs targets");
  ensure_grads();
  upload_batch(tokens, targets, B, T);
  if (class_head_active()) {
    forward_impl(B, T, /*lm_logits=*/false);
    const double loss_sum = class_head_forward(targets, B, T, dloss, LossGrad::write);
    backward_from_lnf(B, T);
    return loss_sum;
  }
  forward_impl(B, T, /*lm_logits=*/true);
  const Arena& a = *acts_->arena;
  const auto& ln = acts_->layer_numel;
  Tensor losses = act_view(a, ln, kLosses, 0, {B * T});
  backend_.crossentropy(losses, act_view(a, ln, kLogits, 0, {B * T, config_.padded_vocab_size()}),
                        act_view(a, ln, kTargets, 0, {B * T}), config_.vocab_size, dloss,
                        LossGrad::write);
  const double loss_sum = backend_.sum(losses);
  backward_impl(B, T);
  return loss_sum;
}

std::vector<float> GptModel::logits_to_host(int B, int T) {
  const Arena& a = *acts_->arena;
  Tensor logits = act_view(a, acts_->layer_numel, kLogits, 0, {B, T, config_.padded_vocab_size()});
  std::vector<float> host(static_cast<size_t>(logits.numel()));
  backend_.download_f32(host.data(), logits);
  return host;
}

}  // namespace gpt
