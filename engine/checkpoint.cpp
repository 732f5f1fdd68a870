#include "engine/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

namespace fs = std::filesystem;

// ---- SHA-256 ------------------------------------------------------------------------------------

namespace {

constexpr uint32_t kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

}  // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19},
      buf_{} {}

void Sha256::block(const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) |
           (uint32_t(p[4 * i + 2]) << 8) | uint32_t(p[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 =
        h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kSha256K[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  if (n == 0) return;  // data may be null then (an empty tensor): memcpy must not see it
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (buf_len_ > 0) {
    const size_t take = std::min(n, 64 - buf_len_);
    std::memcpy(buf_ + buf_len_, p, take);
    buf_len_ += take;
    p += take;
    n -= take;
    if (buf_len_ < 64) return;
    block(buf_);
    buf_len_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buf_, p, n);
  buf_len_ = n;
}

std::string Sha256::hex_digest() {
  const uint64_t bits = total_ * 8;
  const uint8_t pad = 0x80;
  update(&pad, 1);
  const uint8_t zero = 0;
  while (buf_len_ != 56) update(&zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  update(len, 8);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h_)
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(hex[(v >> shift) & 0xf]);
  return out;
}

std::string sha256_hex(const void* data, size_t n) {
  Sha256 s;
  s.update(data, n);
  return s.hex_digest();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  Sha256 s;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    s.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return s.hex_digest();
}

// ---- file-system helpers -----------------------------------------------------------------------

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, "read failed");
  return s;
}

// Replaces root/name with a file holding `target` + "\n" (engine/files.h: temp file, fsync, rename,
// fsync root).
void write_pointer(const std::string& root, const std::string& name, const std::string& target) {
  write_file_atomic(root + "/" + name, target + "\n");
}

// The name stored in a pointer file, or "" when there is none.
std::string read_pointer(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return "";
  std::string s = read_file(file);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..")
    fail(file, "malformed pointer file (expected a checkpoint directory name such as ckpt_000120)");
  return s;
}

// Whether `name` is "ckpt_" followed by digits; sets *step.
bool parse_checkpoint_name(const std::string& name, long* step) {
  if (name.size() <= 5 || name.compare(0, 5, "ckpt_") != 0) return false;
  long v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    if (v > (std::numeric_limits<long>::max() - 9) / 10) return false;
    v = v * 10 + (name[i] - '0');
  }
  *step = v;
  return true;
}

// GPT_TEST_CRASH_IN_CHECKPOINT=STAGE[:STEP]: simulates a crash at STAGE (see checkpoint.h).
void maybe_crash(const char* stage, long step) {
  const char* env = std::getenv("GPT_TEST_CRASH_IN_CHECKPOINT");
  if (!env || !*env) return;
  std::string want = env;
  long want_step = -1;
  const size_t colon = want.find(':');
  if (colon != std::string::npos) {
    want_step = std::strtol(want.c_str() + colon + 1, nullptr, 10);
    want.resize(colon);
  }
  if (want != stage || (want_step >= 0 && want_step != step)) return;
  std::fprintf(stderr, "GPT_TEST_CRASH_IN_CHECKPOINT: simulated crash at %s of step %ld\n", stage,
               step);
  std::fflush(stderr);
  ::_exit(1);
}

struct Listed {
  long step;
  std::string name;
  bool has_val;
  double val;
};

// Complete checkpoints under root (directories ckpt_<digits> holding trainer_state.json), by step.
std::vector<Listed> list_checkpoints(const std::string& root) {
  std::vector<Listed> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    long step;
    const std::string name = e.path().filename().string();
    if (!parse_checkpoint_name(name, &step) || !e.is_directory(ec)) continue;
    const std::string state = e.path().string() + "/trainer_state.json";
    if (!fs::is_regular_file(state, ec)) continue;
    Listed l{step, name, false, 0.0};
    try {
      const nlohmann::json j = nlohmann::json::parse(read_file(state));
      if (j.contains("val_loss") && j["val_loss"].is_number()) {
        l.has_val = true;
        l.val = j["val_loss"].get<double>();
      }
    } catch (const std::exception&) {
      // An unreadable state only means no validation loss for the retention decision.
    }
    out.push_back(l);
  }
  std::sort(out.begin(), out.end(),
            [](const Listed& a, const Listed& b) { return a.step < b.step; });
  return out;
}

