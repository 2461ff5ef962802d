#include "train/hf_gpt2.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"

namespace lmt {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";
constexpr const char* kStorePrefix = "transformer.";  // GPT2LMHeadModel's names for the trunk
constexpr double kLayerNormEps = 1e-5;                // cpu/layernorm.cpp, cuda/layernorm.cu

// One GPT-2 tensor and the arena tensor it is. Per-layer ones are named h.<l>.<hf>; Conv1D
// weights are stored (in, out), ours (out, in).
struct HfTensor {
  const char* hf;
  const char* ours;
  bool per_layer;
  bool conv1d;
};
constexpr HfTensor kHfTensors[] = {
    {"wte.weight", "wte", false, false},        {"wpe.weight", "wpe", false, false},
    {"ln_1.weight", "ln1w", true, false},       {"ln_1.bias", "ln1b", true, false},
    {"attn.c_attn.weight", "qkvw", true, true}, {"attn.c_attn.bias", "qkvb", true, false},
    {"attn.c_proj.weight", "attprojw", true, true}, {"attn.c_proj.bias", "attprojb", true, false},
    {"ln_2.weight", "ln2w", true, false},       {"ln_2.bias", "ln2b", true, false},
    {"mlp.c_fc.weight", "fcw", true, true},     {"mlp.c_fc.bias", "fcb", true, false},
    {"mlp.c_proj.weight", "fcprojw", true, true}, {"mlp.c_proj.bias", "fcprojb", true, false},
    {"ln_f.weight", "lnfw", false, false},      {"ln_f.bias", "lnfb", false, false}};

// One stored tensor: its GPT-2 name (without the "transformer." prefix), its stored shape and
// where its elements live in the arena.
struct Slot {
  std::string name;
  std::vector<int64_t> shape;  // as GPT-2 stores it
  size_t offset = 0;           // into the arena
  size_t numel = 0;
  bool conv1d = false;         // shape is (in, out); the arena holds (out, in)
};

std::vector<Slot> slots_of(const GPTConfig& cfg) {
  std::map<std::string, ParamTensor> ours;
  for (auto& t : parameter_layout(cfg)) ours.emplace(t.name, t);
  std::vector<Slot> slots;
  for (const HfTensor& h : kHfTensors) {
    const ParamTensor& t = ours.at(h.ours);
    const int layers = h.per_layer ? cfg.num_layers : 1;
    std::vector<int64_t> shape(t.shape.begin() + (h.per_layer ? 1 : 0), t.shape.end());
    if (std::string_view(h.ours) == "wte") shape[0] = cfg.vocab_size;  // the padded rows are not stored
    if (h.conv1d) std::swap(shape[0], shape[1]);
    size_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<size_t>(d);
    for (int l = 0; l < layers; ++l) {
      Slot s;
      s.name = h.per_layer ? fmt::format("h.{}.{}", l, h.hf) : h.hf;
      s.shape = shape;
      s.offset = t.offset + static_cast<size_t>(l) * (t.numel / static_cast<size_t>(layers));
      s.numel = numel;
      s.conv1d = h.conv1d;
      slots.push_back(std::move(s));
    }
  }
  return slots;
}

// stored (rows, cols) -> (cols, rows)
void transpose(const float* src, float* dst, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// "a, b, c and 4 more"
std::string name_list(const std::vector<std::string>& names, size_t max_shown = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max_shown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max_shown) out += fmt::format(" and {} more", names.size() - max_shown);
  return out;
}

nlohmann::json read_json_file(const fs::path& path, std::string_view what) {
  try {
    return nlohmann::json::parse(read_file_bytes(path.string(), what));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{} '{}' is not valid JSON: {}", what, path.string(), e.what()));
  }
}

// ---- reading ---------------------------------------------------------------------------------

int64_t int_key(const nlohmann::json& config, const std::string& path, const char* key, const char* fallback = nullptr) {
  const nlohmann::json* value = config.contains(key) ? &config[key] : nullptr;
  if (!value && fallback && config.contains(fallback)) value = &config[fallback];
  if (!value) throw Error(fmt::format("{}: key \"{}\" is missing; a GPT-2 config.json names it", path, key));
  if (!value->is_number_integer() || value->get<int64_t>() <= 0 || value->get<int64_t>() > (int64_t{1} << 30))
    throw Error(fmt::format("{}: key \"{}\" is {}; expected a positive integer", path, key, value->dump()));
  return value->get<int64_t>();
}

template <class T>
T value_or(const nlohmann::json& config, const char* key, T fallback) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  return config[key].get<T>();
}

