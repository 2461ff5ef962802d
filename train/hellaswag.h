// Multiple-choice evaluation, scored as llm.c and lm-eval-harness score HellaSwag: each ending
// is appended to the context (encoded as " " + ending, so it starts a new word), and the model's
// loss on the ending's tokens ranks the choices. acc picks the ending with the smallest total
// loss, acc_norm the one with the smallest mean loss per token.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/gpt.h"
#include "train/evaluate.h"

namespace lmt {

struct ChoiceExample {
  std::string ctx;
  std::vector<std::string> endings;  // at least 2
  int label = 0;                     // the right ending
  int64_t line = 0;                  // in the file, for messages
};

// HellaSwag's jsonl: one object per line with "ctx" (string), "endings" (strings) and "label"
// (an index into endings, as a number or a string of digits); other keys are ignored and blank
// lines skipped. Every problem is an lmt::Error naming the file, the line and the key.
std::vector<ChoiceExample> read_choice_examples(const std::string& path);

struct ChoiceScore {
  std::vector<double> sum_losses, mean_losses;  // per ending
  int pred = 0, pred_norm = 0;                  // argmin of each (the first on a tie)
  bool cropped = false;                         // the context was cut from the left to fit
};

// Scores one example in one forward of a batch of its endings. The context keeps its last
// tokens when context + ending exceed the model's max_seq_len.
ChoiceScore score_choices(GPT& model, const data::Tokenizer& tokenizer, const ChoiceExample& example);

struct ChoiceReport {
  std::string checkpoint_dir, data;
  int64_t step = 0;
  int64_t examples = 0, cropped = 0;
  double acc = 0, acc_norm = 0;
  std::vector<ChoiceScore> scores;
};

// eval --task hellaswag: the checkpoint's model and tokenizer over options.data (one file) or
// its first options.limit examples; `progress(done, total, report so far)` after every 100.
ChoiceReport evaluate_choices(const EvalOptions& options,
                              const std::function<void(int64_t, int64_t, const ChoiceReport&)>& progress = {});

}  // namespace lmt
