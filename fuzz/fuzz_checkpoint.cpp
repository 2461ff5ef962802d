// A checkpoint directory as generate/eval (checkpoint_model_config, then load_checkpoint of the
// model) and a resume (load_checkpoint with the recipe's shape, optimizer included) read it.
// A valid checkpoint of a tiny model is saved once; each input replaces one file of it. First
// line "manifest": the rest is manifest.json. Otherwise the rest is trainer_state.json and the
// manifest is rewritten with its true size and checksum, so that the state itself is read.
#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/recipe.h"
#include "fuzz/fuzz_util.h"
#include "train/checkpoint.h"

namespace {

lmt::GPTConfig tiny_config() { return lmt::fuzz::tiny_model_config(16); }

struct Saved {
  std::string dir, manifest, state;
};

const Saved& saved_checkpoint() {
  static const Saved saved = [] {
    lmt::CheckpointState state;
    state.step = 3;
    state.model = tiny_config();
    state.recipe_yaml = lmt::recipe_to_yaml(lmt::Recipe{});
    const size_t count = lmt::parameter_storage_count(state.model);
    lmt::CheckpointTensors tensors{std::vector<float>(count, 0.5f), std::vector<float>(count, 0.0f),
                                   std::vector<float>(count, 1.0f)};
    Saved out;
    out.dir = lmt::save_checkpoint((lmt::fuzz::scratch_dir() / "run").string(), state, tensors, 0, 0);
    out.manifest = lmt::read_file_bytes(out.dir + "/manifest.json", "manifest");
    out.state = lmt::read_file_bytes(out.dir + "/trainer_state.json", "state");
    return out;
  }();
  return saved;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Saved& saved = saved_checkpoint();
  const auto [mode, body] = lmt::fuzz::split_first_line(lmt::fuzz::as_text(data, size));
  const std::string state_path = saved.dir + "/trainer_state.json";
  if (mode == "manifest") {
    lmt::fuzz::write_bytes(state_path, saved.state);
    lmt::fuzz::write_bytes(saved.dir + "/manifest.json", body);
  } else {
    lmt::fuzz::write_bytes(state_path, body);
    nlohmann::json manifest = nlohmann::json::parse(saved.manifest);
    manifest["files"]["trainer_state.json"] = {{"bytes", body.size()}, {"crc32c", lmt::crc32c_file(state_path)}};
    lmt::fuzz::write_bytes(saved.dir + "/manifest.json", manifest.dump(2));
  }
  try {
    const lmt::GPTConfig cfg = lmt::checkpoint_model_config(saved.dir);
    lmt::load_checkpoint(saved.dir, cfg, /*model_only=*/true);
  } catch (const lmt::Error&) {
  }
  try {
    lmt::load_checkpoint(saved.dir, tiny_config());
  } catch (const lmt::Error&) {
  }
  return 0;
}