// The settings of GPT2Config that lmtrain's GPT does not have, each checked against the value
// lmtrain computes with. All differences are reported together.
void check_architecture(const nlohmann::json& c, const std::string& path, int64_t n_embd) {
  std::vector<std::string> problems;
  if (value_or<std::string>(c, "model_type", "") != "gpt2")
    problems.push_back(fmt::format("model_type is {} (lmtrain runs \"gpt2\" only)",
                                   c.contains("model_type") ? c["model_type"].dump() : "missing"));
  if (c.contains("architectures") && c["architectures"].is_array()) {
    bool known = false;
    for (const auto& a : c["architectures"])
      known = known || (a.is_string() && (a == "GPT2LMHeadModel" || a == "GPT2Model"));
    if (!known) problems.push_back(fmt::format("architectures is {} (lmtrain reads GPT2LMHeadModel)", c["architectures"].dump()));
  }
  const std::string act = value_or<std::string>(c, "activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    problems.push_back(fmt::format("activation_function is \"{}\" (lmtrain's GELU is the tanh form, \"gelu_new\")", act));
  const double eps = value_or<double>(c, "layer_norm_epsilon", kLayerNormEps);
  if (std::abs(eps - kLayerNormEps) > 1e-12)
    problems.push_back(fmt::format("layer_norm_epsilon is {} (lmtrain's layernorm uses 1e-05)", eps));
  if (c.contains("n_inner") && !c["n_inner"].is_null() && c["n_inner"] != 4 * n_embd)
    problems.push_back(fmt::format("n_inner is {} (lmtrain's MLP is 4 * n_embd = {})", c["n_inner"].dump(), 4 * n_embd));
  if (!value_or<bool>(c, "scale_attn_weights", true))
    problems.push_back("scale_attn_weights is false (lmtrain scales attention by 1/sqrt(head size))");
  if (value_or<bool>(c, "scale_attn_by_inverse_layer_idx", false))
    problems.push_back("scale_attn_by_inverse_layer_idx is true (lmtrain does not scale by layer)");
  if (value_or<bool>(c, "add_cross_attention", false)) problems.push_back("add_cross_attention is true (lmtrain has none)");
  if (!value_or<bool>(c, "tie_word_embeddings", true))
    problems.push_back("tie_word_embeddings is false (lmtrain's LM head is the token embedding)");
  if (!problems.empty())
    throw Error(fmt::format("{}: this model is not one lmtrain's GPT can run: {}", path, fmt::join(problems, "; ")));
}

GPTConfig read_config_keys(const nlohmann::json& c, const fs::path& path, int vocab_pad_to) {
  GPTConfig cfg;
  cfg.num_layers = static_cast<int>(int_key(c, path.string(), "n_layer"));
  cfg.num_heads = static_cast<int>(int_key(c, path.string(), "n_head"));
  cfg.channels = static_cast<int>(int_key(c, path.string(), "n_embd"));
  cfg.vocab_size = static_cast<int>(int_key(c, path.string(), "vocab_size"));
  cfg.max_seq_len = static_cast<int>(int_key(c, path.string(), "n_positions", "n_ctx"));
  if (cfg.channels % cfg.num_heads != 0)
    throw Error(fmt::format("{}: n_embd {} is not divisible by n_head {}", path.string(), cfg.channels, cfg.num_heads));
  if (cfg.num_layers > 4096)
    throw Error(fmt::format("{}: n_layer {} is implausibly large (at most 4096)", path.string(), cfg.num_layers));
  check_architecture(c, path.string(), cfg.channels);
  cfg.padded_vocab_size = GPTConfig::pad_vocab(cfg.vocab_size, vocab_pad_to);
  return cfg;
}

