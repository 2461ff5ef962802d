#include "train/hellaswag.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "train/device.h"
#include "train/model_source.h"

namespace lmt {

namespace {

int parse_label(const nlohmann::json& label, const std::string& where) {
  int value = -1;
  if (label.is_number_integer()) {
    value = label.get<int>();
  } else if (label.is_string()) {
    const std::string text = label.get<std::string>();
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) value = -1;
  }
  if (value < 0) throw Error(fmt::format("{}: \"label\" is {}; expected the index of the right ending", where, label.dump()));
  return value;
}

ChoiceExample parse_example(const std::string& line, const std::string& where) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", where, e.what()));
  }
  if (!json.is_object()) throw Error(fmt::format("{}: expected a JSON object with ctx, endings and label", where));
  ChoiceExample ex;
  if (!json.contains("ctx") || !json["ctx"].is_string() || json["ctx"].get<std::string>().empty())
    throw Error(fmt::format("{}: \"ctx\" must be a non-empty string", where));
  ex.ctx = json["ctx"].get<std::string>();
  if (!json.contains("endings") || !json["endings"].is_array() || json["endings"].size() < 2)
    throw Error(fmt::format("{}: \"endings\" must be a list of at least 2 strings", where));
  for (const auto& ending : json["endings"]) {
    if (!ending.is_string() || ending.get<std::string>().empty())
      throw Error(fmt::format("{}: every entry of \"endings\" must be a non-empty string (found {})", where, ending.dump()));
    ex.endings.push_back(ending.get<std::string>());
  }
  if (!json.contains("label")) throw Error(fmt::format("{}: \"label\" is missing", where));
  ex.label = parse_label(json["label"], where);
  if (ex.label >= static_cast<int>(ex.endings.size()))
    throw Error(fmt::format("{}: \"label\" is {} but there are only {} endings", where, ex.label, ex.endings.size()));
  return ex;
}

}  // namespace

std::vector<ChoiceExample> read_choice_examples(const std::string& path) {
  std::istringstream lines(read_file_bytes(path, "--data (HellaSwag jsonl)"));
  std::vector<ChoiceExample> examples;
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    examples.push_back(parse_example(line, fmt::format("{}:{}", path, number)));
    examples.back().line = number;
  }
  if (examples.empty()) throw Error(fmt::format("{}: no examples (expected one JSON object per line)", path));
  return examples;
}

ChoiceScore score_choices(GPT& model, const data::Tokenizer& tokenizer, const ChoiceExample& example) {
  const int max_len = model.config().max_seq_len;
  std::vector<int32_t> ctx = tokenizer.encode(example.ctx);
  std::vector<std::vector<int32_t>> endings;
  size_t longest = 0;
  for (const auto& ending : example.endings) {
    endings.push_back(tokenizer.encode(" " + ending));
    longest = std::max(longest, endings.back().size());
  }
  if (longest + 1 > static_cast<size_t>(max_len))
    throw Error(fmt::format("line {}: an ending has {} tokens; the model's context is {}", example.line, longest, max_len));
  ChoiceScore score;
  if (ctx.size() + longest > static_cast<size_t>(max_len)) {
    ctx.erase(ctx.begin(), ctx.end() - static_cast<long>(max_len - longest));
    score.cropped = true;
  }
  // One row per ending, padded at the end (causal attention: the padding changes nothing before it).
  const int B = static_cast<int>(endings.size());
  const int T = static_cast<int>(ctx.size() + longest);
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T, 0), targets(inputs.size(), 0);
  for (int b = 0; b < B; ++b) {
    std::vector<int32_t> row = ctx;
    row.insert(row.end(), endings[b].begin(), endings[b].end());
    for (size_t t = 0; t < row.size(); ++t) {
      inputs[b * T + t] = row[t];
      if (t + 1 < row.size()) targets[b * T + t] = row[t + 1];
    }
  }
  model.forward(inputs.data(), targets.data(), B, T);
  const std::vector<float> losses = model.get_losses();
  for (int b = 0; b < B; ++b) {
    // Position t predicts token t + 1: the ending's tokens are predicted from ctx.size() - 1 on.
    double sum = 0;
    const size_t n = endings[b].size();
    for (size_t j = 0; j < n; ++j) sum += losses[b * T + ctx.size() - 1 + j];
    score.sum_losses.push_back(sum);
    score.mean_losses.push_back(sum / static_cast<double>(n));
  }
  score.pred = static_cast<int>(std::min_element(score.sum_losses.begin(), score.sum_losses.end()) - score.sum_losses.begin());
  score.pred_norm =
      static_cast<int>(std::min_element(score.mean_losses.begin(), score.mean_losses.end()) - score.mean_losses.begin());
  return score;
}

ChoiceReport evaluate_choices(const EvalOptions& options,
                              const std::function<void(int64_t, int64_t, const ChoiceReport&)>& progress) {
  if (options.data.size() != 1)
    throw Error(fmt::format("--task hellaswag takes one --data FILE.jsonl (got {})", options.data.size()));
  std::vector<ChoiceExample> examples = read_choice_examples(options.data[0]);
  if (options.limit > 0 && static_cast<size_t>(options.limit) < examples.size())
    examples.resize(static_cast<size_t>(options.limit));
  const InferenceCheckpoint ck = open_for_inference(options.checkpoint);
  std::vector<std::string> looked;
  const std::optional<data::Tokenizer> tokenizer = find_model_tokenizer(ck, options.tokenizer, looked);
  if (!tokenizer)
    throw Error(fmt::format("--task hellaswag needs the model's tokenizer (looked for {}); pass --tokenizer FILE",
                            looked.empty() ? "none: synthetic data" : fmt::format("{}", fmt::join(looked, ", "))));
  if (tokenizer->vocab_size() > ck.cfg.vocab_size)
    throw Error(fmt::format("the tokenizer has {} tokens, the model only {}", tokenizer->vocab_size(), ck.cfg.vocab_size));

  InferenceModel inference = build_inference_model(ck, options.device);
  GPT& model = *inference.gpt;
  ChoiceReport report;
  report.checkpoint_dir = ck.dir;
  report.data = options.data[0];
  report.step = ck.checkpoint.state.step;
  int64_t correct = 0, correct_norm = 0;
  for (const ChoiceExample& example : examples) {
    report.scores.push_back(score_choices(model, *tokenizer, example));
    const ChoiceScore& s = report.scores.back();
    correct += s.pred == example.label;
    correct_norm += s.pred_norm == example.label;
    report.cropped += s.cropped;
    report.examples = static_cast<int64_t>(report.scores.size());
    report.acc = static_cast<double>(correct) / static_cast<double>(report.examples);
    report.acc_norm = static_cast<double>(correct_norm) / static_cast<double>(report.examples);
    if (progress && (report.examples % 100 == 0 || report.examples == static_cast<int64_t>(examples.size())))
      progress(report.examples, static_cast<int64_t>(examples.size()), report);
  }
  return report;
}

}  // namespace lmt
