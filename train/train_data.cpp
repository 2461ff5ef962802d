#include "train/train_data.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "core/strings.h"
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

std::string describe(const data::TokenDataset& d) {
  return fmt::format("{} ({} file{}, {} tokens)", d.key, d.files.size(), d.files.size() == 1 ? "" : "s",
                     with_commas(static_cast<int64_t>(d.num_tokens())));
}

TrainData load_synthetic(const DataConfig& data, uint64_t min_tokens) {
  TrainData out;
  const SyntheticConfig& s = data.synthetic;
  data::MarkovSource source(markov_spec(s));
  const auto seed = static_cast<uint64_t>(s.seed);
  out.vocab_size = s.vocab_size;
  out.train = data::dataset_from_tokens("data.synthetic.train_tokens",
                                        source.generate(static_cast<size_t>(s.train_tokens), seed * 2 + 1),
                                        s.vocab_size);
  data::check_min_tokens(out.train, min_tokens);
  if (s.val_tokens > 0) {
    std::vector<int32_t> val = source.generate(static_cast<size_t>(s.val_tokens), seed * 2 + 2);
    out.loss_floor = source.oracle_loss(val);
    out.val = data::dataset_from_tokens("data.synthetic.val_tokens", std::move(val), s.vocab_size);
    data::check_min_tokens(*out.val, min_tokens);
  } else {
    out.loss_floor = source.entropy_rate();
  }
  out.description = fmt::format(
      "synthetic Markov corpus: vocab {}, order {}, branching {}; {} train / {} val tokens; "
      "entropy floor {:.4f} nats/token",
      s.vocab_size, s.order, s.branching, s.train_tokens, s.val_tokens, *out.loss_floor);
  return out;
}

}  // namespace

TrainData load_train_data(const DataConfig& data, const EvalConfig& eval, int64_t model_vocab_size,
                          int64_t seq_len) {
  const auto min_tokens = static_cast<uint64_t>(seq_len) + 1;
  TrainData out;
  if (data.source == DataSource::kSynthetic) {
    out = load_synthetic(data, min_tokens);
  } else {
    out.train = data::open_dataset(data.train, "data.train", data.format, model_vocab_size, min_tokens);
    out.vocab_size = out.train.vocab_size;
    if (!data.val.empty()) {
      out.val = data::open_dataset(data.val, "data.val", data.format, model_vocab_size, min_tokens);
      if (data.format == ShardFormat::kLmtrain && out.val->vocab_size != out.vocab_size)
        throw Error(fmt::format("data.val '{}' has vocab size {} but data.train '{}' has {}; prepare "
                                "both with the same tokenizer",
                                data.val, out.val->vocab_size, data.train, out.vocab_size));
    }
    out.description = describe(out.train) + ", " + (out.val ? describe(*out.val) : "no data.val") +
                       fmt::format("; vocab {}", out.vocab_size);
  }
  for (const auto& [name, pattern] : eval.sets) {
    data::TokenDataset set = data::open_dataset(pattern, "eval.sets." + name, data.format,
                                                model_vocab_size > 0 ? model_vocab_size : out.vocab_size,
                                                min_tokens);
    if (set.vocab_size > out.vocab_size)
      throw Error(fmt::format("eval.sets.{}: '{}' has vocab size {}, larger than the training data's {}",
                              name, pattern, set.vocab_size, out.vocab_size));
    out.extra_val.emplace_back(name, std::move(set));
  }
  return out;
}

std::optional<int64_t> peek_vocab_size(const DataConfig& data) {
  if (data.source == DataSource::kSynthetic) return data.synthetic.vocab_size;
  if (data.format != ShardFormat::kLmtrain || data.train.empty()) return std::nullopt;
  try {
    const auto paths = data::expand_glob(data.train, "data.train");
    if (!std::filesystem::exists(paths.front())) return std::nullopt;
    return data::read_shard_header(paths.front()).vocab_size;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace lmt
