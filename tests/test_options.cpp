// Config parsing: closed keys, typed values, precedence defaults < file < flags.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "apps/options.h"

namespace gpt {
namespace {

struct Settings {
  int n_layer = 12;
  float lr = 1e-3f;
  std::string device = "auto";
  bool shuffle = true;
  long steps = 100;
};

void bind(Options& o, Settings& s) {
  o.add("n_layer", &s.n_layer, "layers");
  o.add("lr", &s.lr, "learning rate");
  o.add("device", &s.device, "device");
  o.add("shuffle", &s.shuffle, "shuffle");
  o.add("steps", &s.steps, "steps");
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Options, JsonAppliesAndRejectsUnknownKeysAndWrongTypes) {
  Settings s;
  Options o;
  bind(o, s);
  o.apply_json(
      nlohmann::json::parse(R"({"n_layer": 4, "lr": 0.002, "device": "cpu", "shuffle": false})"),
      "cfg.json");
  EXPECT_EQ(s.n_layer, 4);
  EXPECT_FLOAT_EQ(s.lr, 0.002f);
  EXPECT_EQ(s.device, "cpu");
  EXPECT_FALSE(s.shuffle);

  std::string e =
      error_of([&] { o.apply_json(nlohmann::json::parse(R"({"n_layers": 4})"), "cfg.json"); });
  EXPECT_NE(e.find("unknown key 'n_layers'"), std::string::npos) << e;
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  e = error_of([&] { o.apply_json(nlohmann::json::parse(R"({"n_layer": "4"})"), "cfg.json"); });
  EXPECT_NE(e.find("key 'n_layer': expected an integer"), std::string::npos) << e;
  e = error_of([&] { o.apply_json(nlohmann::json::parse(R"({"n_layer": 4.5})"), "cfg.json"); });
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  e = error_of([&] { o.apply_json(nlohmann::json::parse(R"({"lr": "fast"})"), "cfg.json"); });
  EXPECT_NE(e.find("key 'lr': expected a number"), std::string::npos) << e;
  e = error_of([&] { o.apply_json(nlohmann::json::parse(R"({"shuffle": 1})"), "cfg.json"); });
  EXPECT_NE(e.find("expected a boolean"), std::string::npos) << e;
  e = error_of([&] { o.apply_json(nlohmann::json::parse(R"([1, 2])"), "cfg.json"); });
  EXPECT_NE(e.find("expected a JSON object"), std::string::npos) << e;
}

TEST(Options, FlagsOverrideTheFileWhichOverridesDefaults) {
  const std::string path = ::testing::TempDir() + "/options_test.json";
  std::ofstream(path) << R"({"n_layer": 4, "lr": 0.002, "steps": 50})";
  Settings s;
  Options o;
  bind(o, s);
  CLI::App app;
  o.register_flags(app);
  const std::string config_arg = path;
  std::vector<std::string> args{"prog",  "--config",  config_arg, "--lr",
                                "0.005", "--shuffle", "false"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  o.resolve();
  EXPECT_EQ(s.n_layer, 4);        // from the file
  EXPECT_FLOAT_EQ(s.lr, 0.005f);  // the flag wins
  EXPECT_EQ(s.steps, 50);
  EXPECT_FALSE(s.shuffle);
  EXPECT_EQ(s.device, "auto");  // default
  const nlohmann::json j = o.to_json();
  EXPECT_EQ(j["lr"].get<double>(), 0.005);  // printed as the shortest exact decimal
  EXPECT_EQ(j["n_layer"], 4);
}

TEST(Options, BadFlagValuesAndMalformedFilesNameTheProblem) {
  Settings s;
  Options o;
  bind(o, s);
  CLI::App app;
  o.register_flags(app);
  std::vector<std::string> args{"prog", "--n-layer", "four"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  std::string e = error_of([&] { o.resolve(); });
  EXPECT_NE(e.find("--n-layer: expected an integer, got 'four'"), std::string::npos) << e;

  const std::string path = ::testing::TempDir() + "/malformed.json";
  std::ofstream(path) << R"({"n_layer": 4,)";
  Settings s2;
  Options o2;
  bind(o2, s2);
  e = error_of([&] { o2.load_json_file(path); });
  EXPECT_NE(e.find("malformed JSON"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed.json"), std::string::npos) << e;
  e = error_of([&] { o2.load_json_file(path + ".missing"); });
  EXPECT_NE(e.find("cannot open config file"), std::string::npos) << e;
}

}  // namespace
}  // namespace gpt
