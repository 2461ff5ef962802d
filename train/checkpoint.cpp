#include "train/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "core/checksum.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "lmt_build_info.h"

namespace lmt {

namespace fs = std::filesystem;
namespace {

constexpr const char* kSamplerName = "shuffled-windows-v1";

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kRecipeFile = "recipe.yaml";
constexpr const char* kManifestFile = "manifest.json";

std::string step_dir_name(int64_t step) { return fmt::format("step_{:08d}", step); }

nlohmann::json model_json(const GPTConfig& c) {
  nlohmann::json model;
  for (const auto& field : kGPTConfigFields) model[field.name] = c.*field.member;
  return model;
}

std::vector<TensorView> tensor_views(const std::vector<ParamTensor>& layout, const std::string& prefix,
                                     const std::vector<float>& arena) {
  std::vector<TensorView> views;
  for (const auto& t : layout)
    views.push_back({prefix + t.name, "F32", t.shape, arena.data() + t.offset, t.numel * sizeof(float)});
  return views;
}

std::vector<float> gather(const SafeTensorsFile& file, const std::vector<ParamTensor>& layout,
                          const std::string& prefix, size_t total) {
  // Every tensor is checked before the arena is allocated: a damaged trainer_state.json may
  // describe a model far larger than the file.
  for (const auto& t : layout) {
    const SafeTensor& tensor = file.at(prefix + t.name);
    if (tensor.shape != t.shape || tensor.dtype != "F32")
      throw Error(fmt::format("{}: tensor '{}' has dtype {} and shape [{}], expected F32 [{}]",
                              file.path, prefix + t.name, tensor.dtype, fmt::join(tensor.shape, ", "),
                              fmt::join(t.shape, ", ")));
  }
  std::vector<float> arena(total);
  for (const auto& t : layout)
    std::memcpy(arena.data() + t.offset, file.at(prefix + t.name).bytes.data(), t.numel * sizeof(float));
  return arena;
}

// Complete checkpoints under root, oldest first.
std::vector<fs::path> complete_checkpoints(const fs::path& root) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("step_", 0) == 0 && name.find('.') == std::string::npos &&
        fs::exists(entry.path() / kManifestFile))
      dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

}  // namespace

