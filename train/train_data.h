// The token datasets a run trains and evaluates on, built from the recipe's data section: token
// files (globs allowed) in one of the supported formats, or the in-memory synthetic Markov corpus.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/recipe.h"
#include "data/dataset.h"

namespace lmt {

struct TrainData {
  data::TokenDataset train;
  std::optional<data::TokenDataset> val;  // absent: no evaluation of data.val
  // eval.sets: more validation sets by name, in name order.
  std::vector<std::pair<std::string, data::TokenDataset>> extra_val;
  int64_t vocab_size = 0;
  std::optional<double> loss_floor;  // known entropy per token (synthetic corpora)
  std::string description;
};

// Opens and checks every file before returning (see data::open_dataset): each must hold at
// least seq_len + 1 tokens. model_vocab_size: model.vocab_size (0: from the data); required for
// llmc/nanogpt files, whose ids are checked against it.
TrainData load_train_data(const DataConfig& data, const EvalConfig& eval, int64_t model_vocab_size,
                          int64_t seq_len);

// Vocabulary size of the recipe's data without reading all tokens (for `lmtrain plan`);
// nullopt when the shards are not there yet.
std::optional<int64_t> peek_vocab_size(const DataConfig& data);

}  // namespace lmt
