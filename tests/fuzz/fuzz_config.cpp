// Config files: the JSON that `--config FILE` gives gpt-pretrain and gpt-finetune (apps/options.h:
// closed keys, typed values, comments allowed), and the model configs read from checkpoints
// (model_config) and Hugging Face folders (config.json). The fields are the training settings the
// apps share (register_train_options) plus the model shape and data fields of gpt-pretrain.
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/options.h"
#include "models/gpt_interop.h"
#include "models/gpt_io.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

struct Settings : gpt::TrainSettings {
  std::string train_data, val_data, resume, init;
  int seq_len = 256, n_layer = 12, n_head = 12, n_embd = 768, max_seq_len = 1024, vocab_size = 0;
  float lr = 1e-3f, min_lr = 1e-4f;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gpt::fuzz::clear_scratch();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = gpt::fuzz::write_scratch("config.json", text);
  GPT_FUZZ_EXPECT_CLEAN("fuzz_config", path, {
    Settings s;
    gpt::Options o;
    gpt::register_train_options(o, s);
    o.add("train_data", &s.train_data, "");
    o.add("val_data", &s.val_data, "");
    o.add("resume", &s.resume, "");
    o.add("init", &s.init, "");
    o.add("seq_len", &s.seq_len, "");
    o.add("n_layer", &s.n_layer, "");
    o.add("n_head", &s.n_head, "");
    o.add("n_embd", &s.n_embd, "");
    o.add("max_seq_len", &s.max_seq_len, "");
    o.add("vocab_size", &s.vocab_size, "");
    o.add("lr", &s.lr, "");
    o.add("min_lr", &s.min_lr, "");
    o.load_json_file(path);
    // What the apps write back into config.json and trainer_state.json must read back.
    const std::string again = gpt::fuzz::write_scratch("again.json", o.to_json().dump());
    o.load_json_file(again);
  });
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  GPT_FUZZ_EXPECT_CLEAN("fuzz_config", path, { gpt::gpt_config_from_json(j, path); });
  GPT_FUZZ_EXPECT_CLEAN("fuzz_config", path, { gpt::gpt_config_from_hf_json(j, path); });
  return 0;
}
