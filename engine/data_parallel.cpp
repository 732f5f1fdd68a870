#include "engine/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "engine/checkpoint.h"
#ifdef GPT_HAVE_CUDA
#include "engine/cuda_backend.h"
#endif
#include "engine/errors.h"

namespace gpt {

namespace {

CommDType comm_dtype(DType d) {
  switch (d) {
    case DType::f32:
      return CommDType::f32;
    case DType::f64:
      return CommDType::f64;
    case DType::bf16:
      return CommDType::bf16;
    case DType::i32:
      break;
  }
  throw std::invalid_argument("data parallel: gradients of dtype i32");
}

std::string st_dtype(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::bf16:
      return "BF16";
    case DType::i32:
      return "I32";
  }
  return "?";
}

Tensor flat_view(const Tensor& t, int64_t begin, int64_t end) {
  return Tensor(static_cast<char*>(t.data) + static_cast<size_t>(begin) * dtype_size(t.dtype),
                t.dtype, Shape{end - begin});
}

// Sums of squares of consecutive blocks of `block` elements (the last one may be short), each
// added in element order in double.
template <typename F>
std::vector<double> block_sums(const F* x, int64_t n, int64_t block) {
  const int64_t nb = (n + block - 1) / block;
  std::vector<double> sums(static_cast<size_t>(nb));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0.0;
    const int64_t end = std::min(n, (b + 1) * block);
    for (int64_t i = b * block; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    sums[static_cast<size_t>(b)] = s;
  }
  return sums;
}

// The CUDA stream the backend queues its work on (null: not a CUDA backend). The data-path
// collectives of a device communicator are enqueued on it, after the backend's copies into the
// send buffer and before its reads of the results, so no host synchronisation orders them.
void* backend_stream(Backend& backend) {
#ifdef GPT_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend)) return cuda->stream();
#else
  (void)backend;
#endif
  return nullptr;
}

// A tiny self-describing packing of a SafeTensorsFile for gather_bytes.
void put(std::string& out, const void* p, size_t n) {
  out.append(static_cast<const char*>(p), n);
}
void put_str(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  put(out, &n, 8);
  out += s;
}
std::string pack(const SafeTensorsFile& f) {
  std::string out;
  uint64_t n = f.metadata.size();
  put(out, &n, 8);
  for (const auto& [k, v] : f.metadata) {
    put_str(out, k);
    put_str(out, v);
  }
  n = f.tensors.size();
  put(out, &n, 8);
  for (const auto& [name, t] : f.tensors) {
    put_str(out, name);
    put_str(out, t.dtype);
    n = t.shape.size();
    put(out, &n, 8);
    put(out, t.shape.data(), 8 * t.shape.size());
    put_str(out, std::string(t.data.begin(), t.data.end()));
  }
  return out;
}
SafeTensorsFile unpack(const std::string& in) {
  size_t pos = 0;
  auto get = [&](void* p, size_t n) {
    if (pos + n > in.size())
      throw std::runtime_error("data parallel: short optimizer shard message");
    std::memcpy(p, in.data() + pos, n);
    pos += n;
  };
  auto get_u64 = [&] {
    uint64_t v;
    get(&v, 8);
    return v;
  };
  auto get_str = [&] {
    const uint64_t n = get_u64();
    std::string s(n, '\0');
    get(s.data(), n);
    return s;
  };
  SafeTensorsFile f;
  for (uint64_t i = 0, n = get_u64(); i < n; ++i) {
    std::string k = get_str();
    f.metadata[k] = get_str();
  }
  for (uint64_t i = 0, n = get_u64(); i < n; ++i) {
    std::string name = get_str();
    SafeTensor t;
    t.dtype = get_str();
    t.shape.resize(get_u64());
    get(t.shape.data(), 8 * t.shape.size());
    const std::string data = get_str();
    t.data.assign(data.begin(), data.end());
    f.tensors.emplace_back(std::move(name), std::move(t));
  }
  return f;
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, Backend& backend, std::vector<ParamGroup> groups,
                           const AdamWConfig& config, bool zero)
    : comm_(comm),
      backend_(backend),
      config_(config),
      zero_(zero),
      direct_(comm.world_size() == 1 && !comm.device_buffers() &&
              backend.device() != DeviceKind::cpu) {
  for (ParamGroup& g : groups) {
    if (!g.trainable) continue;
    if (g.grad.empty() || g.grad.numel() != g.param.numel() || g.grad.dtype != backend.dtype())
      throw std::invalid_argument("data parallel: parameter group '" + g.name +
                                  "' has no gradient of its shape and the compute dtype");
    flat_offset_.push_back(flat_);
    flat_ += g.param.numel();
    groups_.push_back(std::move(g));
  }
  if (direct_) {
    // One rank on a GPU: nothing to reduce. The optimizer works on the model's own gradients, as
    // a plain single-GPU trainer does (no flat buffers, no copies).
    zero_ = false;
    shard_ = flat_;
    my_segments_ = segments_of(0);
    optimizer_ = std::make_unique<AdamW>(backend_, groups_, config_);
    return;
  }
  if (comm_.device_buffers()) comm_.set_device_stream(backend_stream(backend_));
  const int64_t N = comm_.world_size();
  const int64_t per_rank = (flat_ + N - 1) / N;
  shard_ = std::max<int64_t>(kNormBlock, (per_rank + kNormBlock - 1) / kNormBlock * kNormBlock);

  ArenaLayout layout;
  const DType dt = backend_.dtype();
  const int send = layout.add("dp.send", dt, Shape{N * shard_});
  const int accum = layout.add("dp.accumulator", dt, Shape{shard_});
  const int full = zero_ ? -1 : layout.add("dp.full_gradient", dt, Shape{N * shard_});
  buffers_ = std::make_unique<Arena>(backend_, std::move(layout));
  send_ = (*buffers_)[send];
  accum_ = (*buffers_)[accum];
  if (full >= 0) full_ = (*buffers_)[full];

  my_segments_ = segments_of(comm_.rank());
  optimizer_ = std::make_unique<AdamW>(backend_, make_shard_groups(my_segments_), config_);
}

DataParallel::~DataParallel() {
  if (comm_.device_buffers()) comm_.set_device_stream(nullptr);  // the backend may go first
}

size_t DataParallel::buffer_bytes() const {
  return buffers_ ? buffers_->bytes() : 0;
}

std::vector<DataParallel::Segment> DataParallel::segments_of(int rank) const {
  const int64_t lo = zero_ ? rank * shard_ : 0;
  const int64_t hi = zero_ ? std::min(flat_, lo + shard_) : flat_;
  std::vector<Segment> segs;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const int64_t a = flat_offset_[g], b = a + groups_[g].param.numel();
    const int64_t s = std::max(a, lo), e = std::min(b, hi);
    if (s < e) segs.push_back(Segment{static_cast<int>(g), s - a, e - a, s});
  }
  return segs;
}

