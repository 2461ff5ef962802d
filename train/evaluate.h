// Validation loss: the trainer's periodic evaluation and `lmtrain eval` share this code, so the
// two report the same numbers for the same checkpoint.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

struct EvalOptions {
  std::string checkpoint;             // a step directory or a checkpoint root holding `latest`
  std::vector<std::string> data;      // shard paths or globs; empty: the recipe's validation set
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
