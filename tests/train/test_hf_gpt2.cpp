// The Hugging Face GPT-2 format without transformers: export then import gives the same weights
// and tokenizer, every bad directory is refused naming the file and key, export is all or
// nothing, and model.init_from starts a run from either kind of source (cropping positions).
// tests/train/test_hf_transformers.cpp checks the same files against transformers itself.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "tests/cli/cli_util.h"
#include "train/hf_gpt2.h"
#include "train/model_source.h"
#include "train/trainer.h"

using namespace lmt;
using namespace lmt::testing;
namespace fs = std::filesystem;

namespace {

GPTConfig small_config() {
  GPTConfig cfg;
  cfg.num_layers = 2;
  cfg.num_heads = 2;
  cfg.channels = 16;
  cfg.max_seq_len = 24;
  cfg.vocab_size = 300;
  cfg.padded_vocab_size = GPTConfig::pad_vocab(cfg.vocab_size, 128);
  return cfg;
}

// Random weights with wte's padded rows zero (they are not part of the model).
std::vector<float> random_params(const GPTConfig& cfg, uint32_t seed) {
  std::vector<float> params(parameter_storage_count(cfg));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (float& p : params) p = normal(rng);
  const size_t C = static_cast<size_t>(cfg.channels);
  std::fill(params.begin() + static_cast<long>(cfg.vocab_size * C), params.begin() + static_cast<long>(cfg.padded_vocab_size * C), 0.0f);
  return params;
}

data::Tokenizer small_bpe() {
  data::BpeTrainOptions options;
  options.vocab_size = 300;
  options.num_threads = 1;
  return data::Tokenizer::train_bpe_on_text("the king said that the horse is fair; the lord said so. " +
                                                std::string(200, 'a') + " 123 café naïve",
                                            options);
}

// Rewrites DIR/model.safetensors through `edit` (name -> tensor).
template <class Edit>
void edit_weights(const fs::path& dir, Edit&& edit) {
  SafeTensorsFile file = read_safetensors((dir / "model.safetensors").string());
  edit(file.tensors);
  std::vector<TensorView> views;
  for (const auto& [name, t] : file.tensors) views.push_back({name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  fs::remove(dir / "model.safetensors");
  write_safetensors((dir / "model.safetensors").string(), views, file.metadata);
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = nlohmann::json::parse(read_file(dir / "config.json"));
  edit(config);
  write_file(dir / "config.json", config.dump());
}

// A fresh export of `cfg` with random weights in dir/name.
fs::path exported(const TempDir& dir, const std::string& name, const GPTConfig& cfg = small_config()) {
  const fs::path out = dir.path() / name;
  write_hf_gpt2(out.string(), cfg, random_params(cfg, 7), nullptr, nlohmann::json::object());
  return out;
}

}  // namespace

TEST_CASE("hf: export then import gives the weights back, and GPT-2's tokenizer files encode like the run's",
          "[hf]") {
  TempDir dir;
  const GPTConfig cfg = small_config();
  const std::vector<float> params = random_params(cfg, 1);
  const data::Tokenizer tokenizer = small_bpe();
  const HfExportResult result =
      write_hf_gpt2((dir.path() / "out").string(), cfg, params, &tokenizer, {{"step", 12}});
  CHECK(result.files == std::vector<std::string>{"config.json", "model.safetensors", kHfLmtrainTokenizerFile,
                                                 "vocab.json", "merges.txt", "tokenizer_config.json"});

  const HfModel back = read_hf_gpt2((dir.path() / "out").string(), 128);
  CHECK(back.cfg.num_layers == cfg.num_layers);
  CHECK(back.cfg.channels == cfg.channels);
  CHECK(back.cfg.vocab_size == cfg.vocab_size);
  CHECK(back.cfg.max_seq_len == cfg.max_seq_len);
  CHECK(back.cfg.padded_vocab_size == cfg.padded_vocab_size);
  CHECK(back.params == params);

  // Stored as transformers stores GPT2LMHeadModel: prefixed names, Conv1D weights (in, out),
  // the vocabulary unpadded, no lm_head.
  const SafeTensorsFile stored = read_safetensors((dir.path() / "out" / "model.safetensors").string());
  CHECK(stored.metadata.at("format") == "pt");
  CHECK(stored.at("transformer.wte.weight").shape == std::vector<int64_t>{300, 16});
  CHECK(stored.at("transformer.h.1.attn.c_attn.weight").shape == std::vector<int64_t>{16, 48});
  CHECK(stored.at("transformer.h.0.mlp.c_proj.weight").shape == std::vector<int64_t>{64, 16});
  CHECK(stored.tensors.count("lm_head.weight") == 0);
  // One Conv1D element: ours (out, in) = qkvw[l][o][i] is theirs [i][o].
  const ParamTensor qkvw = parameter_layout(cfg)[4];
  REQUIRE(qkvw.name == "qkvw");
  const size_t o = 37, i = 5, C = 16;
  CHECK(stored.at("transformer.h.1.attn.c_attn.weight").as_f32()[i * 3 * C + o] ==
        params[qkvw.offset + 3 * C * C + o * C + i]);

  const std::string text = "the king said: café naïve, 123 aaaa!";
  const data::Tokenizer gpt2 = data::Tokenizer::load_gpt2((dir.path() / "out" / "vocab.json").string(),
                                                          (dir.path() / "out" / "merges.txt").string());
  CHECK(gpt2.encode(text) == tokenizer.encode(text));
  CHECK(gpt2.eot_id() == tokenizer.eot_id());
  const nlohmann::json config = nlohmann::json::parse(read_file(dir.path() / "out" / "config.json"));
  CHECK(config["eos_token_id"] == *tokenizer.eot_id());
  CHECK(config["lmtrain"]["step"] == 12);

  // A char tokenizer has no GPT-2 form: only lmtrain's own file is written, and the note says why.
  const data::Tokenizer chars = data::Tokenizer::build_char("abc");
  const HfExportResult char_export = write_hf_gpt2((dir.path() / "chars").string(), cfg, params, &chars, {});
  CHECK(char_export.tokenizer_note.find("char, not byte-level BPE") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "chars" / "vocab.json"));
  CHECK(fs::exists(dir.path() / "chars" / kHfLmtrainTokenizerFile));
}

TEST_CASE("hf: bf16 and fp16 weights load converted, with or without the transformer. prefix", "[hf]") {
  TempDir dir;
  const fs::path out = exported(dir, "m");
  const std::vector<float> f32 = read_hf_gpt2(out.string(), 128).params;
  for (const DType dtype : {DType::kBF16, DType::kF16}) {
    DYNAMIC_SECTION(name_of(dtype)) {
      const fs::path copy = dir.path() / (std::string("m_") + name_of(dtype));
      fs::copy(out, copy);
      edit_weights(copy, [&](std::map<std::string, SafeTensor>& tensors) {
        std::map<std::string, SafeTensor> renamed;
        for (auto& [name, t] : tensors) {
          const std::vector<float> values = t.as_f32();
          SafeTensor half = t;
          half.dtype = dtype == DType::kBF16 ? "BF16" : "F16";
          half.bytes.resize(values.size() * 2);
          convert_from_f32(half.bytes.data(), dtype, values.data(), values.size());
          renamed[name.substr(std::string("transformer.").size())] = half;  // GPT2Model's names
        }
        tensors = renamed;
      });
      const std::vector<float> loaded = read_hf_gpt2(copy.string(), 128).params;
      REQUIRE(loaded.size() == f32.size());
      std::vector<float> rounded = f32;
      std::vector<uint16_t> half(rounded.size());
      convert_from_f32(half.data(), dtype, rounded.data(), rounded.size());
      convert_to_f32(rounded.data(), half.data(), dtype, rounded.size());
      CHECK(loaded == rounded);
    }
  }
}

TEST_CASE("hf: a directory lmtrain cannot run is refused naming the file and the key", "[hf]") {
  TempDir dir;
  const fs::path good = exported(dir, "good");
  int n = 0;
  // A copy of the good export, changed by `edit`; returns the error of reading it.
  auto refused = [&](const std::function<void(const fs::path&)>& edit) {
    const fs::path copy = dir.path() / ("bad" + std::to_string(n++));
    fs::copy(good, copy);
    edit(copy);
    return error_message([&] { read_hf_gpt2(copy.string(), 128); });
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(error_message([&] { read_hf_gpt2((dir.path() / "nowhere").string(), 128); }), Contains("does not exist"));
  CHECK_THAT(refused([](const fs::path& d) { fs::remove(d / "config.json"); }), Contains("has no config.json"));
  CHECK_THAT(refused([](const fs::path& d) { fs::remove(d / "model.safetensors"); }),
             Contains("has no model.safetensors"));
  CHECK_THAT(refused([](const fs::path& d) {
               fs::remove(d / "model.safetensors");
               write_file(d / "pytorch_model.bin", "pickle");
             }),
             Contains("pytorch_model.bin (a Python pickle)"));
  CHECK_THAT(refused([](const fs::path& d) { write_file(d / "config.json", "{not json"); }), Contains("not valid JSON"));
  CHECK_THAT(refused([](const fs::path& d) { edit_config(d, [](auto& c) { c["model_type"] = "llama"; }); }),
             Contains("model_type is \"llama\""));
  CHECK_THAT(refused([](const fs::path& d) { edit_config(d, [](auto& c) { c["activation_function"] = "relu"; }); }),
             Contains("activation_function is \"relu\""));
  const std::string several = refused([](const fs::path& d) {
    edit_config(d, [](auto& c) {
      c["n_inner"] = 10;
      c["tie_word_embeddings"] = false;
      c["layer_norm_epsilon"] = 1e-6;
    });
  });
  CHECK_THAT(several, Contains("n_inner is 10") && Contains("tie_word_embeddings is false") &&
                          Contains("layer_norm_epsilon is 1e-06"));
  CHECK_THAT(refused([](const fs::path& d) { edit_config(d, [](auto& c) { c.erase("n_embd"); }); }),
             Contains("key \"n_embd\" is missing"));
  CHECK_THAT(refused([](const fs::path& d) { edit_config(d, [](auto& c) { c["n_head"] = "two"; }); }),
             Contains("key \"n_head\" is \"two\""));
  // Tensors: every missing, misshapen and unknown one is named.
  const std::string tensors = refused([](const fs::path& d) {
    edit_weights(d, [](std::map<std::string, SafeTensor>& t) {
      t.erase("transformer.h.1.ln_2.bias");
      t["transformer.h.0.mlp.c_fc.bias"].shape = {32, 2};
      t["transformer.h.0.attn.rotary"] = t["transformer.ln_f.bias"];
    });
  });
  CHECK_THAT(tensors, Contains("missing tensors: h.1.ln_2.bias") && Contains("h.0.mlp.c_fc.bias is [32, 2]") &&
                          Contains("tensors GPT-2 does not have: h.0.attn.rotary"));
  CHECK_THAT(refused([](const fs::path& d) {
               edit_weights(d, [](std::map<std::string, SafeTensor>& t) {
                 t["lm_head.weight"] = t["transformer.wte.weight"];
                 t["lm_head.weight"].bytes[0] ^= 1;
               });
             }),
             Contains("lm_head.weight differs from wte.weight"));
  CHECK_THAT(refused([](const fs::path& d) {
               edit_weights(d, [](std::map<std::string, SafeTensor>& t) { t["transformer.wpe.weight"].dtype = "I32"; });
             }),
             Contains("wpe.weight") && Contains("got I32"));
  // A tied lm_head that transformers wrote out, and the causal-mask buffers, are accepted.
  const fs::path tied = dir.path() / "tied";
  fs::copy(good, tied);
  edit_weights(tied, [](std::map<std::string, SafeTensor>& t) {
    t["lm_head.weight"] = t["transformer.wte.weight"];
    t["transformer.h.0.attn.bias"] = t["transformer.ln_f.bias"];
  });
  CHECK(read_hf_gpt2(tied.string(), 128).params == read_hf_gpt2(good.string(), 128).params);
}

TEST_CASE("hf: export refuses an existing directory and non-finite weights, and leaves nothing behind", "[hf]") {
  TempDir dir;
  const GPTConfig cfg = small_config();
  std::vector<float> params = random_params(cfg, 2);
  fs::create_directories(dir.path() / "taken");
  CHECK_THAT(error_message([&] { write_hf_gpt2((dir.path() / "taken").string(), cfg, params, nullptr, {}); }),
             Catch::Matchers::Contains("already exists"));
  params[parameter_layout(cfg)[4].offset + 3] = std::nanf("");
  CHECK_THAT(error_message([&] { write_hf_gpt2((dir.path() / "nan").string(), cfg, params, nullptr, {}); }),
             Catch::Matchers::Contains("tensor h.0.attn.c_attn.weight holds nan"));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir.path())) left.push_back(entry.path().filename().string());
  CHECK(left == std::vector<std::string>{"taken"});
}

