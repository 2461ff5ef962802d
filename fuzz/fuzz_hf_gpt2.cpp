// A Hugging Face GPT-2 directory as hf:DIR reads it: read_hf_gpt2. A valid export of a tiny
// model is written once; each input replaces one file of it, chosen by the first line:
// "config" (config.json), "index" (model.safetensors.index.json, the weights then living in
// model-00001-of-00001.safetensors), otherwise model.safetensors.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "fuzz/fuzz_util.h"
#include "train/hf_gpt2.h"

namespace fs = std::filesystem;

namespace {

struct Exported {
  fs::path dir;
  std::string config, weights;
};

const Exported& exported() {
  static const Exported out = [] {
    const lmt::GPTConfig cfg = lmt::fuzz::tiny_model_config(128);
    std::vector<float> params(lmt::parameter_storage_count(cfg), 0.25f);
    Exported e;
    e.dir = lmt::fuzz::scratch_dir() / "hf";
    fs::remove_all(e.dir);
    lmt::write_hf_gpt2(e.dir.string(), cfg, params, nullptr, nlohmann::json::object());
    e.config = lmt::read_file_bytes((e.dir / "config.json").string(), "config");
    e.weights = lmt::read_file_bytes((e.dir / "model.safetensors").string(), "weights");
    return e;
  }();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Exported& e = exported();
  const auto [mode, body] = lmt::fuzz::split_first_line(lmt::fuzz::as_text(data, size));
  const fs::path shard = e.dir / "model-00001-of-00001.safetensors";
  const fs::path index = e.dir / "model.safetensors.index.json";
  fs::remove(shard);
  fs::remove(index);
  lmt::fuzz::write_bytes(e.dir / "config.json", mode == "config" ? body : std::string_view(e.config));
  if (mode == "index") {
    fs::remove(e.dir / "model.safetensors");
    lmt::fuzz::write_bytes(shard, e.weights);
    lmt::fuzz::write_bytes(index, body);
  } else {
    lmt::fuzz::write_bytes(e.dir / "model.safetensors", mode == "config" ? std::string_view(e.weights) : body);
  }
  try {
    lmt::read_hf_gpt2(e.dir.string(), 128);
  } catch (const lmt::Error&) {
  }
  return 0;
}
