#include "models/gpt.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "engine/rng.h"

namespace gpt {

namespace {

constexpr const char* kParamNames[kNumParams] = {
    "wte",   "wpe",  "ln1_w", "ln1_b",    "qkv_w",    "qkv_b", "attproj_w", "attproj_b",
    "ln2_w", "ln2_b", "fc_w", "fc_b", "fcproj_w", "fcproj_b", "lnf_w", "lnf_b"};

// Per-layer activations kept from forward to backward, stacked over layers.
enum Act : int {
  kTokens = 0,  // (B, T) i32
  kTargets,     // (B, T) i32
  kEncoded,     // (B, T, C)
  kLn1,         // (L, B, T, C)
  kLn1Mean,     // (L, B, T)     stat dtype
  kLn1Rstd,     // (L, B, T)     stat dtype
  kQkv,         // (L, B, T, 3C)
  kAtty,        // (L, B, T, C)  attention output, before the projection
  kAttLse,      // (L, B, NH, T) stat dtype
  kResidual2,   // (L, B, T, C)  stream after the attention block
  kLn2,         // (L, B, T, C)
  kLn2Mean,     // (L, B, T)
  kLn2Rstd,     // (L, B, T)
  kFch,         // (L, B, T, 4C) fc output, before GELU
  kFchGelu,     // (L, B, T, 4C)
  kResidual3,   // (L, B, T, C)  stream after the MLP block
  kLnf,         // (B, T, C)
  kLnfMean,     // (B, T)
  kLnfRstd,     // (B, T)
  kLogits,      // (B, T, Vp)    overwritten in place by dlogits during training
  kLosses,      // (B, T)        stat dtype
  // backward scratch, reused by every layer
  kDResidual,   // (B, T, C)     gradient of the residual stream (accumulates)
  kDLn,         // (B, T, C)     gradient at a LayerNorm output
  kDQkv,        // (B, T, 3C)
  kDAtty,       // (B, T, C)
  kDFch,        // (B, T, 4C)
  kNumActs
};

}  // namespace

const char* param_name(Param p) { return kParamNames[static_cast<int>(p)]; }

void GptConfig::validate() const {
  auto positive = [](int v, const char* name) {
    if (v <= 0) throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive(n_layer, "n_layer");
  positive(n_head, "n_head");
  positive(n_embd, "n_embd");
  positive(max_seq_len, "max_seq_len");
  positive(vocab_size, "vocab_size");
  if (n_embd % n_head != 0) {
    throw std::invalid_argument("n_embd (" + std::to_string(n_embd) + ") must be divisible by n_head (" +
                                std::to_string(n_head) + ")");
  }
}

int64_t GptConfig::num_parameters() const {
  const int64_t L = n_layer, C = n_embd, V = vocab_size, T = max_seq_len;
  // Counted with the real vocabulary (padded rows are always zero and not trained in effect).
  return V * C + T * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C +
                              4 * C * C + C) +
         2 * C;
}

double GptConfig::flops_per_token(int seq_len) const {
  const double L = n_layer, C = n_embd, V = vocab_size, T = seq_len;
  const double matmul_params = L * 12.0 * C * C + V * C;  // block matrices + the tied lm head
  return 6.0 * matmul_params + 6.0 * L * T * C;            // 6·N + attention (causal half of 12·L·T·C)
}

struct GptModel::Activations {
  std::unique_ptr<Arena> arena;
  // Per-layer stride (in elements) of each stacked entry, for the maximum (B, T).
  std::vector<int64_t> layer_numel;
};

GptModel::GptModel(const GptConfig& config, Backend& backend, int max_batch, int max_seq)
    : config_(config), backend_(backend), max_batch_(max_batch), max_seq_(max_seq) {
  config_.validate();
  if (max_batch <= 0) throw std::invalid_argument("batch size must be positive");
  if (max_seq <= 0 || max_seq > config_.max_seq_len) {
    throw std::invalid_argument("sequence length " + std::to_string(max_seq) +
                                " must be in [1, max_seq_len=" + std::to_string(config_.max_seq_len) +
                                "]");
  }
  const int64_t L = config_.n_layer, C = config_.n_embd, Vp = config_.padded_vocab_size();
  const int64_t maxT = config_.max_seq_len, NH = config_.n_head;
  const DType dt = backend_.dtype();
  const DType sd = backend_.stat_dtype();

  // Parameters and gradients: identical layouts.
  auto param_layout = [&]() {
    ArenaLayout layout;
    layout.add("wte", dt, {Vp, C});
    layout.add("wpe", dt, {maxT, C});
    layout.add("ln1_w", dt, {L, C});
    layout.add("ln1_b", dt, {L, C});
    layout.add("qkv_w", dt, {L, 3 * C, C});
    layout.add("qkv_b", dt, {L, 3 * C});
    layout.add("attproj_w", dt, {L, C, C});
    layout.add("attproj_b", dt, {L, C});
    layout.add("ln2_w", dt, {L, C});
    layout.add("ln2_b", dt, {L, C});
    layout.add("fc_w", dt, {L, 4 * C, C});
    layout.add("fc_b", dt, {L, 4 * C});
    layout.add("fcproj_w", dt, {L, C, 4 * C});
    layout.add("fcproj_b", dt, {L, C});
    layout.add("lnf_w", dt, {C});
    layout.add("lnf_b", dt, {C});
    return layout;
  };
  params_ = std::make_unique<Arena>(backend_, param_layout());
  grads_ = std::make_unique<Arena>(backend_, param_layout());

  const int64_t B = max_batch, T = max_seq;
  ArenaLayout a;
  a.add("tokens", DType::i32, {B, T});
  a.add("targets", DType::i32, {B, T});
  a.add("encoded", dt, {B, T, C});
  a.add("ln1", dt, {L, B, T, C});
  a.add("ln1_mean", sd, {L, B, T});
  a.add("ln1_rstd", sd, {L, B, T});
  a.add("qkv", dt, {L, B, T, 3 * C});
  a.add("atty", dt, {L, B, T, C});
  a.add("att_lse", sd, {L, B, NH, T});
  a.add("residual2", dt, {L, B, T, C});
  a.add("ln2", dt, {L, B, T, C});
  a.add("ln2_mean", sd, {L, B, T});
  a.add("ln2_rstd", sd, {L, B, T});
  a.add("fch", dt, {L, B, T, 4 * C});
  a.add("fch_gelu", dt, {L, B, T, 4 * C});
  a.add("residual3", dt, {L, B, T, C});
  a.add("lnf", dt, {B, T, C});
  a.add("lnf_mean", sd, {B, T});
  a.add("lnf_rstd", sd, {B, T});
  a.add("logits", dt, {B, T, Vp});
  a.add("losses", sd, {B, T});
  a.add("dresidual", dt, {B, T, C});
  a.add("dln", dt, {B, T, C});
  a.add("dqkv", dt, {B, T, 3 * C});
  a.add("datty", dt, {B, T, C});
  a.add("dfch", dt, {B, T, 4 * C});
  acts_ = std::make_unique<Activations>();
  for (int i = 0; i < a.size(); ++i) {
    const bool stacked = i >= kLn1 && i <= kResidual3;  // the (L, ...) entries
    acts_->layer_numel.push_back(stacked ? a.entry(i).shape.numel() / L : a.entry(i).shape.numel());
  }
  acts_->arena = std::make_unique<Arena>(backend_, std::move(a));
}

GptModel::~GptModel() = default;

Tensor GptModel::param(Param p) const { return (*params_)[static_cast<int>(p)]; }
Tensor GptModel::grad(Param p) const { return (*grads_)[static_cast<int>(p)]; }

namespace {

// View of activation `idx` for layer l (or the whole entry for unstacked ones) with shape s.
Tensor act_view(const Arena& arena, const std::vector<int64_t>& layer_numel, int idx, int l,
                Shape s) {
  Tensor base = arena[idx];
  const size_t offset = static_cast<size_t>(l) * layer_numel[idx] * dtype_size(base.dtype);
  return Tensor(static_cast<char*>(base.data) + offset, base.dtype, s);
}

}  // namespace

void GptModel::init_weights(uint64_t seed) {
  Rng rng(seed);
  const int L = config_.n_layer, C = config_.n_embd, V = config_.vocab_size;
  const double std_base = 0.02, std_proj = 0.02 / std::sqrt(2.0 * L);
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    Tensor t = param(p);
    std::vector<float> host(static_cast<size_t>(t.numel()), 0.0f);
    switch (p) {
      case Param::ln1_w:
      case Param::ln2_w:
      case Param::lnf_w:
        std::fill(host.begin(), host.end(), 1.0f);
        break;
      case Param::ln1_b:
      case Param::ln2_b:
      case Param::lnf_b:
      case Param::qkv_b:
      case Param::attproj_b:
      case Param::fc_b:
      case Param::fcproj_b:
        break;
      case Param::wte: {
        // Real rows only; the padded rows stay zero (they never receive gradient).
        const size_t real = static_cast<size_t>(V) * C;
        for (size_t i = 0; i < real; ++i) host[i] = static_cast<float>(rng.normal() * std_base);
        break;
      }
      case Param::attproj_w:
      case Param::fcproj_w:
        for (auto& x : host) x = static_cast<float>(rng.normal() * std_proj);
        break;
      default:
        for (auto& x : host) x = static_cast<float>(rng.normal() * std_base);
        break;
    }
    backend_.upload_f32(t, host.data());
  }
  grads_->zero();
}

