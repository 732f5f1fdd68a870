// The settings check shared by every task, and the choice of task (eval/tasks.h).
#include "eval/tasks.h"

#include <stdexcept>

namespace gpt {

void check_eval_settings(const EvalSettings& s) {
  if (s.model.empty()) throw std::invalid_argument("--model is required");
  if (s.task != "lm" && s.task != "classify" && s.task != "generate" && s.task != "choice")
    throw std::invalid_argument("--task '" + s.task +
                                "': expected one of lm, classify, generate, choice");
  if (s.data.empty()) throw std::invalid_argument("--data is required");
  if (s.batch_size <= 0) throw std::invalid_argument("--batch-size must be positive");
  if (s.seq_len < 0) throw std::invalid_argument("--seq-len must be >= 0");
  if (s.max_examples < 0) throw std::invalid_argument("--max-examples must be >= 0");
  if ((s.forgetting || !s.base.empty()) && s.task != "lm")
    throw std::invalid_argument("--forgetting and --base are for --task lm");
  if (!s.format.empty() && s.task != "generate")
    throw std::invalid_argument("--format is for --task generate");
  if (!s.label_words.empty() && s.task != "classify")
    throw std::invalid_argument("--label-words is for --task classify");
}

EvalReport run_eval_task(const EvalSettings& s, EvalContext& context) {
  if (s.task == "lm") return run_lm_task(s, context);
  if (s.task == "classify") return run_classify_task(s, context);
  if (s.task == "generate") return run_generate_task(s, context);
  if (s.task == "choice") return run_choice_task(s, context);
  throw std::invalid_argument("--task '" + s.task +
                              "': expected one of lm, classify, generate, choice");
}

}  // namespace gpt
