// Damaged checkpoint files (train/checkpoint.h) as the fuzzer (fuzz/fuzz_checkpoint.cpp) made
// them: each must be an lmt::Error naming the file and the key, before any buffer is sized
// from it. The manifest is kept consistent with a replaced trainer_state.json, as someone who
// edits the state and fixes the checksum would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "core/checksum.h"
#include "core/recipe.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"

namespace lmt {
namespace {

using Catch::Matchers::Contains;
using testing::error_message;
using testing::TempDir;

GPTConfig tiny_shape() {
  GPTConfig cfg;
  cfg.max_seq_len = 8;
  cfg.vocab_size = 10;
  cfg.padded_vocab_size = 16;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.channels = 4;
  return cfg;
}

std::string save_tiny(const TempDir& dir) {
  CheckpointState state;
  state.step = 3;
  state.data.num_files = 1;
  state.data.window_tokens = 8;
  state.data.num_tokens = 100;
  state.model = tiny_shape();
  state.recipe_yaml = recipe_to_yaml(Recipe{});
  const size_t count = parameter_storage_count(state.model);
  return save_checkpoint((dir.path() / "run").string(), state,
                         {std::vector<float>(count, 0.5f), std::vector<float>(count), std::vector<float>(count, 1.0f)},
                         0, 0);
}

// Replaces trainer_state.json and records its true size and checksum in the manifest.
void replace_state(const std::string& ckpt, const std::string& bytes) {
  const std::string path = ckpt + "/trainer_state.json";
  testing::write_file(path, bytes);
  nlohmann::json manifest = nlohmann::json::parse(testing::read_file(ckpt + "/manifest.json"));
  manifest["files"]["trainer_state.json"] = {{"bytes", bytes.size()}, {"crc32c", crc32c_file(path)}};
  testing::write_file(ckpt + "/manifest.json", manifest.dump(2));
}

std::string good_state() {
  return R"({"model": {"n_layer": 1, "n_head": 2, "n_embd": 4, "max_seq_len": 8, "vocab_size": 10,
  "padded_vocab_size": 16}, "step": 3, "tokens_seen": 0, "world_size": 1, "seed": 0,
  "data": {"sampler": "shuffled-windows-v1", "epoch": 0, "shard": 0, "window": 0, "window_tokens": 8,
  "files": 1, "tokens": 100}, "optimizer": {"step": 0}, "loss_scaler": null})";
}

}  // namespace

TEST_CASE("checkpoint: a state that is not JSON or has wrong types is an error naming trainer_state.json",
          "[train][checkpoint][fuzz]") {
  TempDir dir;
  const std::string ckpt = save_tiny(dir);
  replace_state(ckpt, good_state());
  CHECK(load_checkpoint(ckpt, tiny_shape()).state.step == 3);
  // Found by fuzz_checkpoint: nlohmann::json's parse_error escaped load_checkpoint (a resume).
  replace_state(ckpt, "state");
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains("trainer_state.json"));
  nlohmann::json state = nlohmann::json::parse(good_state());
  state["step"] = "three";
  replace_state(ckpt, state.dump());
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }),
             Contains("trainer_state.json") && Contains("step must be an integer") && Contains("(got \"three\")"));
  state = nlohmann::json::parse(good_state());
  state["data"] = 7;
  replace_state(ckpt, state.dump());
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains("trainer_state.json") && Contains("data."));
  state = nlohmann::json::parse(good_state());
  state["model"]["n_embd"] = "4";
  replace_state(ckpt, state.dump());
  CHECK_THAT(error_message([&] { checkpoint_model_config(ckpt); }), Contains("trainer_state.json"));
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains("model.n_embd must be an integer") && Contains("(got \"4\")"));
}

TEST_CASE("checkpoint: negative counters and impossible shapes in trainer_state.json are refused",
          "[train][checkpoint][fuzz]") {
  TempDir dir;
  const std::string ckpt = save_tiny(dir);
  for (const auto& [pointer, value, named] :
       std::vector<std::tuple<std::string, nlohmann::json, std::string>>{{"/step", -5, "step must be an integer from 0"},
                                                                         {"/data/epoch", -1, "data.epoch must be an integer from 0"},
                                                                         {"/optimizer/step", -100, "optimizer.step must be an integer from 0"},
                                                                         {"/world_size", 0, "world_size must be an integer from 1"}}) {
    nlohmann::json state = nlohmann::json::parse(good_state());
    state[nlohmann::json::json_pointer(pointer)] = value;
    replace_state(ckpt, state.dump());
    CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains(named));
  }
  // generate/eval size the model from the state: a damaged shape must not reach an allocation.
  nlohmann::json state = nlohmann::json::parse(good_state());
  state["model"]["n_layer"] = 1000000000;
  state["model"]["n_embd"] = 1000000000;
  state["model"]["n_head"] = 1;
  replace_state(ckpt, state.dump());
  CHECK_THAT(error_message([&] { checkpoint_model_config(ckpt); }), Contains("parameters"));
  state["model"]["n_layer"] = 0;
  replace_state(ckpt, state.dump());
  CHECK_THAT(error_message([&] { checkpoint_model_config(ckpt); }), Contains("model.n_layer must be an integer from 1"));
}

TEST_CASE("checkpoint: a manifest of the wrong shape is an error naming it", "[train][checkpoint][fuzz]") {
  TempDir dir;
  const std::string ckpt = save_tiny(dir);
  testing::write_file(ckpt + "/manifest.json", "[1]");
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains("manifest.json"));
  testing::write_file(ckpt + "/manifest.json", R"({"format_version": 1, "files": {"model.safetensors": {"bytes": "x"}}})");
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }),
             Contains("manifest.json") && Contains("model.safetensors"));
  testing::write_file(ckpt + "/manifest.json", R"({"format_version": "1", "files": {}})");
  CHECK_THAT(error_message([&] { load_checkpoint(ckpt, tiny_shape()); }), Contains("format_version must be an integer") && Contains("(got \"1\")"));
}

}  // namespace lmt
