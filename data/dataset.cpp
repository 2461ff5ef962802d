#include "data/dataset.h"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>

#include "core/error.h"

namespace lmt::data {

std::vector<std::string> expand_glob(const std::string& pattern, const std::string& key) {
  if (pattern.empty()) throw Error(fmt::format("{}: no file given", key));
  if (pattern.find_first_of("*?[") == std::string::npos) return {pattern};
  glob_t matches{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths;
  for (size_t i = 0; rc == 0 && i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  ::globfree(&matches);
  if (rc == GLOB_NOMATCH || (rc == 0 && paths.empty()))
    throw Error(fmt::format("{}: '{}' matches no files; check the pattern and the working directory, "
                            "or create shards with `lmtrain data prepare`", key, pattern));
  if (rc != 0)
    throw Error(fmt::format("{}: cannot expand '{}' (out of memory or an unreadable directory)", key, pattern));
  std::sort(paths.begin(), paths.end());
  return paths;
}

uint64_t TokenDataset::num_tokens() const {
  uint64_t total = 0;
  for (const auto& f : files) total += f.size();
  return total;
}

void check_min_tokens(const TokenDataset& dataset, uint64_t min_tokens) {
  for (const auto& f : dataset.files) {
    if (f.size() < min_tokens)
      throw Error(fmt::format("{}: '{}' has {} tokens but one training sequence needs {} (T + 1); "
                              "use larger shards or a shorter sequence length",
                              dataset.key, f.path(), f.size(), min_tokens));
  }
}

TokenDataset open_dataset(const std::string& pattern, const std::string& key, ShardFormat format,
                          int64_t vocab_size, uint64_t min_tokens) {
  TokenDataset dataset;
  dataset.key = key;
  for (const auto& path : expand_glob(pattern, key)) {
    try {
      dataset.files.push_back(TokenFile::open(path, format, vocab_size));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", key, e.what()));
    }
    const TokenFile& file = dataset.files.back();
    const TokenFile& first = dataset.files.front();
    if (format == ShardFormat::kLmtrain && file.vocab_size() != first.vocab_size())
      throw Error(fmt::format("{}: '{}' has vocab size {} but '{}' has {}; every shard of one dataset "
                              "must come from the same tokenizer",
                              key, file.path(), file.vocab_size(), first.path(), first.vocab_size()));
    dataset.vocab_size = std::max(dataset.vocab_size, file.vocab_size());
  }
  check_min_tokens(dataset, min_tokens);
  return dataset;
}

TokenDataset dataset_from_tokens(const std::string& key, std::vector<int32_t> tokens, int64_t vocab_size) {
  TokenDataset dataset;
  dataset.key = key;
  dataset.vocab_size = vocab_size;
  dataset.files.push_back(TokenFile::from_tokens(key, std::move(tokens), vocab_size));
  return dataset;
}

}  // namespace lmt::data