std::vector<ParamGroup> DataParallel::make_shard_groups(const std::vector<Segment>& segs) const {
  std::vector<ParamGroup> out;
  const int64_t base = zero_ ? comm_.rank() * shard_ : 0;
  for (const Segment& s : segs) {
    const ParamGroup& g = groups_[static_cast<size_t>(s.group)];
    ParamGroup p;
    const bool whole = s.begin == 0 && s.end == g.param.numel();
    p.name = whole ? g.name : g.name + "@" + std::to_string(s.begin) + ":" + std::to_string(s.end);
    p.param = flat_view(g.param, s.begin, s.end);
    if (whole) p.param = g.param;
    const Tensor& grads = zero_ ? accum_ : full_;
    p.grad = flat_view(grads, s.flat_begin - base, s.flat_begin - base + (s.end - s.begin));
    if (whole) p.grad = p.grad.reshape(g.param.shape);
    p.weight_decay = g.weight_decay;
    p.trainable = true;
    out.push_back(std::move(p));
  }
  return out;
}

void DataParallel::reduce_round(bool first) {
  if (direct_) return;  // the model's gradients are the global gradient
  const size_t es = dtype_size(backend_.dtype());
  char* send = static_cast<char*>(send_.data);
  for (size_t g = 0; g < groups_.size(); ++g)
    backend_.copy(send + static_cast<size_t>(flat_offset_[g]) * es, groups_[g].grad.data,
                  groups_[g].grad.bytes());
  // Device buffers: the collective follows the copies on the backend's stream (set_device_stream);
  // a backend without one finishes its copies first.
  if (comm_.device_buffers() && backend_stream(backend_) == nullptr) backend_.synchronize();
  comm_.reduce_scatter(send_.data, accum_.data, static_cast<size_t>(shard_),
                       comm_dtype(backend_.dtype()), !first);
}