GPTConfig read_config(const fs::path& path, int vocab_pad_to) {
  const nlohmann::json c = read_json_file(path, "Hugging Face config");
  if (!c.is_object()) throw Error(fmt::format("{}: expected a JSON object", path.string()));
  try {
    return read_config_keys(c, path, vocab_pad_to);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: a key has the wrong type: {}", path.string(), e.what()));
  }
}

// The weight files of DIR: model.safetensors, or the shards of its index.
std::vector<std::string> weight_files(const fs::path& dir) {
  if (fs::is_regular_file(dir / kWeightsFile)) return {(dir / kWeightsFile).string()};
  if (fs::is_regular_file(dir / kWeightsIndexFile)) {
    const nlohmann::json index = read_json_file(dir / kWeightsIndexFile, "safetensors index");
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error(fmt::format("safetensors index '{}' has no \"weight_map\" object", (dir / kWeightsIndexFile).string()));
    std::vector<std::string> files;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string() || fs::path(file.get<std::string>()).has_parent_path())
        throw Error(fmt::format("safetensors index '{}': tensor '{}' maps to {}; expected a file name in the same directory",
                                (dir / kWeightsIndexFile).string(), name, file.dump()));
      const std::string path = (dir / file.get<std::string>()).string();
      if (std::find(files.begin(), files.end(), path) == files.end()) files.push_back(path);
    }
    return files;
  }
  if (fs::exists(dir / "pytorch_model.bin"))
    throw Error(fmt::format("'{}' holds pytorch_model.bin (a Python pickle), which lmtrain does not read; save the "
                            "model with save_pretrained(..., safe_serialization=True) to get model.safetensors",
                            dir.string()));
  throw Error(fmt::format("'{}' has no {} (nor {}); a Hugging Face model directory holds config.json and "
                          "model.safetensors",
                          dir.string(), kWeightsFile, kWeightsIndexFile));
}

// GPT-2 leaves its causal-mask buffers in older files; they are not weights.
bool is_mask_buffer(const std::string& name) {
  return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
}

void place(const SafeTensor& stored, const Slot& slot, std::vector<float>& arena) {
  const std::vector<float> values = stored.to_f32();
  if (slot.conv1d)
    transpose(values.data(), arena.data() + slot.offset, slot.shape[0], slot.shape[1]);
  else
    std::memcpy(arena.data() + slot.offset, values.data(), slot.numel * sizeof(float));
}

}  // namespace

HfModel read_hf_gpt2(const std::string& dir_name, int vocab_pad_to) {
  const fs::path dir(dir_name);
  if (!fs::is_directory(dir))
    throw Error(fmt::format("Hugging Face model directory '{}' does not exist (hf:DIR names a directory holding "
                            "config.json and model.safetensors)",
                            dir_name));
  if (!fs::is_regular_file(dir / kConfigFile))
    throw Error(fmt::format("'{}' has no config.json; a Hugging Face model directory holds config.json and "
                            "model.safetensors",
                            dir_name));
  HfModel model;
  model.dir = dir_name;
  model.cfg = read_config(dir / kConfigFile, vocab_pad_to);
  const std::vector<Slot> slots = slots_of(model.cfg);

  std::map<std::string, SafeTensor> stored;  // by name without the "transformer." prefix
  std::map<std::string, std::string> file_of;
  for (const std::string& file : weight_files(dir)) {
    SafeTensorsFile f = read_safetensors(file);
    for (auto& [name, tensor] : f.tensors) {
      const std::string key = name.starts_with(kStorePrefix) ? name.substr(std::strlen(kStorePrefix)) : name;
      file_of[key] = file;
      stored[key] = std::move(tensor);
    }
  }
  std::vector<std::string> missing, misshapen, unexpected;
  for (const Slot& slot : slots) {
    const auto it = stored.find(slot.name);
    if (it == stored.end()) {
      missing.push_back(slot.name);
      continue;
    }
    if (it->second.shape != slot.shape) {
      misshapen.push_back(fmt::format("{} is {}, config.json implies {}", slot.name, shape_text(it->second.shape),
                                      shape_text(slot.shape)));
    }
  }
  for (const auto& entry : stored) {
    const std::string& name = entry.first;  // not a binding: clang 14 cannot capture one
    const bool known = std::any_of(slots.begin(), slots.end(), [&](const Slot& s) { return s.name == name; });
    if (!known && !is_mask_buffer(name) && name != "lm_head.weight") unexpected.push_back(name);
  }
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back(fmt::format("missing tensors: {}", name_list(missing)));
  if (!misshapen.empty()) problems.push_back(fmt::format("wrong shapes: {}", name_list(misshapen, 4)));
  if (!unexpected.empty()) problems.push_back(fmt::format("tensors GPT-2 does not have: {}", name_list(unexpected)));
  if (!problems.empty())
    throw Error(fmt::format("Hugging Face model '{}' does not match its config.json: {}", dir_name, fmt::join(problems, "; ")));
  // Every shape matched a stored tensor, so the arena is no larger than the files.
  model.params.assign(parameter_storage_count(model.cfg), 0.0f);
  for (const Slot& slot : slots) {
    try {
      place(stored.at(slot.name), slot, model.params);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: tensor '{}': {}", file_of[slot.name], slot.name, e.what()));
    }
  }
  // A stored lm_head must be the embedding itself: lmtrain's LM head is tied.
  if (const auto it = stored.find("lm_head.weight"); it != stored.end()) {
    const Slot& wte = slots.front();
    const std::vector<float> head = it->second.to_f32();
    if (it->second.shape != wte.shape ||
        !std::equal(head.begin(), head.end(), model.params.begin() + static_cast<long>(wte.offset)))
      throw Error(fmt::format("{}: lm_head.weight differs from wte.weight; lmtrain's LM head is tied to the "
                              "token embedding, so this model cannot be loaded",
                              file_of["lm_head.weight"]));
  }
  return model;
}

