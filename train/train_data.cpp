#include "train/train_data.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "data/foreign_shards.h"
#include "data/shard.h"
#include "data/synthetic.h"

namespace lmt {
namespace {

data::MarkovSpec markov_spec(const SyntheticConfig& s) {
  data::MarkovSpec spec;
  spec.vocab_size = static_cast<int>(s.vocab_size);
  spec.order = static_cast<int>(s.order);
  spec.branching = static_cast<int>(s.branching);
  spec.seed = static_cast<uint64_t>(s.seed);
  return spec;
}

void load_extra_sets(const DataConfig& data, const EvalConfig& eval, TrainData& out) {
  for (const auto& [name, path] : eval.sets) {
    data::Shard shard = data::read_token_file(path, data.format, out.vocab_size);
    if (shard.vocab_size > out.vocab_size)
      throw Error(fmt::format("eval.sets.{}: '{}' has vocab size {}, larger than the training data's {}",
                              name, path, shard.vocab_size, out.vocab_size));
    out.extra_val.emplace_back(name, std::move(shard.tokens));
  }
}

// Train and val tokens of data.train / data.val or the synthetic corpus (no eval.sets).
TrainData load_token_streams(const DataConfig& data, int64_t model_vocab_size) {
  TrainData out;
  if (data.source == "synthetic") {
    data::MarkovSource source(markov_spec(data.synthetic));
    const uint64_t seed = static_cast<uint64_t>(data.synthetic.seed);
    out.train_tokens = source.generate(static_cast<size_t>(data.synthetic.train_tokens), seed * 2 + 1);
    if (data.synthetic.val_tokens > 0) {
      out.val_tokens = source.generate(static_cast<size_t>(data.synthetic.val_tokens), seed * 2 + 2);
      out.loss_floor = source.oracle_loss(out.val_tokens);
    } else {
      out.loss_floor = source.entropy_rate();
    }
    out.vocab_size = data.synthetic.vocab_size;
    out.description = fmt::format(
        "synthetic Markov corpus: vocab {}, order {}, branching {}; {} train / {} val tokens; "
        "entropy floor {:.4f} nats/token",
        data.synthetic.vocab_size, data.synthetic.order, data.synthetic.branching,
        out.train_tokens.size(), out.val_tokens.size(), *out.loss_floor);
    return out;
  }
  data::Shard train = data::read_token_file(data.train, data.format, model_vocab_size);
  out.vocab_size = train.vocab_size;
  out.train_tokens = std::move(train.tokens);
  if (!data.val.empty()) {
    data::Shard val = data::read_token_file(data.val, data.format, model_vocab_size);
    if (val.vocab_size != out.vocab_size)
      throw Error(fmt::format("data.val '{}' has vocab size {} but data.train '{}' has {}; prepare "
                              "both with the same tokenizer",
                              data.val, val.vocab_size, data.train, out.vocab_size));
    out.val_tokens = std::move(val.tokens);
  }
  out.description = fmt::format("shards: {} ({} tokens), {} ({} tokens); vocab {}", data.train,
                                out.train_tokens.size(), data.val.empty() ? "no val" : data.val,
                                out.val_tokens.size(), out.vocab_size);
  return out;
}

}  // namespace

TrainData load_train_data(const DataConfig& data, const EvalConfig& eval, int64_t model_vocab_size) {
  TrainData out = load_token_streams(data, model_vocab_size);
  load_extra_sets(data, eval, out);
  return out;
}



std::optional<int64_t> peek_vocab_size(const DataConfig& data) {
  if (data.source == "synthetic") return data.synthetic.vocab_size;
  if (data.format != "lmtrain" || data.train.empty() || !std::filesystem::exists(data.train))
    return std::nullopt;
  return data::read_shard_header(data.train).vocab_size;
}

}  // namespace lmt
