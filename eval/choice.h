// The pieces of the choice task (eval/tasks.h): HellaSwag-style items, and the loss of an ending's
// token that decides between them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpt {

struct ChoiceItem {
  std::string file;
  int64_t line = 0;
  std::string context;
  std::vector<std::string> endings;
  int label = -1;
};

// HellaSwag's JSONL: {"ctx": "...", "endings": ["...", ...], "label": i}; "ctx_a" + "ctx_b" when
// there is no "ctx"; the label may be an integer or a string of digits. Throws InputError
// (data/text_input.h) naming the file and line of a malformed item.
std::vector<ChoiceItem> read_choice_items(const std::vector<std::string>& files);

// -log softmax(logits)[target] over the real vocabulary (the first V logits), in double.
double token_loss(const float* logits, int V, int32_t target);

// The index of the smallest loss (the first one on ties): the chosen ending.
int lowest_loss(const std::vector<double>& losses);

}  // namespace gpt