std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const CheckpointTensors& tensors, int64_t keep_last, int64_t keep_every) {
  const fs::path root_path(root);
  fs::create_directories(root_path);
  const std::string name = step_dir_name(state.step);
  const fs::path final_dir = root_path / name;
  const fs::path temp_dir = root_path / (name + ".partial");
  std::error_code ec;
  // Leftovers of saves killed midway (this run is the only writer of this folder).
  for (const auto& entry : fs::directory_iterator(root_path, ec)) {
    const std::string entry_name = entry.path().filename().string();
    if (entry_name.rfind("step_", 0) == 0 &&
        (entry_name.ends_with(".partial") || entry_name.ends_with(".old")))
      fs::remove_all(entry.path(), ec);
  }
  fs::create_directories(temp_dir);
  try {
    const auto layout = parameter_layout(state.model);
    write_safetensors((temp_dir / kModelFile).string(), tensor_views(layout, "", tensors.params),
                      {{"format", "lmtrain"}, {"layout", "llm.c stacked, fp32 master weights"}});
    auto moments = tensor_views(layout, "m.", tensors.adam_m);
    auto second = tensor_views(layout, "v.", tensors.adam_v);
    moments.insert(moments.end(), second.begin(), second.end());
    write_safetensors((temp_dir / kOptimizerFile).string(), moments,
                      {{"optimizer", "adamw"}, {"step", std::to_string(state.optimizer_step)}});
    nlohmann::json trainer_state = {
        {"format", "lmtrain-checkpoint"},
        {"format_version", kCheckpointFormatVersion},
        {"lmtrain_version", LMTRAIN_VERSION},
        {"step", state.step},
        {"tokens_seen", state.tokens_seen},
        {"world_size", state.world_size},
        {"seed", state.seed},
        {"data", {{"sampler", kSamplerName},
                  {"epoch", state.data.epoch},
                  {"shard", state.data.shard},
                  {"window", state.data.window},
                  {"window_tokens", state.data.window_tokens},
                  {"files", state.data.num_files},
                  {"tokens", state.data.num_tokens}}},
        {"optimizer", {{"name", "adamw"}, {"step", state.optimizer_step}}},
        {"schedule", {{"step", state.step}}},
        {"loss_scaler", state.loss_scaler ? nlohmann::json{{"scale", state.loss_scaler->scale},
                                                            {"hysteresis_left", state.loss_scaler->hysteresis_left},
                                                            {"iteration", state.loss_scaler->iteration},
                                                            {"last_overflow", state.loss_scaler->last_overflow},
                                                            {"skipped_steps", state.loss_scaler->skipped_steps}}
                                          : nlohmann::json()},
        {"model", model_json(state.model)}};
    write_file_atomic((temp_dir / kStateFile).string(), trainer_state.dump(2) + "\n");
    write_file_atomic((temp_dir / kRecipeFile).string(), state.recipe_yaml);
    nlohmann::json manifest = {{"format_version", kCheckpointFormatVersion}, {"files", nlohmann::json::object()}};
    for (const char* file : {kModelFile, kOptimizerFile, kStateFile, kRecipeFile}) {
      const fs::path path = temp_dir / file;
      manifest["files"][file] = {{"bytes", fs::file_size(path)}, {"crc32c", crc32c_file(path.string())}};
    }
    // The manifest is written last: a directory without one is never treated as a checkpoint.
    write_file_atomic((temp_dir / kManifestFile).string(), manifest.dump(2) + "\n");
    sync_directory(temp_dir.string());
    if (fs::exists(final_dir)) {
      // The same step saved again (e.g. stopped right after a resume): replace it.
      const fs::path old_dir = root_path / (name + ".old");
      fs::remove_all(old_dir, ec);
      fs::rename(final_dir, old_dir);
      fs::rename(temp_dir, final_dir);
      fs::remove_all(old_dir, ec);
    } else {
      fs::rename(temp_dir, final_dir);
    }
    sync_directory(root_path.string());
    write_file_atomic((root_path / "latest").string(), name + "\n");
    sync_directory(root_path.string());
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(temp_dir, ec);
    throw Error(fmt::format("saving checkpoint {} failed: {}; the previous checkpoint is intact",
                            final_dir.string(), e.what()));
  } catch (...) {
    fs::remove_all(temp_dir, ec);
    throw;
  }
  if (keep_last > 0) {
    auto dirs = complete_checkpoints(root_path);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < dirs.size(); ++i) {
      const int64_t step = std::stoll(dirs[i].filename().string().substr(5));
      const bool milestone = keep_every > 0 && step % keep_every == 0;
      if (dirs[i] != final_dir && !milestone) fs::remove_all(dirs[i], ec);
    }
  }
  return final_dir.string();
}

std::optional<std::string> resolve_checkpoint(const std::string& root, const std::string& which,
                                              const std::string& flag) {
  auto from_latest = [&flag](const fs::path& dir, bool required) -> std::optional<std::string> {
    const fs::path latest = dir / "latest";
    if (!fs::exists(latest)) {
      if (!required) return std::nullopt;
      throw Error(fmt::format("no checkpoint to resume: '{}' does not exist (no run has saved "
                              "into {} yet); use --resume auto to start fresh when there is none",
                              latest.string(), dir.string()));
    }
    std::string name = read_file_bytes(latest.string(), "checkpoint pointer");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    const fs::path target = dir / name;
    if (name.empty() || !fs::is_directory(target))
      throw Error(fmt::format("'{}' names '{}', which is not a checkpoint directory; point {} "
                              "at a step_* directory instead", latest.string(), name, flag));
    return target.string();
  };
  if (which == "auto") return from_latest(root, false);
  if (which == "latest") return from_latest(root, true);
  const fs::path path(which);
  if (fs::exists(path / kManifestFile)) return path.string();
  if (fs::exists(path / "latest")) return from_latest(path, true);
  throw Error(fmt::format("{} {}: not a checkpoint directory (no {}) and no 'latest' in it", flag, which,
                          kManifestFile));
}