double DataParallel::grad_norm() {
  if (direct_) {
    double total = 0.0;
    for (const ParamGroup& p : groups_) total += backend_.sum_of_squares(p.grad);
    return std::sqrt(total);
  }
  const int N = comm_.world_size();
  if (!zero_) {
    // Every rank gathers the whole reduced gradient and updates every parameter.
    comm_.all_gather(accum_.data, full_.data, static_cast<size_t>(shard_),
                     comm_dtype(backend_.dtype()));
  }
  double total = 0.0;
  if (backend_.device() == DeviceKind::cpu) {
    const Tensor& x = zero_ ? accum_ : full_;
    std::vector<double> sums;
    if (x.dtype == DType::f32)
      sums = block_sums(x.ptr<float>(), x.numel(), kNormBlock);
    else if (x.dtype == DType::f64)
      sums = block_sums(x.ptr<double>(), x.numel(), kNormBlock);
    else
      throw std::invalid_argument("data parallel: CPU gradients of dtype " +
                                  std::string(dtype_name(x.dtype)));
    if (zero_) {
      std::vector<double> all(sums.size() * static_cast<size_t>(N));
      comm_.all_gather_host(sums.data(), all.data(), sums.size() * sizeof(double));
      sums.swap(all);
    }
    for (double s : sums) total += s;  // block order: the same bits at every world size
  } else {
    for (const ParamGroup& p : optimizer_->groups()) total += backend_.sum_of_squares(p.grad);
    if (zero_) comm_.all_reduce_sum(&total, 1);
  }
  return std::sqrt(total);
}

double DataParallel::step(float lr) {
  return apply(lr, grad_norm());
}

std::string DataParallel::first_nonfinite_gradient() {
  constexpr size_t kName = 160;
  std::string mine;
  for (const ParamGroup& p : optimizer_->groups()) {
    if (!std::isfinite(backend_.sum_of_squares(p.grad))) {
      mine = p.name;
      break;
    }
  }
  mine.resize(kName, '\0');
  std::vector<char> all(kName * static_cast<size_t>(comm_.world_size()));
  comm_.all_gather_host(mine.data(), all.data(), kName);
  for (int r = 0; r < comm_.world_size(); ++r) {
    const char* name = all.data() + static_cast<size_t>(r) * kName;
    if (name[0] != '\0') return std::string(name, strnlen(name, kName));
  }
  return "";
}

void DataParallel::poison_gradient_for_test() {
  const Tensor& t = direct_ ? groups_.front().grad : accum_;
  if (t.numel() == 0) return;
  if (t.dtype == DType::f32) {
    const float nan = std::nanf("");
    backend_.copy_from_host(t.data, &nan, sizeof(nan));
  } else {
    const uint16_t nan = 0x7FC0;  // bf16 quiet NaN
    backend_.copy_from_host(t.data, &nan, sizeof(nan));
  }
}

