// A dataset: the token files one recipe key names (data.train, data.val, an eval.sets entry),
// opened and checked together.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_file.h"

namespace lmt::data {

// The files a recipe value names: a path, or a glob (`*`, `?`, `[...]`) expanded and sorted by
// name. A glob that matches nothing is an lmt::Error naming `key` and the pattern; a plain path
// is returned as is (opening it reports a missing file).
std::vector<std::string> expand_glob(const std::string& pattern, const std::string& key);

struct TokenDataset {
  std::string key;                // recipe key, for messages ("data.train")
  std::vector<TokenFile> files;   // in name order
  int64_t vocab_size = 0;         // the largest of the files' vocabulary sizes
  uint64_t num_tokens() const;
};

// Opens every file `pattern` names (see expand_glob) with TokenFile::open, checking each one
// fully, and checks that every file holds at least min_tokens tokens (one training sequence:
// the longest T + 1). All lmtrain shards of one dataset must share one vocabulary size. Every
// problem names `key` and the file.
TokenDataset open_dataset(const std::string& pattern, const std::string& key, ShardFormat format,
                          int64_t vocab_size, uint64_t min_tokens);

// A dataset of one in-memory token array (the synthetic corpus).
TokenDataset dataset_from_tokens(const std::string& key, std::vector<int32_t> tokens, int64_t vocab_size);

// Fails with a message naming the file when a file holds fewer than min_tokens tokens.
void check_min_tokens(const TokenDataset& dataset, uint64_t min_tokens);

}  // namespace lmt::data
