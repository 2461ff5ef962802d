#include "train/model_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/file_io.h"
#include "lmt_build_info.h"

namespace lmt {

namespace fs = std::filesystem;

namespace {

// hf:DIR at inference: the shape in a default recipe, padded as recipes pad by default.
InferenceCheckpoint open_hf(const std::string& dir) {
  const ModelConfig defaults;
  HfModel hf = read_hf_gpt2(dir, static_cast<int>(defaults.vocab_pad_to));
  InferenceCheckpoint out;
  out.dir = dir;
  out.hf = true;
  out.cfg = hf.cfg;
  out.recipe.path = (fs::path(dir) / "config.json").string();
  Recipe& r = out.recipe.recipe;
  r.model.n_layer = hf.cfg.num_layers;
  r.model.n_head = hf.cfg.num_heads;
  r.model.n_embd = hf.cfg.channels;
  r.model.max_seq_len = hf.cfg.max_seq_len;
  r.model.vocab_size = hf.cfg.vocab_size;
  r.run.seq_len = std::min(hf.cfg.max_seq_len, 1024);
  r.run.micro_batch_size = 4;  // eval's batch; --seq-len and --batches set the rest
  r.run.device = DeviceKind::kCpu;
  out.checkpoint.dir = dir;
  out.checkpoint.state.model = hf.cfg;
  out.checkpoint.tensors.params = std::move(hf.params);
  return out;
}

}  // namespace

InferenceCheckpoint open_for_inference(const std::string& which) {
  if (is_hf_spec(which)) return open_hf(which.substr(kHfPrefix.size()));
  InferenceCheckpoint out;
  const std::optional<std::string> dir = resolve_checkpoint(which, which, "--checkpoint");
  if (!dir) throw Error(fmt::format("--checkpoint {}: there is no checkpoint there yet", which));
  out.dir = *dir;
  const std::string recipe_path = (fs::path(out.dir) / "recipe.yaml").string();
  out.recipe = parse_recipe_text(read_file_bytes(recipe_path, "checkpoint recipe"), recipe_path);
  validate_recipe(out.recipe, 1);
  out.cfg = checkpoint_model_config(out.dir);
  out.checkpoint = load_checkpoint(out.dir, out.cfg, /*model_only=*/true);
  return out;
}

InferenceModel build_inference_model(const InferenceCheckpoint& model, DeviceKind device) {
  InferenceModel out;
  out.choice = make_inference_backend(model.recipe.recipe, model.cfg, device, model.dir);
  out.gpt = std::make_unique<GPT>(*out.choice.backend, model.cfg);
  out.gpt->set_parameters(model.checkpoint.tensors.params);
  return out;
}

std::optional<data::Tokenizer> find_model_tokenizer(const InferenceCheckpoint& model, const std::string& explicit_path,
                                                    std::vector<std::string>& looked) {
  if (!explicit_path.empty()) return data::Tokenizer::load(explicit_path);
  // A candidate that cannot be reached (a symlink loop) is an error, not a tokenizer skipped.
  auto is_tokenizer_file = [](const fs::path& path) {
    return file_kind(path.string(), "tokenizer file") == fs::file_type::regular;
  };
  const fs::path dir(model.dir);
  if (model.hf) {
    looked.push_back((dir / kHfLmtrainTokenizerFile).string());
    if (is_tokenizer_file(dir / kHfLmtrainTokenizerFile))
      return data::Tokenizer::load((dir / kHfLmtrainTokenizerFile).string());
    looked.push_back((dir / "vocab.json").string() + " with merges.txt");
    if (is_tokenizer_file(dir / "vocab.json") && is_tokenizer_file(dir / "merges.txt"))
      return data::Tokenizer::load_gpt2((dir / "vocab.json").string(), (dir / "merges.txt").string());
    return std::nullopt;
  }
  std::vector<fs::path> candidates = {dir / "tokenizer.json", dir.parent_path().parent_path() / "tokenizer.json"};
  const Recipe& recipe = model.recipe.recipe;
  if (recipe.data.source == DataSource::kShards)
    candidates.push_back(fs::path(recipe.data.train).parent_path() / "tokenizer.json");
  for (const auto& path : candidates) {
    looked.push_back(path.string());
    if (is_tokenizer_file(path)) return data::Tokenizer::load(path.string());
  }
  return std::nullopt;
}

PretrainedWeights load_pretrained(const std::string& spec) {
  PretrainedWeights out;
  out.source = spec;
  if (is_hf_spec(spec)) {
    HfModel hf = read_hf_gpt2(spec.substr(kHfPrefix.size()), 1);
    out.dir = hf.dir;
    out.cfg = hf.cfg;
    out.params = std::move(hf.params);
    return out;
  }
  const std::optional<std::string> dir = resolve_checkpoint(spec, spec, "model.init_from");
  if (!dir) throw Error(fmt::format("model.init_from {}: there is no checkpoint there yet", spec));
  out.dir = *dir;
  out.cfg = checkpoint_model_config(out.dir);
  LoadedCheckpoint loaded = load_checkpoint(out.dir, out.cfg, /*model_only=*/true);
  out.params = std::move(loaded.tensors.params);
  return out;
}

std::vector<float> fit_pretrained(const PretrainedWeights& weights, const GPTConfig& target, const std::string& where,
                                  std::string& notice) {
  const GPTConfig& source = weights.cfg;
  std::vector<std::string> differences;
  auto compare = [&](const char* key, int ours, int theirs) {
    if (ours != theirs)
      differences.push_back(fmt::format("model.{} is {} in the recipe, {} in {}", key, ours, theirs, weights.source));
  };
  compare("n_layer", target.num_layers, source.num_layers);
  compare("n_head", target.num_heads, source.num_heads);
  compare("n_embd", target.channels, source.channels);
  if (target.vocab_size != source.vocab_size)
    differences.push_back(fmt::format("vocab_size is {} for this run (model.vocab_size, or the data's), {} in {}",
                                      target.vocab_size, source.vocab_size, weights.source));
  if (target.max_seq_len > source.max_seq_len)
    differences.push_back(fmt::format("model.max_seq_len is {} in the recipe, but {} has only {} positions",
                                      target.max_seq_len, weights.source, source.max_seq_len));
  if (!differences.empty())
    throw Error(fmt::format("{}: model.init_from {} does not fit the recipe's model: {}; set those keys to the "
                            "pretrained model's values",
                            where, weights.source, fmt::join(differences, "; ")));
  notice.clear();
  if (target.max_seq_len < source.max_seq_len)
    notice = fmt::format("init_from: cropped the position embedding from {} to {} positions (model.max_seq_len)",
                         source.max_seq_len, target.max_seq_len);

  std::map<std::string, ParamTensor> from;
  for (auto& t : parameter_layout(source)) from.emplace(t.name, t);
  std::vector<float> params(parameter_storage_count(target), 0.0f);
  const size_t C = static_cast<size_t>(target.channels);
  for (const ParamTensor& t : parameter_layout(target)) {
    const ParamTensor& s = from.at(t.name);
    size_t count = t.numel;  // equal shapes, except:
    if (t.name == "wte") count = static_cast<size_t>(target.vocab_size) * C;  // the padded rows stay zero
    if (t.name == "wpe") count = static_cast<size_t>(target.max_seq_len) * C;  // the first positions
    std::memcpy(params.data() + t.offset, weights.params.data() + s.offset, count * sizeof(float));
  }
  return params;
}

HfExportResult export_model(const ExportOptions& options) {
  if (options.out.empty()) throw Error("--out is required: the directory to create");
  if (file_kind(options.out, "--out") != fs::file_type::not_found)
    throw Error(fmt::format("--out '{}' already exists; export writes a new directory (remove it or choose another)",
                            options.out));
  const InferenceCheckpoint model = open_for_inference(options.checkpoint);
  std::vector<std::string> looked;
  const std::optional<data::Tokenizer> tokenizer = find_model_tokenizer(model, options.tokenizer, looked);
  const nlohmann::json provenance = {{"version", LMTRAIN_VERSION},
                                     {"source", fs::absolute(model.dir).lexically_normal().string()},
                                     {"step", model.checkpoint.state.step}};
  return write_hf_gpt2(options.out, model.cfg, model.checkpoint.tensors.params, tokenizer ? &*tokenizer : nullptr,
                       provenance);
}

}  // namespace lmt