double DataParallel::apply(float lr, double norm) {
  if (direct_) return optimizer_->step(lr, norm);
  const double result = optimizer_->step(lr, norm);
  if (!zero_) return result;
  // Every rank's updated shard of the parameters goes to every rank.
  const size_t es = dtype_size(backend_.dtype());
  char* send = static_cast<char*>(send_.data);
  for (const Segment& s : my_segments_) {
    const ParamGroup& g = groups_[static_cast<size_t>(s.group)];
    backend_.copy(send + static_cast<size_t>(s.flat_begin) * es,
                  static_cast<const char*>(g.param.data) + static_cast<size_t>(s.begin) * es,
                  static_cast<size_t>(s.end - s.begin) * es);
  }
  if (comm_.device_buffers() && backend_stream(backend_) == nullptr) backend_.synchronize();
  const size_t mine = static_cast<size_t>(comm_.rank()) * static_cast<size_t>(shard_) * es;
  comm_.all_gather(send + mine, send, static_cast<size_t>(shard_), comm_dtype(backend_.dtype()));
  for (size_t g = 0; g < groups_.size(); ++g)
    backend_.copy(groups_[g].param.data, send + static_cast<size_t>(flat_offset_[g]) * es,
                  groups_[g].param.bytes());
  return result;
}

// ---- checkpoints --------------------------------------------------------------------------------

SafeTensorsFile DataParallel::shard_state() {
  SafeTensorsFile f = optimizer_state_to_safetensors(*optimizer_);
  const bool sharded = zero_ && comm_.world_size() > 1;
  f.metadata["world_size"] = sharded ? std::to_string(comm_.world_size()) : "1";
  f.metadata["rank"] = sharded ? std::to_string(comm_.rank()) : "0";
  f.metadata["zero"] = zero_ ? "1" : "0";
  f.metadata["flat_elements"] = std::to_string(flat_);
  f.metadata["shard_elements"] = std::to_string(sharded ? shard_ : flat_);
  return f;
}

std::vector<SafeTensorsFile> DataParallel::gather_state() {
  SafeTensorsFile mine = shard_state();
  if (comm_.world_size() == 1) return {std::move(mine)};
  if (!zero_) {  // every rank holds the same full state: rank 0's is the checkpoint
    comm_.barrier();
    return comm_.rank() == 0 ? std::vector<SafeTensorsFile>{std::move(mine)}
                             : std::vector<SafeTensorsFile>{};
  }
  const std::vector<std::string> parts = comm_.gather_bytes(pack(mine), 0);
  std::vector<SafeTensorsFile> out;
  for (const std::string& p : parts) out.push_back(unpack(p));
  return out;
}