GPTConfig checkpoint_model_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / kStateFile;
  GPTConfig cfg;
  try {
    const nlohmann::json model = nlohmann::json::parse(read_file_bytes(path.string(), "checkpoint state")).at("model");
    for (const auto& field : kGPTConfigFields) cfg.*field.member = model.at(field.name).get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("checkpoint state '{}' is unreadable: {}", path.string(), e.what()));
  }
  // The shape sizes every buffer that follows, so a damaged one must not get that far.
  for (const auto& field : kGPTConfigFields)
    if (cfg.*field.member < 1 || cfg.*field.member > (1 << 30))
      throw Error(fmt::format("checkpoint state '{}': model.{} is {}; expected 1 to 2^30", path.string(), field.name,
                              cfg.*field.member));
  if (cfg.channels % cfg.num_heads != 0 || cfg.padded_vocab_size < cfg.vocab_size)
    throw Error(fmt::format("checkpoint state '{}': model is not a valid shape (n_embd {} must be a multiple of "
                            "n_head {}, padded_vocab_size {} at least vocab_size {})",
                            path.string(), cfg.channels, cfg.num_heads, cfg.padded_vocab_size, cfg.vocab_size));
  const double params = static_cast<double>(cfg.num_layers) * 12.0 * cfg.channels * cfg.channels +
                        (static_cast<double>(cfg.padded_vocab_size) + cfg.max_seq_len) * cfg.channels;
  if (params > 1e12)
    throw Error(fmt::format("checkpoint state '{}': model (n_layer {}, n_embd {}, padded_vocab_size {}) would hold "
                            "{:.3g} parameters; it is damaged",
                            path.string(), cfg.num_layers, cfg.channels, cfg.padded_vocab_size, params));
  return cfg;
}

