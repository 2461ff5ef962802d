// The token streams a run trains and evaluates on, built from the recipe's data section:
// shards written by `lmtrain data prepare`, or the in-memory synthetic Markov corpus.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"

namespace lmt {

struct TrainData {
  std::vector<int32_t> train_tokens;
  std::vector<int32_t> val_tokens;  // empty: no evaluation of data.val
  // eval.sets: more validation sets by name (shards), in name order.
  std::vector<std::pair<std::string, std::vector<int32_t>>> extra_val;
  int64_t vocab_size = 0;
  std::optional<double> loss_floor;  // known entropy per token (synthetic corpora)
  std::string description;
};

// model_vocab_size: model.vocab_size (0: from the data); required for llmc/nanogpt files,
// whose ids are checked against it.
TrainData load_train_data(const DataConfig& data, const EvalConfig& eval, int64_t model_vocab_size);

// Vocabulary size of the recipe's data without reading all tokens (for `lmtrain plan`);
// nullopt when the shard is not there yet.
std::optional<int64_t> peek_vocab_size(const DataConfig& data);

}  // namespace lmt
