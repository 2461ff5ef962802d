#include "train/evaluate.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "core/recipe.h"
#include "data/sampler.h"
#include "parallel/process_group.h"
#include "train/model_source.h"
#include "train/device.h"
#include "train/train_data.h"

namespace lmt {
namespace {

// Sum of the losses of batches rank, rank + W, rank + 2W, ... of the fixed evaluation windows.
double evaluate_batches(GPT& model, const data::TokenDataset& val, int64_t num_batches, int B, int T, int rank,
                        int world_size) {
  const std::vector<data::WindowRef> windows = data::eval_windows(val, static_cast<uint64_t>(num_batches * B), T);
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  double sum = 0.0;
  for (int64_t i = rank; i < num_batches; i += world_size) {
    data::read_windows(val, std::span(windows).subspan(static_cast<size_t>(i * B), static_cast<size_t>(B)), T,
                       inputs.data(), targets.data());
    sum += model.forward(inputs.data(), targets.data(), B, T);
  }
  return sum;
}

}  // namespace

double evaluate(GPT& model, const data::TokenDataset& val, int64_t num_batches, int B, int T) {
  return evaluate_batches(model, val, num_batches, B, T, 0, 1) / static_cast<double>(num_batches);
}

double evaluate_distributed(GPT& model, const data::TokenDataset& val, int64_t num_batches, int B, int T,
                            ProcessGroup& group) {
  const double local = evaluate_batches(model, val, num_batches, B, T, group.rank(), group.size());
  if (group.size() == 1) return local / static_cast<double>(num_batches);
  float sum = static_cast<float>(local);  // float: the process group reduces float buffers
  group.all_reduce(&sum, 1, ReduceOp::kSum);
  return static_cast<double>(sum) / static_cast<double>(num_batches);
}

EvalReport evaluate_checkpoint(const EvalOptions& options) {
  if (options.limit > 0 || !options.tokenizer.empty())
    throw Error("--limit and --tokenizer apply to --task hellaswag only");
  const InferenceCheckpoint ck = open_for_inference(options.checkpoint);
  const Recipe& r = ck.recipe.recipe;
  const GPTConfig& cfg = ck.cfg;

  EvalReport report;
  report.checkpoint_dir = ck.dir;
  report.step = ck.checkpoint.state.step;
  report.batch_size = r.run.micro_batch_size;
  report.seq_len = options.seq_len > 0 ? options.seq_len : r.run.seq_len;
  const int64_t batches = options.batches > 0 ? options.batches : r.eval.batches;
  if (report.seq_len > cfg.max_seq_len)
    throw Error(fmt::format("--seq-len {} exceeds the model's max_seq_len {}", report.seq_len, cfg.max_seq_len));

  // (name, dataset) of every set, all opened and checked before the model runs.
  const int B = static_cast<int>(report.batch_size), T = static_cast<int>(report.seq_len);
  std::vector<std::pair<std::string, data::TokenDataset>> sets;
  if (options.data.empty()) {
    if (ck.hf)
      throw Error(fmt::format("--checkpoint {}: a Hugging Face model has no validation set of its own; pass --data SHARD",
                              options.checkpoint));
    TrainData data = load_train_data(r.data, r.eval, cfg.vocab_size, T);
    if (!data.val && data.extra_val.empty())
      throw Error(fmt::format("the checkpoint's recipe has no validation set (data.val or eval.sets); pass --data SHARD"));
    if (data.val) sets.emplace_back("val", std::move(*data.val));
    for (auto& extra : data.extra_val) sets.push_back(std::move(extra));
  } else {
    for (const auto& pattern : options.data)
      for (const auto& path : data::expand_glob(pattern, "--data")) {
        data::TokenDataset set = data::open_dataset(path, "--data", r.data.format, cfg.vocab_size,
                                                    static_cast<uint64_t>(T) + 1);
        if (set.vocab_size > cfg.vocab_size)
          throw Error(fmt::format("{}: vocab size {} is larger than the model's {}", path,
                                  set.vocab_size, cfg.vocab_size));
        sets.emplace_back(path, std::move(set));
      }
  }

  InferenceModel inference = build_inference_model(ck, options.device);
  GPT& model = *inference.gpt;
  for (size_t i = 0; i < sets.size(); ++i) {
    EvalSetResult result;
    result.name = sets[i].first;
    result.batches = batches;
    result.tokens = batches * B * T;
    result.loss = evaluate(model, sets[i].second, batches, B, T);
    result.perplexity = std::exp(result.loss);
    report.sets.push_back(result);
  }
  return report;
}

}  // namespace lmt
