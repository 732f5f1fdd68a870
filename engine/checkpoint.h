// Checkpoints: one directory per checkpoint, written so that a crash at any moment leaves the
// previous checkpoint loadable. The engine knows nothing of the model here: a checkpoint is a set
// of named safetensors files, a few copied files (the tokenizer) and a JSON trainer state.
//
//   ROOT/ckpt_000120/model.safetensors      weights (written by the app, e.g. models/gpt_interop)
//   ROOT/ckpt_000120/optimizer.safetensors  AdamW m, v (+ fp32 master weights): optimizer_state_*
//   ROOT/ckpt_000120/trainer_state.json     the caller's state + "format", "version", "step" and
//                                           "files": {name: {"bytes", "sha256"}} for every file
//   ROOT/ckpt_000120/meta.json ...          copied tokenizer files
//   ROOT/latest                             "ckpt_000120\n", replaced atomically
//   ROOT/best                               the checkpoint with the lowest "val_loss", if any
//
// Writing (save_checkpoint): everything goes into ROOT/.ckpt_000120.tmp; each file is fsynced,
// then the directory, then it is renamed to ROOT/ckpt_000120 (atomically exchanged when a
// checkpoint of the same step exists), ROOT is fsynced, and only then is `latest` replaced
// (temp file + fsync + rename + fsync of ROOT). Old checkpoints are deleted after that (renamed to
// a dot-name first, so a half-deleted directory never looks like a checkpoint). Leftover
// temporary directories of a crashed writer are removed by the next save.
//
// Reading (Checkpoint::open) checks the format, the size and SHA-256 of every listed file before
// anything is returned, so a truncated or corrupted file is reported, naming it, and never loaded.
// docs/checkpoints.md describes the format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/optimizer.h"
#include "engine/rng.h"
#include "engine/safetensors.h"

namespace gpt {

constexpr const char* kCheckpointFormat = "gpt-engine-checkpoint";
constexpr int kCheckpointVersion = 1;

// ---- checksums ----------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), so that `sha256sum ckpt_000120/model.safetensors` gives the same digest.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();  // 64 lowercase hex digits; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};
std::string sha256_hex(const void* data, size_t n);
// Throws std::runtime_error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

// ---- writing ------------------------------------------------------------------------------------
struct CheckpointContents {
  // Tensor files by file name, e.g. {"model.safetensors", ...}, {"optimizer.safetensors", ...}.
  std::vector<std::pair<std::string, SafeTensorsFile>> tensor_files;
  // Files copied in verbatim under their base name (tokenizer files); missing ones are an error.
  std::vector<std::string> copy_files;
  // The trainer state (a JSON object). The writer adds "format", "version", "step" and "files".
  // A numeric "val_loss" marks the checkpoint as a candidate for ROOT/best.
  nlohmann::json state = nlohmann::json::object();
};

struct RetentionPolicy {
  int keep_last =
      0;  // keep the newest K checkpoints (0: keep all); `latest` and `best` always stay
};

// "ckpt_000120"
std::string checkpoint_dir_name(long step);

// Writes ROOT/ckpt_<step> as described above, points ROOT/latest (and ROOT/best) at it, applies the
// retention policy, and returns the checkpoint's path. Throws std::runtime_error naming the file on
// any failure; the previous checkpoint and `latest` are untouched then.
//
// Test hook: the environment variable GPT_TEST_CRASH_IN_CHECKPOINT=STAGE[:STEP] makes the writer
// _exit(1) at STAGE (after_model, after_optimizer, before_rename, before_latest), only for the
// checkpoint of STEP when given, to simulate a crash (kill -9, power loss) in the middle of a
// write.
std::string save_checkpoint(const std::string& root, long step, const CheckpointContents& contents,
                            const RetentionPolicy& policy);

// Starting a run over in ROOT: removes its checkpoints (ckpt_*) and the `latest` and `best`
// pointers, nothing else. Throws std::runtime_error naming what could not be removed.
void remove_checkpoints(const std::string& root);

// ---- reading ------------------------------------------------------------------------------------
// Resolves what a user passes to --resume / --init / --checkpoint: a checkpoint directory (holds
// trainer_state.json), a `latest` or `best` pointer file, or a run directory holding `latest`.
// Throws std::runtime_error naming the path when it is none of those or the pointer dangles.
std::string resolve_checkpoint(const std::string& path);
// Whether resolve_checkpoint would find a checkpoint there (no exception).
bool looks_like_checkpoint(const std::string& path);
// The checkpoint ROOT/latest points at, or "" when ROOT has no `latest` file.
std::string latest_checkpoint(const std::string& root);

class Checkpoint {
 public:
  // Reads trainer_state.json, checks format and version, and verifies the size and SHA-256 of
  // every file it lists. Throws std::runtime_error naming the file and what is wrong.
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& state() const { return state_; }
  long step() const { return step_; }
  bool has_file(const std::string& name) const;
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // Reads a tensor file listed in trainer_state.json (verified by open()).
  SafeTensorsFile read_tensors(const std::string& name) const;
  // A field of trainer_state.json; throws naming the file and the field when it is absent.
  const nlohmann::json& field(const std::string& name) const;

 private:
  std::string dir_;
  nlohmann::json state_;
  long step_ = 0;
};

// The tensor `name` of a safetensors file read from `path`, checked for presence, dtype and shape.
// Throws std::runtime_error "<path>: tensor '<name>': ..." otherwise.
const SafeTensor& require_tensor(const SafeTensorsFile& file, const std::string& path,
                                 const std::string& name, const std::string& dtype,
                                 const std::vector<int64_t>& shape);

// ---- optimizer state ----------------------------------------------------------------------------
// AdamW's m, v (and master weights when present) as "<group>.m", "<group>.v", "<group>.master",
// bit for bit in the optimizer's state dtype (F32; F64 for the f64 CPU backend), with the step
// count, world size and rank in the metadata. A data-parallel run with ZeRO-1 would write one such
// file per rank (docs/checkpoints.md).
SafeTensorsFile optimizer_state_to_safetensors(AdamW& optimizer);
// Restores what optimizer_state_to_safetensors wrote into an optimizer over the same groups (step
// count included). Validates every tensor before changing anything; throws naming `path`, the
// tensor and what is wrong.
void optimizer_state_from_safetensors(AdamW& optimizer, const SafeTensorsFile& file,
                                      const std::string& path);

// ---- RNG state
// ------------------------------------------------------------------------------------ The four
// state words of an Rng as hex strings (exact in any JSON reader).
nlohmann::json rng_state_to_json(const Rng& rng);
void rng_state_from_json(Rng& rng, const nlohmann::json& j, const std::string& source);

}  // namespace gpt