void DataParallel::load_state(const std::vector<std::pair<std::string, SafeTensorsFile>>& files) {
  if (files.empty()) throw std::runtime_error("optimizer state: no files");
  const DType sd = backend_.stat_dtype();
  const size_t es = dtype_size(sd);
  std::map<std::string, int> group_index;
  for (size_t g = 0; g < groups_.size(); ++g) group_index[groups_[g].name] = static_cast<int>(g);

  // Put the pieces together per (group, part), checking that they tile the group exactly.
  struct Whole {
    std::vector<uint8_t> data;
    std::vector<std::pair<int64_t, int64_t>> ranges;
    std::string where;
  };
  std::map<std::pair<int, std::string>, Whole> wholes;
  long step = -1;
  for (const auto& [path, file] : files) {
    auto meta = file.metadata.find("format");
    if (meta == file.metadata.end() || meta->second != "gpt-engine-optimizer")
      fail(path, "metadata field 'format': expected gpt-engine-optimizer");
    auto st = file.metadata.find("step");
    if (st == file.metadata.end()) fail(path, "metadata field 'step' is missing");
    long s = -1;
    try {
      s = std::stol(st->second);
    } catch (const std::exception&) {
      fail(path, "metadata field 'step': '" + st->second + "' is not an integer");
    }
    if (step >= 0 && s != step)
      fail(path, "optimizer step " + std::to_string(s) + " differs from another shard's " +
                     std::to_string(step));
    step = s;
    for (const auto& [name, t] : file.tensors) {
      const size_t dot = name.rfind('.');
      if (dot == std::string::npos)
        fail(path, "tensor '" + name + "': expected <group>.m/.v/.master");
      const std::string part = name.substr(dot + 1);
      std::string base = name.substr(0, dot);
      if (part != "m" && part != "v" && part != "master")
        fail(path, "tensor '" + name + "': expected <group>.m/.v/.master");
      int64_t a = 0, b = -1;
      const size_t at = base.find('@');
      if (at != std::string::npos) {
        const std::string range = base.substr(at + 1);
        base = base.substr(0, at);
        const size_t colon = range.find(':');
        try {
          if (colon == std::string::npos) throw std::invalid_argument("no colon");
          a = std::stoll(range.substr(0, colon));
          b = std::stoll(range.substr(colon + 1));
        } catch (const std::exception&) {
          fail(path, "tensor '" + name + "': malformed range '" + range + "'");
        }
      }
      auto gi = group_index.find(base);
      if (gi == group_index.end())
        fail(path, "tensor '" + name + "' does not belong to this model's optimizer (trainable '" +
                       base + "')");
      const int64_t numel = groups_[static_cast<size_t>(gi->second)].param.numel();
      if (b < 0) b = numel;
      if (a < 0 || b > numel || a >= b)
        fail(path, "tensor '" + name + "': range outside the group's " + std::to_string(numel) +
                       " elements");
      if (t.dtype != st_dtype(sd))
        fail(path, "tensor '" + name + "' has dtype " + t.dtype + ", expected " + st_dtype(sd));
      if (t.numel() != b - a || t.data.size() != static_cast<size_t>(b - a) * es)
        fail(path, "tensor '" + name + "' has " + std::to_string(t.numel()) +
                       " elements, expected " + std::to_string(b - a));
      Whole& w = wholes[{gi->second, part}];
      if (w.data.empty()) w.data.resize(static_cast<size_t>(numel) * es);
      std::memcpy(w.data.data() + static_cast<size_t>(a) * es, t.data.data(), t.data.size());
      w.ranges.emplace_back(a, b);
      w.where = path;
    }
  }
  // What this rank needs: every segment's m, v (and master when it has them).
  struct Copy {
    Tensor dst;
    const uint8_t* src;
  };
  std::vector<Copy> copies;
  for (size_t i = 0; i < my_segments_.size(); ++i) {
    const Segment& s = my_segments_[i];
    const ParamGroup& g = groups_[static_cast<size_t>(s.group)];
    const int gi = static_cast<int>(i);
    const std::pair<const char*, Tensor> parts[] = {
        {"m", optimizer_->m(gi)}, {"v", optimizer_->v(gi)}, {"master", optimizer_->master(gi)}};
    for (const auto& [part, dst] : parts) {
      if (dst.empty()) continue;
      auto it = wholes.find({s.group, part});
      if (it == wholes.end())
        throw std::runtime_error(files.front().first + ": optimizer state has no '" + g.name + "." +
                                 part + "'");
      auto ranges = it->second.ranges;
      std::sort(ranges.begin(), ranges.end());
      int64_t covered = 0;
      for (const auto& [a, b] : ranges) {
        if (a != covered)
          throw std::runtime_error(it->second.where + ": optimizer state of '" + g.name + "." +
                                   part + "' " + (a < covered ? "overlaps" : "has a gap") +
                                   " at element " + std::to_string(std::min(a, covered)));
        covered = b;
      }
      if (covered != g.param.numel())
        throw std::runtime_error(it->second.where + ": optimizer state of '" + g.name + "." + part +
                                 "' ends at element " + std::to_string(covered) + " of " +
                                 std::to_string(g.param.numel()));
      copies.push_back({dst, it->second.data.data() + static_cast<size_t>(s.begin) * es});
    }
  }
  for (const Copy& c : copies) backend_.copy_from_host(c.dst.data, c.src, c.dst.bytes());
  optimizer_->set_step_count(step);
}

}  // namespace gpt