TEST_CASE("hf: model.init_from starts at step 0 from a checkpoint or hf:DIR, cropping the positions", "[hf][train]") {
  TempDir dir;
  auto recipe = [&](const std::vector<std::string>& overrides) {
    LoadedRecipe loaded = parse_recipe_text(tiny_recipe(dir), "tiny.yaml");
    apply_overrides(loaded, overrides);
    validate_recipe(loaded, 1);
    return loaded;
  };
  TrainOptions quiet;
  quiet.print_progress = false;
  {
    Trainer a(recipe({"run.name=a", "run.steps=3", "model.max_seq_len=32"}), quiet);
    while (a.steps_done() < a.total_steps()) a.after_step(a.step());
    a.finish(false, 0);
  }
  const std::string a_root = (dir.path() / "runs" / "a" / "checkpoints").string();
  const InferenceCheckpoint a = open_for_inference(a_root);
  REQUIRE(a.cfg.max_seq_len == 32);
  // The recipe's model has 16 positions: the first 16 rows of wpe, everything else as saved.
  std::vector<float> expected;
  {
    GPTConfig cropped = a.cfg;
    cropped.max_seq_len = 16;
    std::string notice;
    expected = fit_pretrained(load_pretrained(a_root), cropped, "test", notice);
    CHECK(notice == "init_from: cropped the position embedding from 32 to 16 positions (model.max_seq_len)");
    const ParamTensor wpe = parameter_layout(cropped)[1];
    REQUIRE(wpe.name == "wpe");
    CHECK(std::equal(expected.begin() + static_cast<long>(wpe.offset), expected.begin() + static_cast<long>(wpe.offset + 16 * 32),
                     a.checkpoint.tensors.params.begin() + static_cast<long>(parameter_layout(a.cfg)[1].offset)));
  }
  {
    Trainer b(recipe({"run.name=b", "model.init_from=" + a_root}), quiet);
    CHECK(b.steps_done() == 0);
    CHECK(b.parameters() == expected);
  }
  const std::string metrics = read_file(dir.path() / "runs" / "b" / "metrics.jsonl");
  CHECK_THAT(metrics, Catch::Matchers::Contains("\"init_from\":\"" + a_root + "\""));

  // hf:DIR: the same weights through an export.
  write_hf_gpt2((dir.path() / "a_hf").string(), a.cfg, a.checkpoint.tensors.params, nullptr, {});
  {
    Trainer c(recipe({"run.name=c", "model.init_from=hf:" + (dir.path() / "a_hf").string()}), quiet);
    CHECK(c.parameters() == expected);
  }
  // Every differing shape key is named, before the run directory exists.
  const std::string message = error_message(
      [&] { Trainer d(recipe({"run.name=d", "model.init_from=" + a_root, "model.n_layer=2", "model.n_embd=64", "model.max_seq_len=64"}), quiet); });
  CHECK_THAT(message, Catch::Matchers::Contains("model.n_layer is 2 in the recipe, 1 in") &&
                          Catch::Matchers::Contains("model.n_embd is 64 in the recipe, 32 in") &&
                          Catch::Matchers::Contains("model.max_seq_len is 64 in the recipe, but") &&
                          Catch::Matchers::Contains("tiny.yaml"));
  CHECK_FALSE(fs::exists(dir.path() / "runs" / "d"));
}
