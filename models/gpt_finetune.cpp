// Fine-tuning features of GptModel: freezing, LoRA adapters and the classification head.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "models/gpt.h"
#include "models/gpt_internal.h"

namespace gpt {

std::string lora_targets_text(const LoraConfig& lc) {
  std::string text;
  for (int t = 0; t < kNumLoraTargets; ++t)
    if (lc.target(t)) text += (text.empty() ? "" : ",") + std::string(lora_target_name(t));
  return text;
}

namespace {

// Hugging Face's names of the Llama family's matrices, and the fused matrix each is part of.
struct HfLoraName {
  const char* name;
  const char* target;
};
constexpr HfLoraName kHfLoraNames[] = {
    {"q_proj", "qkv"},   {"k_proj", "qkv"}, {"v_proj", "qkv"},       {"o_proj", "attproj"},
    {"gate_proj", "fc"}, {"up_proj", "fc"}, {"down_proj", "fcproj"},
};

}  // namespace

LoraTargetsParse set_lora_targets(LoraConfig& lc, const std::string& list) {
  for (int t = 0; t < kNumLoraTargets; ++t) lc.target(t) = false;
  std::vector<std::string> hf;  // the Hugging Face names given
  std::string rest = list;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string name = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    int t = lora_target_index(name);
    for (const HfLoraName& h : kHfLoraNames)
      if (name == h.name) {
        t = lora_target_index(h.target);
        hf.push_back(name);
      }
    if (t < 0) return LoraTargetsParse{false, name, ""};
    lc.target(t) = true;
  }
  // A fused matrix takes one adapter: its Hugging Face parts are named all together or not at all.
  for (const HfLoraName& h : kHfLoraNames) {
    if (std::find(hf.begin(), hf.end(), h.name) == hf.end()) continue;
    std::string parts;
    bool all = true;
    for (const HfLoraName& other : kHfLoraNames)
      if (std::string(other.target) == h.target) {
        parts += (parts.empty() ? "" : ", ") + std::string(other.name);
        all = all && std::find(hf.begin(), hf.end(), other.name) != hf.end();
      }
    if (!all)
      return LoraTargetsParse{
          false, h.name,
          parts + " are one fused matrix (" + h.target + ") here: name them all, or " + h.target};
  }
  return LoraTargetsParse{};
}

// ---- freezing -----------------------------------------------------------------------------------

void GptModel::set_trainable(const std::function<bool(const std::string&, int)>& predicate) {
  for (int pi = 0; pi < kNumParams; ++pi) {
    auto& t = trainable_[pi];
    const bool stacked = param_spec(static_cast<Param>(pi)).stacked;
    for (size_t l = 0; l < t.size(); ++l)  // a tensor the config lacks never trains
      t[l] = present_[pi] && predicate(param_name(static_cast<Param>(pi)),
                                       stacked ? static_cast<int>(l) : -1)
                 ? 1
                 : 0;
  }
  if (head_) head_->trainable = predicate("cls_w", -1) || predicate("cls_b", -1);
  if (lora_) lora_->trainable = predicate("lora", -1);
  allocate_grads();
  acts_->arena
      .reset();  // laid out again by the next forward, for the layers the backward needs now
}

int64_t GptModel::num_trainable_parameters() const {
  // Counted from the trainability flags, so that asking allocates no gradients.
  int64_t n = 0;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const auto& t = trainable_[pi];
    const int64_t per_entry =
        param(static_cast<Param>(pi)).numel() / static_cast<int64_t>(t.size());
    for (uint8_t x : t)
      if (x) n += per_entry;
  }
  if (head_ && head_->trainable) n += class_param(0).numel() + class_param(1).numel();
  if (lora_ && lora_->trainable)
    for (int i = 0; i < lora_->params->layout().size(); ++i) n += (*lora_->params)[i].numel();
  return n;
}

// ---- LoRA ---------------------------------------------------------------------------------------

bool GptModel::lora_enabled() const {
  return lora_ != nullptr;
}

const LoraConfig& GptModel::lora_config() const {
  if (!lora_) throw std::logic_error("LoRA is not enabled");
  return lora_->config;
}

