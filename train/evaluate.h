// Validation loss: the trainer's periodic evaluation and `lmtrain eval` share this code, so the
// two report the same numbers for the same checkpoint.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/named_enum.h"
#include "data/dataset.h"
#include "model/gpt.h"

namespace lmt {

// Mean loss over num_batches fixed, evenly spaced batches of B windows of T tokens.
double evaluate(GPT& model, const data::TokenDataset& val, int64_t num_batches, int B, int T);

class ProcessGroup;
// The same mean loss with the batches dealt out over the ranks of `group` (batch i to rank
// i mod W) and the sum reduced: every rank returns the value one rank would compute.
double evaluate_distributed(GPT& model, const data::TokenDataset& val, int64_t num_batches, int B, int T,
                            ProcessGroup& group);

// What eval measures: the loss on token shards, or multiple-choice accuracy (train/hellaswag.h).
enum class EvalTask { kLoss, kHellaswag };
inline constexpr EnumName<EvalTask> kEvalTaskNames[] = {{EvalTask::kLoss, "loss"}, {EvalTask::kHellaswag, "hellaswag"}};
constexpr const auto& enum_names(EvalTask) { return kEvalTaskNames; }

struct EvalOptions {
  std::string checkpoint;             // a step directory, a checkpoint root holding `latest`, or hf:DIR
  EvalTask task = EvalTask::kLoss;
  std::vector<std::string> data;      // loss: shard paths or globs, empty = the recipe's validation set;
                                      // hellaswag: one jsonl file
  int64_t limit = 0;                  // hellaswag: only the first N examples; 0 = all
  std::string tokenizer;              // hellaswag: tokenizer.json; empty = the run's
  int64_t batches = 0;                // 0: the recipe's eval.batches
  int64_t seq_len = 0;                // 0: the recipe's run.seq_len
  DeviceKind device = DeviceKind::kCpu;
};

struct EvalSetResult {
  std::string name;  // the shard path, or "val" for the recipe's own set
  double loss = 0;
  double perplexity = 0;
  int64_t batches = 0;
  int64_t tokens = 0;
};

struct EvalReport {
  std::string checkpoint_dir;
  int64_t step = 0;
  int64_t batch_size = 0, seq_len = 0;
  std::vector<EvalSetResult> sets;
};

// Loads and verifies the checkpoint, then evaluates each set. Throws lmt::Error on bad input.
EvalReport evaluate_checkpoint(const EvalOptions& options);

}  // namespace lmt
