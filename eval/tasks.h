// The evaluation tasks (gpt-eval's --task; docs/evaluation.md defines every number):
//
//   lm        eval/lm.cpp        validation loss over token shards, perplexity, bits per byte;
//                                with a base model, the forgetting report (both losses)
//   classify  eval/classify.cpp  prepared classification shards: a class head, or label words
//                                compared at the position where the label words part
//   generate  eval/generate.cpp  raw prompt/completion examples: KV-cache generation, BLEU, ROUGE,
//                                distinct-n, GSM8K answers, and the teacher-forced loss of the
//                                reference completions
//   choice    eval/choice.cpp    multiple choice (HellaSwag JSONL): the ending with the lowest
//                                mean loss per token wins
//
// A task takes its settings and an EvalContext (the backend, how to find a tokenizer, where
// stderr output goes), loads the model(s) named in the settings, checks every input before the
// work starts, and returns an EvalReport (eval/report.h).
#pragma once

#include <string>

#include "engine/backend.h"
#include "eval/console.h"
#include "eval/inputs.h"
#include "eval/report.h"

namespace gpt {

// The settings of one task (gpt-eval's flags of the same name).
struct EvalSettings {
  std::string model;      // checkpoint, Hugging Face directory or llm.c .bin
  std::string adapter;    // an extra LoRA adapter file
  std::string tokenizer;  // bytes | gpt2 | a directory; empty: found beside the data or the model
  std::string task;       // lm | classify | generate | choice
  std::string data;
  std::string format;  // generate: gsm8k | dialogsum | multi30k | jsonl | seed-tasks
  int batch_size = 8;
  int seq_len = 0;  // 0: from the data (classify) or the model's context (lm)
  long max_examples = 0;
  std::string label_words;  // classify: "negative,positive" when meta.json has none
  int max_new_tokens = 128;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  long seed = 1337;
  bool truncate = false;
  bool forgetting = false;
  std::string base;
  int show_examples = 3;
};

// What a task runs with besides its settings.
struct EvalContext {
  Backend& backend;
  TokenizerLoader load_tokenizer;
  EvalConsole& console;
};

// Throws std::invalid_argument, naming the flag, for settings no task accepts (no model, an
// unknown task, a non-positive batch size, a flag given to a task that does not take it).
void check_eval_settings(const EvalSettings& s);

// s.task's task.
EvalReport run_eval_task(const EvalSettings& s, EvalContext& context);
EvalReport run_lm_task(const EvalSettings& s, EvalContext& context);
EvalReport run_classify_task(const EvalSettings& s, EvalContext& context);
EvalReport run_generate_task(const EvalSettings& s, EvalContext& context);
EvalReport run_choice_task(const EvalSettings& s, EvalContext& context);

}  // namespace gpt