// ---- writing ---------------------------------------------------------------------------------

namespace {

nlohmann::ordered_json config_json(const GPTConfig& cfg, std::optional<int32_t> eot, const nlohmann::json& provenance) {
  const nlohmann::json eot_id = eot ? nlohmann::json(*eot) : nlohmann::json();
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", cfg.vocab_size},
          {"n_positions", cfg.max_seq_len},
          {"n_ctx", cfg.max_seq_len},
          {"n_embd", cfg.channels},
          {"n_layer", cfg.num_layers},
          {"n_head", cfg.num_heads},
          {"n_inner", nullptr},
          {"activation_function", "gelu_new"},
          {"layer_norm_epsilon", kLayerNormEps},
          // lmtrain trains without dropout; fine-tuning in transformers starts from the same.
          {"resid_pdrop", 0.0},
          {"embd_pdrop", 0.0},
          {"attn_pdrop", 0.0},
          {"initializer_range", 0.02},
          {"scale_attn_weights", true},
          {"scale_attn_by_inverse_layer_idx", false},
          {"reorder_and_upcast_attn", false},
          {"tie_word_embeddings", true},
          {"use_cache", true},
          {"bos_token_id", eot_id},
          {"eos_token_id", eot_id},
          {"torch_dtype", "float32"},
          {"lmtrain", provenance}};
}

// The special tokens as GPT-2's files can carry them (<|...|>, which load_gpt2 recognizes); an
// empty reason means the tokenizer can be written as vocab.json + merges.txt.
std::string gpt2_incompatibility(const data::Tokenizer& tokenizer) {
  if (tokenizer.kind() != "bpe")
    return fmt::format("the run's tokenizer is {}, not byte-level BPE", tokenizer.kind());
  for (const auto& special : tokenizer.bpe()->special_tokens())
    if (!special.name.starts_with("<|") || !special.name.ends_with("|>"))
      return fmt::format("its special token \"{}\" is not of GPT-2's <|...|> form", special.name);
  return {};
}

void write_text(const fs::path& path, std::string_view text) {
  OutputFile file(path.string());
  file.write(text);
  file.finish();
}

