#include "models/model.h"

#include <stdexcept>

#include "models/gpt.h"
#include "models/gpt_io.h"

namespace gpt {

namespace {

// GPT-2 and the Llama family share GptModel (models/gpt.h): the config's "family" key says which.
std::unique_ptr<LanguageModel> make_gpt2(const nlohmann::json& config, const std::string& source,
                                         Backend& backend, int max_batch, int max_seq) {
  return std::make_unique<GptModel>(gpt_config_from_json(config, source), backend, max_batch,
                                    max_seq);
}

// The model families, by name: a new family adds its line here.
struct Family {
  const char* name;
  std::unique_ptr<LanguageModel> (*make)(const nlohmann::json&, const std::string&, Backend&, int,
                                         int);
};
constexpr Family kFamilies[] = {
    {"gpt2", make_gpt2},
    {"llama", make_gpt2},  // the same decoder code; the config's family selects the ops
};

}  // namespace

std::unique_ptr<LanguageModel> make_model(const std::string& family, const nlohmann::json& config,
                                          const std::string& source, Backend& backend,
                                          int max_batch, int max_seq) {
  std::string known;
  for (const Family& f : kFamilies) {
    if (family != f.name) continue;
    std::unique_ptr<LanguageModel> model = f.make(config, source, backend, max_batch, max_seq);
    if (model->family() != family)
      throw std::invalid_argument(source + ": the config is of family '" + model->family() +
                                  "', not '" + family + "'");
    return model;
    known += (known.empty() ? "" : ", ") + std::string(f.name);
  }
  throw std::invalid_argument(source + ": unknown model family '" + family + "' (known: " + known +
                              ")");
}

}  // namespace gpt
