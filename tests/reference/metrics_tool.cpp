// metrics_tool: runs eval/metrics on the inputs of a JSON request and prints our scores as JSON,
// for tests/reference/check_metrics.py to compare with sacrebleu, rouge-score, NLTK and
// scikit-learn. Usage:
//
//   metrics_tool REQUEST.json > RESULT.json
//
// The request holds any of these keys; the result has the same keys with our answers. The last five
// take a list of cases and answer with a list of results, one per case:
//   "tokenize_13a":   {"lines": [str]}                         -> [str]
//   "porter":         {"words": [str]}                         -> [str]
//   "rouge_tokenize": {"texts": [str]}                         -> [[str]]
//   "bleu":           {"hypotheses": [str], "references": [[str]] (one list per reference stream)}
//                     -> {"score", "precisions", "matches", "totals", "bp", "sys_len", "ref_len"}
//   "rouge":          {"predictions": [str], "references": [[str]] (the references of each)}
//                     -> {"per_example": [{"rouge1": [p, r, f], "rouge2": .., "rougeL": ..}],
//                         "mean": {...}}
//   "classification": {"labels": [int], "predictions": [int], "num_classes": int}
//                     -> {"accuracy", "confusion", "precision", "recall", "f1", "support",
//                         "macro": [p, r, f], "micro": [...], "weighted": [...]}
//   "distinct":       {"generations": [str]} -> {"distinct1", "distinct2", counts}
//   "gsm8k":          {"completions": [str], "references": [str]}
//                     -> {"answers": [str or null], "well_formed", "correct", "accuracy", ...}
// Doubles are printed with enough digits to round-trip. An error is one line on stderr, exit 1.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "eval/metrics.h"

namespace {

using nlohmann::json;

json rouge_json(const gpt::RougeScores& s) {
  const auto triple = [](const gpt::RougeScore& r) {
    return json::array({r.precision, r.recall, r.fmeasure});
  };
  return {{"rouge1", triple(s.rouge1)}, {"rouge2", triple(s.rouge2)}, {"rougeL", triple(s.rougeL)}};
}

json prf_json(const gpt::PrecisionRecallF1& s) {
  return json::array({s.precision, s.recall, s.f1});
}

json run(const json& request) {
  json out = json::object();
  if (request.contains("tokenize_13a")) {
    json lines = json::array();
    for (const auto& line : request["tokenize_13a"]["lines"])
      lines.push_back(gpt::tokenize_13a(line.get<std::string>()));
    out["tokenize_13a"] = lines;
  }
  if (request.contains("porter")) {
    json stems = json::array();
    for (const auto& word : request["porter"]["words"])
      stems.push_back(gpt::porter_stem(word.get<std::string>()));
    out["porter"] = stems;
  }
  if (request.contains("rouge_tokenize")) {
    json texts = json::array();
    for (const auto& text : request["rouge_tokenize"]["texts"])
      texts.push_back(gpt::rouge_tokenize(text.get<std::string>()));
    out["rouge_tokenize"] = texts;
  }
  if (request.contains("bleu")) {
    out["bleu"] = json::array();
    for (const json& r : request["bleu"]) {
      const gpt::BleuScore s =
          gpt::corpus_bleu(r["hypotheses"].get<std::vector<std::string>>(),
                           r["references"].get<std::vector<std::vector<std::string>>>());
      out["bleu"].push_back({{"score", s.score},
                             {"precisions", s.precisions},
                             {"matches", s.matches},
                             {"totals", s.totals},
                             {"bp", s.brevity_penalty},
                             {"sys_len", s.sys_len},
                             {"ref_len", s.ref_len}});
    }
  }
  if (request.contains("rouge")) {
    out["rouge"] = json::array();
    for (const json& r : request["rouge"]) {
      const gpt::RougeCorpus corpus =
          gpt::rouge_corpus(r["predictions"].get<std::vector<std::string>>(),
                            r["references"].get<std::vector<std::vector<std::string>>>());
      json per_example = json::array();
      for (const auto& s : corpus.per_example) per_example.push_back(rouge_json(s));
      out["rouge"].push_back({{"per_example", per_example}, {"mean", rouge_json(corpus.mean)}});
    }
  }
  if (request.contains("classification")) {
    out["classification"] = json::array();
    for (const json& r : request["classification"]) {
      const gpt::ClassificationReport c = gpt::classification_report(
          r["labels"].get<std::vector<int>>(), r["predictions"].get<std::vector<int>>(),
          r["num_classes"].get<int>());
      json precision = json::array(), recall = json::array(), f1 = json::array();
      for (const auto& k : c.per_class) {
        precision.push_back(k.precision);
        recall.push_back(k.recall);
        f1.push_back(k.f1);
      }
      out["classification"].push_back({{"accuracy", c.accuracy},
                                       {"confusion", c.confusion},
                                       {"precision", precision},
                                       {"recall", recall},
                                       {"f1", f1},
                                       {"support", c.support},
                                       {"macro", prf_json(c.macro)},
                                       {"micro", prf_json(c.micro)},
                                       {"weighted", prf_json(c.weighted)}});
    }
  }
  if (request.contains("distinct")) {
    out["distinct"] = json::array();
    for (const json& r : request["distinct"]) {
      const gpt::Diversity d = gpt::distinct_n(r["generations"].get<std::vector<std::string>>());
      out["distinct"].push_back({{"distinct1", d.distinct1},
                                 {"distinct2", d.distinct2},
                                 {"unigrams", d.unigrams},
                                 {"distinct_unigrams", d.distinct_unigrams},
                                 {"bigrams", d.bigrams},
                                 {"distinct_bigrams", d.distinct_bigrams}});
    }
  }
  if (request.contains("gsm8k")) {
    out["gsm8k"] = json::array();
    for (const json& r : request["gsm8k"]) {
      const auto completions = r["completions"].get<std::vector<std::string>>();
      json answers = json::array();
      for (const auto& text : completions) {
        const auto answer = gpt::extract_gsm8k_answer(text);
        answers.push_back(answer ? json(*answer) : json(nullptr));
      }
      const gpt::Gsm8kScore s =
          gpt::gsm8k_score(completions, r["references"].get<std::vector<std::string>>());
      out["gsm8k"].push_back({{"answers", answers},
                              {"total", s.total},
                              {"well_formed", s.well_formed},
                              {"correct", s.correct},
                              {"format_rate", s.format_rate},
                              {"accuracy", s.accuracy}});
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::cerr << "usage: metrics_tool REQUEST.json  (see the header of tests/reference/"
                 "metrics_tool.cpp for the keys)\n";
    return argc == 2 ? 0 : 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) throw std::runtime_error(std::string(argv[1]) + ": cannot open");
    std::stringstream buffer;
    buffer << in.rdbuf();
    const json request = json::parse(buffer.str());
    std::cout << run(request).dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "metrics_tool: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