bool GptModel::lora_on(LoraTarget t) const {
  return lora_ && lora_->a_index[static_cast<int>(t)] >= 0;
}

void GptModel::enable_lora(const LoraConfig& lc, uint64_t seed) {
  if (lora_) throw std::logic_error("LoRA is already enabled");
  if (lc.rank <= 0)
    throw std::invalid_argument("LoRA rank must be positive, got " + std::to_string(lc.rank));
  if (!(lc.qkv || lc.attproj || lc.fc || lc.fcproj))
    throw std::invalid_argument("LoRA needs at least one target matrix (qkv, attproj, fc, fcproj)");
  const int64_t L = config_.n_layer, r = lc.rank;
  const int64_t B = max_batch_, T = max_seq_;
  int64_t dims[kNumLoraTargets][2];  // the adapted weight's (out, in)
  bool on[kNumLoraTargets];
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const std::vector<int64_t> w = gpt_param_shape(config_, lora_target_param(t));
    dims[t][0] = w[1];
    dims[t][1] = w[2];
    on[t] = lc.target(t);
  }
  auto lora = std::make_unique<Lora>();
  lora->config = lc;
  const DType dt = backend_.dtype();
  ArenaLayout params, acts;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (!on[t]) continue;
    const std::string name = lora_target_name(t);
    lora->a_index[t] = params.add(name + ".A", dt, {L, r, dims[t][1]});
    lora->b_index[t] = params.add(name + ".B", dt, {L, dims[t][0], r});
    lora->h_index[t] = acts.add(name + ".h", dt, {L, B, T, r});
  }
  int64_t widest = 0;  // the scratch holds any adapted matrix's output and input
  for (int t = 0; t < kNumLoraTargets; ++t)
    if (on[t]) widest = std::max({widest, dims[t][0], dims[t][1]});
  acts.add("u", dt, {B, T, widest});
  acts.add("dh", dt, {B, T, r});
  acts.add("dx", dt, {B, T, widest});
  ArenaLayout grads = params;
  lora->params = std::make_unique<Arena>(backend_, std::move(params));
  lora->grads = std::make_unique<Arena>(backend_, std::move(grads));
  lora->acts = std::make_unique<Arena>(backend_, std::move(acts));
  Rng rng(seed ^ 0x4C6F5241ull);
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (!on[t]) continue;
    Tensor a = (*lora->params)[lora->a_index[t]];
    const double bound = 1.0 / std::sqrt(static_cast<double>(dims[t][1]));
    std::vector<float> host(static_cast<size_t>(a.numel()));
    for (auto& x : host) x = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    backend_.upload_f32(a, host.data());  // B stays zero (the arena is zero-filled)
  }
  lora_ = std::move(lora);
  set_trainable([](const std::string& name, int) {
    return name == "lora" || name == "cls_w" || name == "cls_b";
  });
}

void GptModel::lora_forward(LoraTarget t, int l, const Tensor& x, Tensor out, int N) {
  const int ti = static_cast<int>(t);
  const int r = lora_->config.rank;
  Tensor A = layer_view((*lora_->params)[lora_->a_index[ti]], l);
  Tensor Bm = layer_view((*lora_->params)[lora_->b_index[ti]], l);
  const int64_t out_dim = Bm.shape[0];
  Tensor h_all = (*lora_->acts)[lora_->h_index[ti]];
  Tensor h(static_cast<char*>(h_all.data) +
               static_cast<size_t>(l) * (h_all.numel() / config_.n_layer) * dtype_size(h_all.dtype),
           h_all.dtype, {N, r});
  Tensor u(lora_->acts->get("u").data, h.dtype, {N, out_dim});
  backend_.matmul_forward(h, x, A, Tensor());
  backend_.matmul_forward(u, h, Bm, Tensor());
  backend_.scale(u, u, lora_->config.scale());
  backend_.residual_forward(out, out, u);
}

