// Typed, closed configuration shared by the apps: one table of fields, each with a name, a type, a
// default (the bound variable's value) and a help text. The same names work as JSON config keys
// and as command-line flags (`n_layer` in JSON is `--n-layer` on the command line: underscores
// become dashes). Precedence: defaults < the JSON file given by --config < flags.
// Unknown JSON keys, wrong JSON types and unparsable flag values are rejected with the key's name.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/settings.h"

namespace gpt {

class Options {
 public:
  void add(const std::string& name, int* value, const std::string& help);
  void add(const std::string& name, long* value, const std::string& help);
  void add(const std::string& name, float* value, const std::string& help);
  void add(const std::string& name, std::string* value, const std::string& help);
  void add(const std::string& name, bool* value, const std::string& help);

  // Registers every field as a --flag on app, plus --config FILE.json.
  void register_flags(CLI::App& app);
  // After app.parse(): loads --config (if given), then applies the flags given on the command line.
  // Throws std::invalid_argument naming the key or flag on any error.
  void resolve();

  // Applies a JSON object (rejects unknown keys and wrong types; `source` names it in errors).
  void apply_json(const nlohmann::json& j, const std::string& source);
  void load_json_file(const std::string& path);
  nlohmann::json to_json() const;
  std::string config_path() const { return config_path_; }
  bool given_on_command_line(const std::string& name) const;

 private:
  enum class Kind { Int, Long, Float, String, Bool };
  struct Field {
    std::string name;
    Kind kind;
    void* ptr;
    std::string help;
    std::string flag_value;
    CLI::Option* option = nullptr;
  };
  void add_field(const std::string& name, Kind kind, void* ptr, const std::string& help);
  void set_from_string(Field& f, const std::string& text, const std::string& source);
  void set_from_json(Field& f, const nlohmann::json& v, const std::string& source);
  Field* find(const std::string& name);
  std::vector<Field> fields_;
  std::string config_path_;
  CLI::Option* config_option_ = nullptr;
};

// Adds the TrainSettings fields (train/settings.h) to an app's option table.
void register_train_options(Options& o, TrainSettings& s);

// An app's main(): runs run(argc, argv) and turns an exception into the project's one-line error,
// "APP: error: WHAT" on stderr (line breaks in WHAT become spaces), and exit status 1.
// With a handler set (data parallel: the run set-up sets one that names the rank and ends every
// rank of the job), the error goes to it instead; it does not return.
int run_app(const char* app, int (*run)(int, char**), int argc, char** argv);
using AppErrorHandler = void (*)(const std::string& app, const std::string& what);
void set_app_error_handler(AppErrorHandler handler);

// Parses the command line into options and resolves them (--config, then flags). Returns -1 to
// go on, or the exit status when the app is done (--help, or a parse error CLI11 printed).
int parse_command_line(CLI::App& app, Options& options, int argc, char** argv);

}  // namespace gpt