// Removes a directory so that no half-deleted checkpoint is ever visible under its own name.
void remove_checkpoint_dir(const std::string& root, const std::string& name) {
  const std::string trash = root + "/.trash-" + name;
  std::error_code ec;
  fs::remove_all(trash, ec);
  if (::rename((root + "/" + name).c_str(), trash.c_str()) != 0) return;
  fs::remove_all(trash, ec);
}

// Temporary directories and files that a crashed writer may have left behind.
void remove_stale_temporaries(const std::string& root) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    const bool tmp_ckpt =
        n.rfind(".ckpt_", 0) == 0 && n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0;
    const bool trash = n.rfind(".trash-ckpt_", 0) == 0;
    const bool tmp_pointer = n.rfind(".latest.tmp", 0) == 0 || n.rfind(".best.tmp", 0) == 0;
    if (tmp_ckpt || trash || tmp_pointer) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
}

void apply_retention(const std::string& root, const std::string& latest,
                     const RetentionPolicy& policy) {
  const std::vector<Listed> all = list_checkpoints(root);
  const Listed* best = nullptr;
  for (const Listed& l : all)
    if (l.has_val && (!best || l.val < best->val)) best = &l;
  if (best && read_pointer(root + "/best") != best->name) write_pointer(root, "best", best->name);
  if (policy.keep_last <= 0) return;
  const size_t keep_from = all.size() > static_cast<size_t>(policy.keep_last)
                               ? all.size() - static_cast<size_t>(policy.keep_last)
                               : 0;
  for (size_t i = 0; i < keep_from; ++i) {
    if (all[i].name == latest || (best && all[i].name == best->name)) continue;
    remove_checkpoint_dir(root, all[i].name);
  }
}

}  // namespace

// ---- writing ------------------------------------------------------------------------------------

std::string checkpoint_dir_name(long step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ckpt_%06ld", step);
  return buf;
}

std::string save_checkpoint(const std::string& root, long step, const CheckpointContents& contents,
                            const RetentionPolicy& policy) {
  if (step < 0) throw std::invalid_argument("save_checkpoint: negative step");
  if (!contents.state.is_object())
    throw std::invalid_argument("save_checkpoint: state must be a JSON object");
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail(root, "cannot create the directory: " + ec.message());
  remove_stale_temporaries(root);

  const std::string name = checkpoint_dir_name(step);
  const std::string final_dir = root + "/" + name;
  const std::string tmp = root + "/." + name + ".tmp";
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec) || ec)
    fail(tmp, "cannot create the directory: " + ec.message());

  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  auto record = [&](const std::string& file) {
    const std::string p = tmp + "/" + file;
    files[file] = {{"bytes", static_cast<uint64_t>(fs::file_size(p))}, {"sha256", sha256_file(p)}};
  };
  for (const auto& [file, tensors] : contents.tensor_files) {
    if (file.find('/') != std::string::npos)
      throw std::invalid_argument("save_checkpoint: bad file name " + file);
    write_safetensors(tmp + "/" + file, tensors);  // atomic: temporary file, fsync, rename
    record(file);
    if (file == "model.safetensors") maybe_crash("after_model", step);
    if (file == "optimizer.safetensors") maybe_crash("after_optimizer", step);
  }
  for (const std::string& src : contents.copy_files) {
    const std::string base = fs::path(src).filename().string();
    if (files.contains(base) || base == "trainer_state.json")
      throw std::invalid_argument("save_checkpoint: two files named " + base);
    write_file_atomic(tmp + "/" + base, read_file(src));
    record(base);
  }

  nlohmann::ordered_json state;
  state["format"] = kCheckpointFormat;
  state["version"] = kCheckpointVersion;
  state["step"] = step;
  for (auto it = contents.state.begin(); it != contents.state.end(); ++it) {
    if (it.key() == "format" || it.key() == "version" || it.key() == "step" || it.key() == "files")
      continue;
    state[it.key()] = it.value();
  }
  state["files"] = files;
  write_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n");
  fsync_directory(tmp);
  maybe_crash("before_rename", step);

  if (fs::exists(final_dir, ec)) {
    // A checkpoint of this step exists (a run resumed and saved the same step again): swap the two
    // directories atomically, so that a crash leaves one complete checkpoint under the name.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
      // Without RENAME_EXCHANGE (some file systems): move the old one aside first.
      const std::string aside = root + "/.trash-" + name;
      fs::remove_all(aside, ec);
      if (::rename(final_dir.c_str(), aside.c_str()) != 0)
        fail(final_dir, "rename failed: " + errno_text());
      if (::rename(tmp.c_str(), final_dir.c_str()) != 0)
        fail(final_dir, "rename failed: " + errno_text());
      fs::remove_all(aside, ec);
    } else {
      fs::remove_all(tmp, ec);  // now holds the old checkpoint
    }
  } else if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    fail(final_dir, "rename failed: " + errno_text());
  }
  fsync_directory(root);
  maybe_crash("before_latest", step);
  write_pointer(root, "latest", name);
  apply_retention(root, name, policy);
  return final_dir;
}