void GptModel::lora_backward(LoraTarget t, int l, const Tensor& x, const Tensor& dout, Tensor dx,
                             int N) {
  const int ti = static_cast<int>(t);
  const int r = lora_->config.rank;
  Tensor A = layer_view((*lora_->params)[lora_->a_index[ti]], l);
  Tensor Bm = layer_view((*lora_->params)[lora_->b_index[ti]], l);
  Tensor dA = lora_->trainable ? layer_view((*lora_->grads)[lora_->a_index[ti]], l) : Tensor();
  Tensor dB = lora_->trainable ? layer_view((*lora_->grads)[lora_->b_index[ti]], l) : Tensor();
  const int64_t out_dim = Bm.shape[0], in_dim = A.shape[1];
  Tensor h_all = (*lora_->acts)[lora_->h_index[ti]];
  Tensor h(static_cast<char*>(h_all.data) +
               static_cast<size_t>(l) * (h_all.numel() / config_.n_layer) * dtype_size(h_all.dtype),
           h_all.dtype, {N, r});
  Tensor du(lora_->acts->get("u").data, h.dtype, {N, out_dim});
  Tensor dh(lora_->acts->get("dh").data, h.dtype, {N, r});
  Tensor dxt(lora_->acts->get("dx").data, h.dtype, {N, in_dim});
  backend_.scale(du, dout, lora_->config.scale());
  backend_.matmul_backward(dh, dB, Tensor(), du, h, Bm);  // dh = du·B, dB += duᵀ·h
  backend_.matmul_backward(dxt, dA, Tensor(), dh, x, A);  // dx' = dh·A, dA += dhᵀ·x
  backend_.residual_forward(dx, dx, dxt);                 // the input gradient accumulates
}

void GptModel::merge_lora() {
  if (!lora_) throw std::logic_error("merge_lora: LoRA is not enabled");
  const double s = lora_->config.scale();
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (lora_->a_index[t] < 0) continue;
    for (int l = 0; l < config_.n_layer; ++l) {
      Tensor W = layer_view(param(lora_target_param(t)), l);
      Tensor A = layer_view((*lora_->params)[lora_->a_index[t]], l);
      Tensor Bm = layer_view((*lora_->params)[lora_->b_index[t]], l);
      const int64_t out = W.shape[0], in = W.shape[1], r = A.shape[0];
      std::vector<float> w(static_cast<size_t>(W.numel())), a(static_cast<size_t>(A.numel())),
          b(static_cast<size_t>(Bm.numel()));
      backend_.download_f32(w.data(), W);
      backend_.download_f32(a.data(), A);
      backend_.download_f32(b.data(), Bm);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          double acc = 0.0;
          for (int64_t k = 0; k < r; ++k) acc += static_cast<double>(b[o * r + k]) * a[k * in + i];
          w[o * in + i] = static_cast<float>(w[o * in + i] + s * acc);
        }
      backend_.upload_f32(W, w.data());
      std::vector<float> zeros(b.size(), 0.0f);
      backend_.upload_f32(Bm, zeros.data());
    }
  }
}

std::vector<std::pair<std::string, Tensor>> GptModel::lora_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  if (!lora_) return out;
  const auto& layout = lora_->params->layout();
  for (int i = 0; i < layout.size(); ++i)
    out.emplace_back("lora." + layout.entry(i).name, (*lora_->params)[i]);
  return out;
}

// ---- classification head ---------------------------------------------------------------------

void GptModel::enable_class_head(int num_classes, uint64_t seed) {
  if (head_) throw std::logic_error("the class head is already enabled");
  if (num_classes < 2) throw std::invalid_argument("a class head needs at least 2 classes");
  const int64_t C = config_.n_embd, K = num_classes, B = max_batch_;
  const DType dt = backend_.dtype(), sd = backend_.stat_dtype();
  auto head = std::make_unique<ClassHead>();
  ArenaLayout params;
  params.add("cls_w", dt, {K, C});
  params.add("cls_b", dt, {K});
  ArenaLayout grads = params;
  ArenaLayout acts;
  acts.add("x", dt, {B, C});
  acts.add("logits", dt, {B, K});
  acts.add("losses", sd, {B});
  acts.add("labels", DType::i32, {B});
  acts.add("dx", dt, {B, C});
  head->params = std::make_unique<Arena>(backend_, std::move(params));
  head->grads = std::make_unique<Arena>(backend_, std::move(grads));
  head->acts = std::make_unique<Arena>(backend_, std::move(acts));
  Rng rng(seed ^ 0x434C5348ull);
  std::vector<float> w(static_cast<size_t>(K * C));
  for (auto& x : w) x = static_cast<float>(rng.normal() * 0.02);
  backend_.upload_f32((*head->params)[0], w.data());
  head_ = std::move(head);
  num_classes_ = num_classes;
}

