// A checkpoint as --resume, --init and gpt-export meet it: a run folder with a `latest` pointer, a
// checkpoint folder with trainer_state.json (format, version, step, model_config, the size and
// SHA-256 of every file) and the safetensors files it lists, or a Hugging Face folder
// (config.json + model.safetensors). The input is a multi-file archive (fuzz_common.h) written
// into a run folder. The first byte's bit 0 makes the harness write the true size and SHA-256 of
// the files into trainer_state.json first, so the fuzzer also reaches the tensors behind the
// checksums.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/rng.h"
#include "models/gpt_interop.h"
#include "tests/fuzz/fuzz_common.h"

namespace fs = std::filesystem;

namespace {

// Rewrites the "files" table of every trainer_state.json under root to what is on disk.
void fix_checksums(const std::string& root) {
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(root, ec)) {
    if (entry.path().filename() != "trainer_state.json") continue;
    nlohmann::json state;
    {
      std::ifstream in(entry.path());
      state = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    }
    if (!state.is_object() || !state.contains("files") || !state["files"].is_object()) continue;
    for (auto it = state["files"].begin(); it != state["files"].end(); ++it) {
      const fs::path p = entry.path().parent_path() / it.key();
      if (it.key().find("..") != std::string::npos || !fs::is_regular_file(p, ec)) continue;
      it.value() = {{"bytes", static_cast<uint64_t>(fs::file_size(p, ec))},
                    {"sha256", gpt::sha256_file(p.string())}};
    }
    std::ofstream(entry.path()) << state.dump();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  gpt::fuzz::clear_scratch();
  const std::string root = gpt::fuzz::scratch_dir() + "/run";
  fs::create_directories(root);
  const auto files =
      gpt::fuzz::unpack(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  bool hf = false;
  for (const auto& [name, bytes] : files) {
    gpt::fuzz::write_scratch("run/" + name, bytes);
    hf = hf || name == "config.json";
  }
  if (data[0] & 1) fix_checksums(root);
  // What gpt-pretrain --init / gpt-export --checkpoint do with a path.
  GPT_FUZZ_EXPECT_CLEAN("fuzz_checkpoint", root, {
    if (hf) {
      gpt::read_hf_gpt2(root);
    } else {
      gpt::read_checkpoint_weights(root);
    }
  });
  // What --resume does: open, verify, read every tensor file it lists and the RNG state.
  GPT_FUZZ_EXPECT_CLEAN("fuzz_checkpoint", root, {
    const gpt::Checkpoint ck = gpt::Checkpoint::open(gpt::resolve_checkpoint(root));
    const nlohmann::json& listed = ck.field("files");  // an object: open() checked it
    for (auto it = listed.begin(); it != listed.end(); ++it) {
      const std::string& name = it.key();
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0)
        ck.read_tensors(name);
    }
    const nlohmann::json& st = ck.state();
    if (st.contains("finetune_state") && st.at("finetune_state").contains("replay_rng")) {
      gpt::Rng rng(1);
      gpt::rng_state_from_json(rng, st.at("finetune_state").at("replay_rng"),
                               ck.path("trainer_state.json"));
    }
  });
  return 0;
}