std::vector<ParamGroup> GptModel::parameters() {
  std::vector<ParamGroup> groups;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    ParamGroup g;
    g.name = param_name(p);
    g.param = param(p);
    g.grad = grad(p);
    g.weight_decay = p == Param::wte || p == Param::qkv_w || p == Param::attproj_w ||
                     p == Param::fc_w || p == Param::fcproj_w;
    groups.push_back(g);
  }
  return groups;
}

void GptModel::zero_grad() { grads_->zero(); }

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
  const Arena& a = *acts_->arena;
  backend_.copy_from_host(a[kTokens].data, tokens, n * sizeof(int32_t));
  if (targets) backend_.copy_from_host(a[kTargets].data, targets, n * sizeof(int32_t));
}

void GptModel::forward_impl(int B, int T) {
  const Arena& a = *acts_->arena;
  const auto& ln = acts_->layer_numel;
  const int L = config_.n_layer, C = config_.n_embd, NH = config_.n_head;
  const int Vp = config_.padded_vocab_size();
  auto A = [&](int idx, int l, Shape s) { return act_view(a, ln, idx, l, s); };
  const Shape btc{B, T, C};

  Tensor tokens = A(kTokens, 0, {B, T});
  Tensor encoded = A(kEncoded, 0, btc);
  backend_.encoder_forward(encoded, tokens, param(Param::wte), param(Param::wpe));

  Tensor residual = encoded;
  for (int l = 0; l < L; ++l) {
    Tensor ln1 = A(kLn1, l, btc), ln1_mean = A(kLn1Mean, l, {B, T}), ln1_rstd = A(kLn1Rstd, l, {B, T});
    Tensor qkv = A(kQkv, l, {B, T, 3 * C});
    Tensor atty = A(kAtty, l, btc);
    Tensor lse = A(kAttLse, l, {B, NH, T});
    Tensor residual2 = A(kResidual2, l, btc);
    Tensor ln2 = A(kLn2, l, btc), ln2_mean = A(kLn2Mean, l, {B, T}), ln2_rstd = A(kLn2Rstd, l, {B, T});
    Tensor fch = A(kFch, l, {B, T, 4 * C}), fch_gelu = A(kFchGelu, l, {B, T, 4 * C});
    Tensor residual3 = A(kResidual3, l, btc);

    backend_.layernorm_forward(ln1, ln1_mean, ln1_rstd, residual, layer_view(param(Param::ln1_w), l),
                               layer_view(param(Param::ln1_b), l));
    backend_.matmul_forward(qkv, ln1, layer_view(param(Param::qkv_w), l),
                            layer_view(param(Param::qkv_b), l));
    backend_.attention_forward(atty, lse, qkv, NH);
    backend_.matmul_forward(residual2, atty, layer_view(param(Param::attproj_w), l),
                            layer_view(param(Param::attproj_b), l));
    backend_.residual_forward(residual2, residual2, residual);
    backend_.layernorm_forward(ln2, ln2_mean, ln2_rstd, residual2, layer_view(param(Param::ln2_w), l),
                               layer_view(param(Param::ln2_b), l));
    backend_.matmul_forward(fch, ln2, layer_view(param(Param::fc_w), l),
                            layer_view(param(Param::fc_b), l));
    backend_.gelu_forward(fch_gelu, fch);
    backend_.matmul_forward(residual3, fch_gelu, layer_view(param(Param::fcproj_w), l),
                            layer_view(param(Param::fcproj_b), l));
    backend_.residual_forward(residual3, residual3, residual2);
    residual = residual3;
  }
  Tensor lnf = A(kLnf, 0, btc);
  backend_.layernorm_forward(lnf, A(kLnfMean, 0, {B, T}), A(kLnfRstd, 0, {B, T}), residual,
                             param(Param::lnf_w), param(Param::lnf_b));
  backend_.matmul_forward(A(kLogits, 0, {B, T, Vp}), lnf, param(Param::wte), Tensor());
}