Tensor GptModel::class_param(int i) const {
  if (!head_) throw std::logic_error("the class head is not enabled");
  return (*head_->params)[i];
}

std::vector<float> GptModel::class_logits_to_host(int B) {
  if (!head_) throw std::logic_error("the class head is not enabled");
  Tensor logits(head_->acts->get("logits").data, backend_.dtype(), {B, num_classes_});
  std::vector<float> host(static_cast<size_t>(logits.numel()));
  backend_.download_f32(host.data(), logits);
  return host;
}

double GptModel::class_head_forward(const int32_t* targets, int B, int T, float dloss,
                                    LossGrad grad) {
  const int C = config_.n_embd, K = num_classes_;
  const size_t esize = dtype_size(backend_.dtype());
  std::vector<int32_t> labels(static_cast<size_t>(B), -1);
  head_->positions.assign(static_cast<size_t>(B), -1);
  if (targets) {
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < T; ++t) {
        const int32_t y = targets[static_cast<size_t>(b) * T + t];
        if (y < 0) continue;
        if (head_->positions[b] >= 0) {
          throw std::invalid_argument(
              "class-head batch: row " + std::to_string(b) +
              " has more than one target (expected one label at the position to classify)");
        }
        if (y >= K) {
          throw std::out_of_range("class label " + std::to_string(y) + " in row " +
                                  std::to_string(b) + " is outside [0, " + std::to_string(K) + ")");
        }
        head_->positions[b] = t;
        labels[b] = y;
      }
    }
  }
  const Arena& a = *acts_->arena;
  Tensor lnf = act_view(a, acts_->layer_numel, kLnf, 0, {B, T, C});
  Tensor x(head_->acts->get("x").data, backend_.dtype(), {B, C});
  for (int b = 0; b < B; ++b) {
    // Without targets (prediction) classify the last position; padding rows read position 0.
    const int pos = targets ? std::max(head_->positions[b], 0) : T - 1;
    backend_.copy(static_cast<char*>(x.data) + static_cast<size_t>(b) * C * esize,
                  static_cast<char*>(lnf.data) + (static_cast<size_t>(b) * T + pos) * C * esize,
                  C * esize);
  }
  Tensor logits(head_->acts->get("logits").data, backend_.dtype(), {B, K});
  backend_.matmul_forward(logits, x, (*head_->params)[0], (*head_->params)[1]);
  if (!targets) return 0.0;
  Tensor label_t(head_->acts->get("labels").data, DType::i32, {B});
  backend_.copy_from_host(label_t.data, labels.data(), labels.size() * sizeof(int32_t));
  Tensor losses(head_->acts->get("losses").data, backend_.stat_dtype(), {B});
  backend_.crossentropy(losses, logits, label_t, K, dloss, grad);
  const double loss_sum = backend_.sum(losses);
  if (grad == LossGrad::write) {
    Tensor dx(head_->acts->get("dx").data, backend_.dtype(), {B, C});
    Tensor dw = head_->trainable ? (*head_->grads)[0] : Tensor();
    Tensor db = head_->trainable ? (*head_->grads)[1] : Tensor();
    backend_.matmul_backward(dx, dw, db, logits, x, (*head_->params)[0]);
    // The gradient at the final LayerNorm's output is dx at the classified positions, 0 elsewhere.
    Tensor dln = act_view(a, acts_->layer_numel, kDLn, 0, {B, T, C});
    backend_.fill_zero(dln.data, dln.bytes());
    for (int b = 0; b < B; ++b) {
      if (head_->positions[b] < 0) continue;
      backend_.copy(static_cast<char*>(dln.data) +
                        (static_cast<size_t>(b) * T + head_->positions[b]) * C * esize,
                    static_cast<char*>(dx.data) + static_cast<size_t>(b) * C * esize, C * esize);
    }
  }
  return loss_sum;
}

}  // namespace gpt