namespace {

// state[key] (or state[a][b]) as an integer of at least `min`, every problem naming the file.
int64_t state_int(const nlohmann::json& object, const char* key, int64_t min, const fs::path& path,
                  const std::string& prefix = "") {
  if (!object.is_object() || !object.contains(key))
    throw Error(fmt::format("checkpoint state '{}': {}{} is missing", path.string(), prefix, key));
  const nlohmann::json& value = object[key];
  if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > INT64_MAX) ||
      value.get<int64_t>() < min)
    throw Error(fmt::format("checkpoint state '{}': {}{} is {}; expected an integer of at least {}", path.string(),
                            prefix, key, value.dump(), min));
  return value.get<int64_t>();
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& dir, const GPTConfig& expected, bool model_only) {
  const fs::path root(dir);
  const fs::path manifest_path = root / kManifestFile;
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file_bytes(manifest_path.string(), "checkpoint manifest"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("checkpoint manifest '{}' is not valid JSON: {}", manifest_path.string(), e.what()));
  }
  if (!manifest.is_object() || !manifest.contains("files") || !manifest["files"].is_object())
    throw Error(fmt::format("checkpoint manifest '{}' is not an object with a \"files\" object", manifest_path.string()));
  if (manifest.value("format_version", nlohmann::json(-1)) != kCheckpointFormatVersion)
    throw Error(fmt::format("checkpoint '{}' has format version {}; this lmtrain reads version {}", dir,
                            manifest.value("format_version", nlohmann::json(-1)).dump(), kCheckpointFormatVersion));
  // Verify everything before reading any state.
  for (const char* file : {kModelFile, kOptimizerFile, kStateFile, kRecipeFile}) {
    if (model_only && std::string_view(file) == kOptimizerFile) continue;
    const fs::path path = root / file;
    if (!manifest["files"].contains(file))
      throw Error(fmt::format("checkpoint manifest '{}' does not list {}", manifest_path.string(), file));
    const auto& entry = manifest["files"][file];
    if (!entry.is_object() || !entry.contains("bytes") || !entry["bytes"].is_number_unsigned() ||
        !entry.contains("crc32c") || !entry["crc32c"].is_string())
      throw Error(fmt::format("checkpoint manifest '{}': the entry of {} is {}; expected {{\"bytes\": N, \"crc32c\": "
                              "\"hex\"}}",
                              manifest_path.string(), file, entry.dump()));
    if (!fs::exists(path)) throw Error(fmt::format("checkpoint file '{}' is missing", path.string()));
    const uintmax_t bytes = fs::file_size(path);
    if (bytes != entry["bytes"].get<uintmax_t>())
      throw Error(fmt::format("checkpoint file '{}' is {} bytes, the manifest says {} (truncated or "
                              "replaced); resume from an earlier checkpoint",
                              path.string(), bytes, entry["bytes"].get<uintmax_t>()));
    const std::string crc = crc32c_file(path.string());
    if (crc != entry["crc32c"].get<std::string>())
      throw Error(fmt::format("checkpoint file '{}' fails its checksum (crc32c {} != {}): it is "
                              "corrupted; resume from an earlier checkpoint",
                              path.string(), crc, entry["crc32c"].get<std::string>()));
  }
  LoadedCheckpoint out;
  out.dir = dir;
  const fs::path state_path = root / kStateFile;
  try {
    const nlohmann::json state = nlohmann::json::parse(read_file_bytes(state_path.string(), "checkpoint state"));
    if (!state.is_object() || !state.contains("model") || !state["model"].is_object())
      throw Error(fmt::format("checkpoint state '{}' is not an object with a \"model\" object", state_path.string()));
    const nlohmann::json want = model_json(expected);
    std::vector<std::string> differing;
    for (auto it = want.begin(); it != want.end(); ++it)
      if (state["model"].value(it.key(), nlohmann::json(-1)) != it.value())
        differing.push_back(fmt::format("model.{}: checkpoint {} vs recipe {}", it.key(),
                                        state["model"].value(it.key(), nlohmann::json(-1)).dump(), it.value().dump()));
    if (!differing.empty())
      throw Error(fmt::format("checkpoint '{}' holds a different model shape than the recipe:\n  {}", dir,
                              fmt::join(differing, "\n  ")));
    out.state.step = state_int(state, "step", 0, state_path);
    out.state.tokens_seen = state_int(state, "tokens_seen", 0, state_path);
    out.state.world_size = state_int(state, "world_size", 1, state_path);
    out.state.seed = state_int(state, "seed", INT64_MIN, state_path);
    if (!state.contains("data") || !state["data"].is_object())
      throw Error(fmt::format("checkpoint state '{}': data is missing or not an object", state_path.string()));
    const nlohmann::json& data = state["data"];
    if (data.value("sampler", nlohmann::json("")) != kSamplerName)
      throw Error(fmt::format("checkpoint '{}' records its data position for the sampler {} but this "
                              "lmtrain uses {}; it cannot continue that data stream. Start a new run "
                              "(or use an lmtrain of the same version)",
                              dir, data.value("sampler", nlohmann::json()).dump(), kSamplerName));
    out.state.data.epoch = static_cast<uint64_t>(state_int(data, "epoch", 0, state_path, "data."));
    out.state.data.shard = static_cast<uint64_t>(state_int(data, "shard", 0, state_path, "data."));
    out.state.data.window = static_cast<uint64_t>(state_int(data, "window", 0, state_path, "data."));
    out.state.data.window_tokens = state_int(data, "window_tokens", 0, state_path, "data.");
    out.state.data.num_files = state_int(data, "files", 0, state_path, "data.");
    out.state.data.num_tokens = state_int(data, "tokens", 0, state_path, "data.");
    out.state.optimizer_step = state_int(state.value("optimizer", nlohmann::json()), "step", 0, state_path, "optimizer.");
    if (state.contains("loss_scaler") && state["loss_scaler"].is_object()) {
      const nlohmann::json& scaler = state["loss_scaler"];
      LossScalerState s;
      s.scale = scaler.at("scale").get<double>();
      s.hysteresis_left = scaler.at("hysteresis_left").get<int64_t>();
      s.iteration = scaler.at("iteration").get<int64_t>();
      s.last_overflow = scaler.at("last_overflow").get<int64_t>();
      s.skipped_steps = scaler.at("skipped_steps").get<int64_t>();
      if (!(s.scale > 0) || s.hysteresis_left < 0 || s.iteration < 0 || s.skipped_steps < 0)
        throw Error(fmt::format("checkpoint '{}': trainer_state.json's loss_scaler is not valid ({})", dir,
                                scaler.dump()));
      out.state.loss_scaler = s;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("checkpoint state '{}' is unreadable: {}", state_path.string(), e.what()));
  }
  out.state.model = expected;
  out.state.recipe_yaml = read_file_bytes((root / kRecipeFile).string(), "checkpoint recipe");
  const auto layout = parameter_layout(expected);
  const size_t total = parameter_storage_count(expected);
  out.tensors.params = gather(read_safetensors((root / kModelFile).string()), layout, "", total);
  if (model_only) return out;
  SafeTensorsFile optimizer = read_safetensors((root / kOptimizerFile).string());
  out.tensors.adam_m = gather(optimizer, layout, "m.", total);
  out.tensors.adam_v = gather(optimizer, layout, "v.", total);
  return out;
}

}  // namespace lmt