// ---- reading ------------------------------------------------------------------------------------

void remove_checkpoints(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  // The pointers first: a run interrupted here has no `latest` naming a half-removed checkpoint.
  for (const char* pointer : {"latest", "best"}) {
    fs::remove(root + "/" + pointer, ec);
    if (ec) fail(root + "/" + pointer, "cannot remove: " + ec.message());
  }
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().filename().string().rfind("ckpt_", 0) != 0) continue;
    fs::remove_all(e.path(), ec);
    if (ec) fail(e.path().string(), "cannot remove: " + ec.message());
  }
}

std::string latest_checkpoint(const std::string& root) {
  const std::string name = read_pointer(root + "/latest");
  return name.empty() ? "" : root + "/" + name;
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p + "/trainer_state.json", ec)) return p;
    if (fs::is_regular_file(p + "/latest", ec))
      p = p + "/latest";
    else
      fail(p, "not a checkpoint (no trainer_state.json) and no 'latest' pointer in it");
  }
  if (!fs::exists(p, ec)) fail(p, "no such file or directory");
  const std::string name = read_pointer(p);
  const std::string dir = fs::path(p).parent_path().string();
  const std::string target = (dir.empty() ? std::string(".") : dir) + "/" + name;
  if (!fs::is_regular_file(target + "/trainer_state.json", ec))
    fail(p, "points to " + name + ", which is not a complete checkpoint (no " + target +
                "/trainer_state.json)");
  return target;
}