void GptModel::backward_impl(int B, int T) {
  const Arena& a = *acts_->arena;
  const auto& ln = acts_->layer_numel;
  const int L = config_.n_layer, C = config_.n_embd, NH = config_.n_head;
  const int Vp = config_.padded_vocab_size();
  auto A = [&](int idx, int l, Shape s) { return act_view(a, ln, idx, l, s); };
  const Shape btc{B, T, C};

  Tensor dresidual = A(kDResidual, 0, btc);
  Tensor dln = A(kDLn, 0, btc);
  Tensor dqkv = A(kDQkv, 0, {B, T, 3 * C});
  Tensor datty = A(kDAtty, 0, btc);
  Tensor dfch = A(kDFch, 0, {B, T, 4 * C});
  backend_.fill_zero(dresidual.data, dresidual.bytes());

  Tensor last_residual = L > 0 ? A(kResidual3, L - 1, btc) : A(kEncoded, 0, btc);
  // Classifier: logits = lnf · wteᵀ; the logits buffer holds dlogits now.
  backend_.matmul_backward(dln, grad(Param::wte), Tensor(), A(kLogits, 0, {B, T, Vp}),
                           A(kLnf, 0, btc), param(Param::wte));
  backend_.layernorm_backward(dresidual, grad(Param::lnf_w), grad(Param::lnf_b), dln, last_residual,
                              param(Param::lnf_w), A(kLnfMean, 0, {B, T}), A(kLnfRstd, 0, {B, T}));

  for (int l = L - 1; l >= 0; --l) {
    Tensor residual = l == 0 ? A(kEncoded, 0, btc) : A(kResidual3, l - 1, btc);
    Tensor ln1 = A(kLn1, l, btc), ln1_mean = A(kLn1Mean, l, {B, T}), ln1_rstd = A(kLn1Rstd, l, {B, T});
    Tensor qkv = A(kQkv, l, {B, T, 3 * C});
    Tensor atty = A(kAtty, l, btc);
    Tensor lse = A(kAttLse, l, {B, NH, T});
    Tensor residual2 = A(kResidual2, l, btc);
    Tensor ln2 = A(kLn2, l, btc), ln2_mean = A(kLn2Mean, l, {B, T}), ln2_rstd = A(kLn2Rstd, l, {B, T});
    Tensor fch = A(kFch, l, {B, T, 4 * C}), fch_gelu = A(kFchGelu, l, {B, T, 4 * C});

    // MLP block: residual3 = residual2 + fcproj(gelu(fc(ln2(residual2))))
    backend_.matmul_backward(dfch, layer_view(grad(Param::fcproj_w), l),
                             layer_view(grad(Param::fcproj_b), l), dresidual, fch_gelu,
                             layer_view(param(Param::fcproj_w), l));
    backend_.gelu_backward(dfch, fch, dfch);
    backend_.matmul_backward(dln, layer_view(grad(Param::fc_w), l), layer_view(grad(Param::fc_b), l),
                             dfch, ln2, layer_view(param(Param::fc_w), l));
    backend_.layernorm_backward(dresidual, layer_view(grad(Param::ln2_w), l),
                                layer_view(grad(Param::ln2_b), l), dln, residual2,
                                layer_view(param(Param::ln2_w), l), ln2_mean, ln2_rstd);
    // Attention block: residual2 = residual + attproj(attention(qkv(ln1(residual))))
    backend_.matmul_backward(datty, layer_view(grad(Param::attproj_w), l),
                             layer_view(grad(Param::attproj_b), l), dresidual, atty,
                             layer_view(param(Param::attproj_w), l));
    backend_.attention_backward(dqkv, datty, qkv, atty, lse, NH);
    backend_.matmul_backward(dln, layer_view(grad(Param::qkv_w), l), layer_view(grad(Param::qkv_b), l),
                             dqkv, ln1, layer_view(param(Param::qkv_w), l));
    backend_.layernorm_backward(dresidual, layer_view(grad(Param::ln1_w), l),
                                layer_view(grad(Param::ln1_b), l), dln, residual,
                                layer_view(param(Param::ln1_w), l), ln1_mean, ln1_rstd);
  }
  backend_.encoder_backward(grad(Param::wte), grad(Param::wpe), dresidual, A(kTokens, 0, {B, T}));
}

double GptModel::forward(const int32_t* tokens, const int32_t* targets, int B, int T) {
  upload_batch(tokens, targets, B, T);
  forward_impl(B, T);
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
  upload_batch(tokens, targets, B, T);
  forward_impl(B, T);
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