// The tokenizer files of the export; returns the note for the user.
std::string write_tokenizer_files(const fs::path& dir, const data::Tokenizer& tokenizer, const GPTConfig& cfg,
                                  std::vector<std::string>& files) {
  write_text(dir / kHfLmtrainTokenizerFile, tokenizer.to_json());
  files.push_back(kHfLmtrainTokenizerFile);
  const std::string why_not = gpt2_incompatibility(tokenizer);
  if (!why_not.empty())
    return fmt::format("{}: no GPT-2 tokenizer files (transformers gets the model only; lmtrain reads {})", why_not,
                       kHfLmtrainTokenizerFile);
  write_text(dir / "vocab.json", tokenizer.bpe()->gpt2_vocab_json());
  write_text(dir / "merges.txt", tokenizer.bpe()->gpt2_merges_txt());
  const std::optional<int32_t> eot = tokenizer.eot_id();
  const nlohmann::json special = eot ? nlohmann::json(std::string(data::kEndOfText)) : nlohmann::json();
  const nlohmann::ordered_json tokenizer_config = {{"tokenizer_class", "GPT2Tokenizer"},
                                                   {"model_max_length", cfg.max_seq_len},
                                                   {"add_prefix_space", false},
                                                   {"bos_token", special},
                                                   {"eos_token", special},
                                                   {"unk_token", special}};
  write_text(dir / "tokenizer_config.json", tokenizer_config.dump(2) + "\n");
  files.insert(files.end(), {"vocab.json", "merges.txt", "tokenizer_config.json"});
  return "byte-level BPE: vocab.json and merges.txt written for GPT2Tokenizer";
}

void check_finite(const GPTConfig& cfg, const std::vector<float>& params) {
  for (const Slot& slot : slots_of(cfg)) {
    const float* values = params.data() + slot.offset;
    const auto bad = std::find_if(values, values + slot.numel, [](float v) { return !std::isfinite(v); });
    if (bad != values + slot.numel)
      throw Error(fmt::format("tensor {} holds {} at element {}: the checkpoint's weights are not finite (a diverged "
                              "run?); export an earlier checkpoint",
                              slot.name, *bad, bad - values));
  }
}

}  // namespace

HfExportResult write_hf_gpt2(const std::string& out, const GPTConfig& cfg, const std::vector<float>& params,
                             const data::Tokenizer* tokenizer, const nlohmann::json& provenance) {
  if (params.size() != parameter_storage_count(cfg))
    throw Error(fmt::format("export: {} parameters given, the model has {}", params.size(), parameter_storage_count(cfg)));
  const fs::path target = fs::absolute(out).lexically_normal();
  if (fs::exists(target))
    throw Error(fmt::format("--out '{}' already exists; export writes a new directory (remove it or choose another)", out));
  check_finite(cfg, params);
  if (!target.parent_path().empty()) fs::create_directories(target.parent_path());
  const fs::path temp = target.parent_path() / fmt::format(".{}.partial-{}", target.filename().string(), ::getpid());
  fs::remove_all(temp);
  fs::create_directory(temp);
  HfExportResult result;
  result.dir = target.string();
  try {
    std::vector<std::vector<float>> transposed;  // Conv1D copies, alive until the file is written
    std::vector<TensorView> views;
    for (const Slot& slot : slots_of(cfg)) {
      const float* data = params.data() + slot.offset;
      if (slot.conv1d) {
        transposed.emplace_back(slot.numel);
        // The arena holds (out, in) = (shape[1], shape[0]).
        transpose(data, transposed.back().data(), slot.shape[1], slot.shape[0]);
        data = transposed.back().data();
      }
      views.push_back({kStorePrefix + slot.name, "F32", slot.shape, data, slot.numel * sizeof(float)});
    }
    write_safetensors((temp / kWeightsFile).string(), views, {{"format", "pt"}});
    result.files = {kConfigFile, kWeightsFile};
    const std::optional<int32_t> eot = tokenizer ? tokenizer->eot_id() : std::nullopt;
    write_text(temp / kConfigFile, config_json(cfg, eot, provenance).dump(2) + "\n");
    result.tokenizer_note = tokenizer ? write_tokenizer_files(temp, *tokenizer, cfg, result.files)
                                      : "no tokenizer found for this run (synthetic data?): the model only";
    sync_directory(temp.string());
    rename_file(temp.string(), target.string());
    sync_directory(target.parent_path().string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    throw;
  }
  return result;
}

}  // namespace lmt