bool looks_like_checkpoint(const std::string& path) {
  try {
    resolve_checkpoint(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

Checkpoint Checkpoint::open(const std::string& dir_in) {
  Checkpoint c;
  c.dir_ = dir_in;
  while (c.dir_.size() > 1 && c.dir_.back() == '/') c.dir_.pop_back();
  const std::string state_path = c.dir_ + "/trainer_state.json";
  std::error_code ec;
  if (!fs::is_directory(c.dir_, ec)) fail(c.dir_, "not a directory");
  if (!fs::is_regular_file(state_path, ec))
    fail(c.dir_, "not a checkpoint (no trainer_state.json)");
  try {
    c.state_ = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    fail(state_path, std::string("malformed JSON: ") + e.what());
  }
  const nlohmann::json& s = c.state_;
  if (!s.is_object()) fail(state_path, "not a JSON object");
  if (!s.contains("format") || s["format"] != kCheckpointFormat)
    fail(state_path, std::string("field 'format': expected \"") + kCheckpointFormat + "\"");
  if (!s.contains("version") || !s["version"].is_number_integer())
    fail(state_path, "field 'version': expected an integer");
  if (s["version"].get<int>() > kCheckpointVersion || s["version"].get<int>() < 1)
    fail(state_path, "field 'version': version " + s["version"].dump() +
                         " is not supported (this build reads " +
                         std::to_string(kCheckpointVersion) + ")");
  if (!s.contains("step") || !s["step"].is_number_integer() || s["step"].get<long>() < 0)
    fail(state_path, "field 'step': expected a non-negative integer");
  c.step_ = s["step"].get<long>();
  if (!s.contains("files") || !s["files"].is_object())
    fail(state_path, "field 'files': expected an object");
  for (auto it = s["files"].begin(); it != s["files"].end(); ++it) {
    const std::string& name = it.key();
    const std::string where = "field 'files': entry '" + name + "'";
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail(state_path, where + ": not a plain file name");
    const nlohmann::json& e = it.value();
    if (!e.is_object() || !e.contains("bytes") || !e["bytes"].is_number_unsigned() ||
        !e.contains("sha256") || !e["sha256"].is_string())
      fail(state_path, where + ": expected {\"bytes\": N, \"sha256\": \"...\"}");
    const std::string file = c.path(name);
    if (!fs::is_regular_file(file, ec)) fail(file, "missing (listed in trainer_state.json)");
    const uint64_t size = fs::file_size(file, ec);
    const uint64_t want = e["bytes"].get<uint64_t>();
    if (size != want)
      fail(file, "size " + std::to_string(size) + " bytes, trainer_state.json says " +
                     std::to_string(want) + " (truncated or replaced)");
    const std::string digest = sha256_file(file);
    if (digest != e["sha256"].get<std::string>())
      fail(file, "checksum mismatch: SHA-256 " + digest + ", trainer_state.json says " +
                     e["sha256"].get<std::string>() + " (the file is corrupted)");
  }
  return c;
}

bool Checkpoint::has_file(const std::string& name) const {
  return state_["files"].contains(name);
}

SafeTensorsFile Checkpoint::read_tensors(const std::string& name) const {
  if (!has_file(name)) fail(dir_, "no " + name + " listed in trainer_state.json");
  return read_safetensors(path(name));
}

const nlohmann::json& Checkpoint::field(const std::string& name) const {
  if (!state_.contains(name)) fail(path("trainer_state.json"), "missing field '" + name + "'");
  return state_[name];
}

const SafeTensor& require_tensor(const SafeTensorsFile& file, const std::string& path,
                                 const std::string& name, const std::string& dtype,
                                 const std::vector<int64_t>& shape) {
  const SafeTensor* t = file.find(name);
  if (!t) fail(path, "missing tensor '" + name + "'");
  if (t->dtype != dtype)
    fail(path, "tensor '" + name + "' has dtype " + t->dtype + ", expected " + dtype);
  if (t->shape != shape)
    fail(path, "tensor '" + name + "' has shape " + nlohmann::json(t->shape).dump() +
                   ", expected " + nlohmann::json(shape).dump());
  return *t;
}

// ---- optimizer state ----------------------------------------------------------------------------

namespace {

std::string safetensors_dtype(DType d) {
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

std::vector<int64_t> dims(const Shape& s) {
  std::vector<int64_t> v;
  for (int i = 0; i < s.ndim(); ++i) v.push_back(s[i]);
  return v;
}

}  // namespace

SafeTensorsFile optimizer_state_to_safetensors(AdamW& optimizer) {
  SafeTensorsFile file;
  file.metadata["format"] = "gpt-engine-optimizer";
  file.metadata["optimizer"] = "adamw";
  file.metadata["step"] = std::to_string(optimizer.step_count());
  file.metadata["world_size"] = "1";
  file.metadata["rank"] = "0";
  Backend& backend = optimizer.backend();
  const auto& groups = optimizer.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    const int gi = static_cast<int>(i);
    const std::pair<const char*, Tensor> parts[] = {
        {".m", optimizer.m(gi)}, {".v", optimizer.v(gi)}, {".master", optimizer.master(gi)}};
    for (const auto& [suffix, t] : parts) {
      if (t.empty()) continue;
      SafeTensor st;
      st.dtype = safetensors_dtype(t.dtype);
      st.shape = dims(t.shape);
      st.data.resize(t.bytes());
      backend.copy_to_host(st.data.data(), t.data, t.bytes());
      file.tensors.emplace_back(groups[i].name + suffix, std::move(st));
    }
  }
  return file;
}

void optimizer_state_from_safetensors(AdamW& optimizer, const SafeTensorsFile& file,
                                      const std::string& path) {
  auto meta = [&](const std::string& key) -> std::string {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) fail(path, "metadata field '" + key + "' is missing");
    return it->second;
  };
  if (meta("format") != "gpt-engine-optimizer")
    fail(path, "metadata field 'format': expected gpt-engine-optimizer, got " + meta("format"));
  if (meta("world_size") != "1")
    fail(path, "metadata field 'world_size': this file is one shard of " + meta("world_size") +
                   " (sharded optimizer state needs the data-parallel loader)");
  const std::string step_text = meta("step");
  char* end = nullptr;
  errno = 0;
  const long step = std::strtol(step_text.c_str(), &end, 10);
  if (step_text.empty() || *end != '\0' || errno == ERANGE || step < 0)
    fail(path, "metadata field 'step': expected a non-negative integer, got '" + step_text + "'");

  // Validate everything first, then copy: a bad file changes nothing.
  struct Copy {
    Tensor dst;
    const SafeTensor* src;
  };
  std::vector<Copy> copies;
  size_t expected_tensors = 0;
  const auto& groups = optimizer.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    const int gi = static_cast<int>(i);
    const std::pair<const char*, Tensor> parts[] = {
        {".m", optimizer.m(gi)}, {".v", optimizer.v(gi)}, {".master", optimizer.master(gi)}};
    for (const auto& [suffix, t] : parts) {
      if (t.empty()) continue;
      ++expected_tensors;
      copies.push_back({t, &require_tensor(file, path, groups[i].name + suffix,
                                           safetensors_dtype(t.dtype), dims(t.shape))});
    }
  }
  if (file.tensors.size() != expected_tensors) {
    for (const auto& [name, t] : file.tensors) {
      bool known = false;
      for (const Copy& c : copies) known = known || c.src == &t;
      if (!known) fail(path, "tensor '" + name + "' does not belong to this model's optimizer");
    }
  }
  for (const Copy& c : copies)
    optimizer.backend().copy_from_host(c.dst.data, c.src->data.data(), c.dst.bytes());
  optimizer.set_step_count(step);
}

// ---- RNG state ----------------------------------------------------------------------------------

nlohmann::json rng_state_to_json(const Rng& rng) {
  nlohmann::json words = nlohmann::json::array();
  for (uint64_t w : rng.state()) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(w));
    words.push_back(buf);
  }
  return nlohmann::json{{"generator", "xoshiro256**"}, {"state", words}};
}

void rng_state_from_json(Rng& rng, const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("state") || !j["state"].is_array() || j["state"].size() != 4)
    fail(source,
         "RNG state: expected {\"generator\": \"xoshiro256**\", \"state\": [4 hex strings]}");
  std::array<uint64_t, 4> s{};
  for (int i = 0; i < 4; ++i) {
    const nlohmann::json& w = j["state"][i];
    if (!w.is_string() || w.get<std::string>().size() != 16)
      fail(source, "RNG state word " + std::to_string(i) + ": expected 16 hex digits");
    const std::string text = w.get<std::string>();
    char* end = nullptr;
    s[i] = std::strtoull(text.c_str(), &end, 16);
    if (*end != '\0')
      fail(source, "RNG state word " + std::to_string(i) + ": expected 16 hex digits");
  }
  rng.set_state(s);
}

}  // namespace gpt
