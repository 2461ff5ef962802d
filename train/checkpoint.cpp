#include "train/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <utility>

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

// The tensors of one arena in a safetensors header (their data comes through a stream).
std::vector<TensorView> tensor_views(const std::vector<ParamTensor>& layout, const std::string& prefix) {
  std::vector<TensorView> views;
  for (const auto& t : layout) views.push_back({prefix + t.name, "F32", t.shape, nullptr, t.numel * sizeof(float)});
  return views;
}

// Every tensor of one arena must be in the file as F32 of its layout shape; checked before any
// buffer is sized or any state touched (a damaged trainer_state.json may describe a model far
// larger than the file).
void check_arena_tensors(const SafeTensorsIndex& index, const std::vector<ParamTensor>& layout,
                         const std::string& prefix) {
  for (const auto& t : layout) {
    const SafeTensorsIndex::Entry& tensor = index.at(prefix + t.name);
    if (tensor.shape != t.shape || tensor.dtype != "F32")
      throw Error(fmt::format("{}: tensor '{}' has dtype {} and shape [{}], expected F32 [{}]", index.path,
                              prefix + t.name, tensor.dtype, fmt::join(tensor.shape, ", "), fmt::join(t.shape, ", ")));
  }
}

// A checkpoint must never hold NaN or infinity (it would resume into the same blow-up, and an
// export would carry it on). Counts them per tensor as an arena streams past; check() names the
// first tensor holding one, with the count.
class FiniteCheck {
 public:
  FiniteCheck(const std::vector<ParamTensor>& layout, std::string prefix, std::string what)
      : layout_(layout), prefix_(std::move(prefix)), what_(std::move(what)), bad_(layout.size(), 0) {}
  void add(const float* data, size_t count) {
    for (size_t i = 0; i < count; ++i, ++position_) {
      while (tensor_ < layout_.size() && position_ >= layout_[tensor_].offset + layout_[tensor_].numel) ++tensor_;
      LMT_CHECK(tensor_ < layout_.size(), fmt::format("save_checkpoint: {} streamed more values than the layout holds",
                                                      what_));
      bad_[tensor_] += std::isfinite(data[i]) ? 0 : 1;
    }
  }
  void check(const fs::path& final_dir) const {
    const size_t total = layout_.back().offset + layout_.back().numel;
    LMT_CHECK(position_ == total,
              fmt::format("save_checkpoint: {} streamed {} values, the layout holds {}", what_, position_, total));
    for (size_t i = 0; i < layout_.size(); ++i)
      if (bad_[i] > 0)
        throw Error(fmt::format("refusing to save checkpoint {}: {} tensor '{}{}' holds {} non-finite value{} (NaN or "
                                "infinity); the checkpoint was not saved and the previous one is intact. The run has "
                                "diverged: resume from an earlier checkpoint with a lower optimizer.lr",
                                final_dir.string(), what_, prefix_, layout_[i].name, bad_[i], bad_[i] == 1 ? "" : "s"));
  }

 private:
  const std::vector<ParamTensor>& layout_;
  std::string prefix_, what_;
  std::vector<size_t> bad_;
  size_t position_ = 0, tensor_ = 0;
};

// Writes `file` from the arenas of `streams` (each with its header prefix), in that order; the
// file is complete only when every value streamed was finite.
void write_arenas(const fs::path& file, const fs::path& final_dir, const std::vector<ParamTensor>& layout,
                  const std::vector<std::pair<std::string, std::function<void(const ArenaSink&)>>>& streams,
                  const std::string& what, const std::map<std::string, std::string>& metadata) {
  std::vector<TensorView> views;
  for (const auto& [prefix, stream] : streams) {
    const auto some = tensor_views(layout, prefix);
    views.insert(views.end(), some.begin(), some.end());
  }
  SafetensorsWriter writer(file.string(), views, metadata);
  for (const auto& [prefix, stream] : streams) {
    FiniteCheck finite(layout, prefix, what);
    // A failed write stops the writing, not the stream: it may be a collective.
    std::exception_ptr failure;
    stream([&](const float* data, size_t count) {
      if (failure) return;
      try {
        finite.add(data, count);
        writer.write(data, count * sizeof(float));
      } catch (...) {
        failure = std::current_exception();
      }
    });
    if (failure) std::rethrow_exception(failure);
    finite.check(final_dir);
  }
  writer.finish();
}

ArenaStream vector_stream(const std::vector<float>& arena, size_t total, const char* what) {
  LMT_CHECK(arena.size() == total,
            fmt::format("save_checkpoint: {} holds {} values, the layout {}", what, arena.size(), total));
  return [&arena](const ArenaSink& sink) { sink(arena.data(), arena.size()); };
}

// "step_" and digits: the names save_checkpoint gives.
bool is_step_dir_name(const std::string& name) {
  return name.size() > 5 && name.size() <= 25 && name.rfind("step_", 0) == 0 &&
         std::all_of(name.begin() + 5, name.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// Complete checkpoints under root, oldest first.
std::vector<fs::path> complete_checkpoints(const fs::path& root) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code entry_ec;  // an entry that cannot be reached (a symlink loop) is no checkpoint
    if (is_step_dir_name(name) && entry.is_directory(entry_ec) && fs::exists(entry.path() / kManifestFile, entry_ec))
      dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

}  // namespace

std::optional<std::string> newest_checkpoint(const std::string& root) {
  const auto dirs = complete_checkpoints(root);
  if (dirs.empty()) return std::nullopt;
  return dirs.back().string();
}

std::string checkpoint_step_directory(const std::string& root, int64_t step) {
  return (fs::path(root) / step_dir_name(step)).string();
}

std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const CheckpointTensors& tensors, int64_t keep_last, int64_t keep_every) {
  const size_t total = parameter_storage_count(state.model);
  return save_checkpoint(root, state,
                         CheckpointStreams{vector_stream(tensors.params, total, "the model"),
                                           vector_stream(tensors.adam_m, total, "m"),
                                           vector_stream(tensors.adam_v, total, "v")},
                         keep_last, keep_every);
}

std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const CheckpointStreams& streams, int64_t keep_last, int64_t keep_every) {
  const fs::path root_path(root);
  const std::string name = step_dir_name(state.step);
  const fs::path final_dir = root_path / name;
  const fs::path temp_dir = root_path / (name + ".partial");
  // Every stream runs exactly once, in order, whatever fails (see checkpoint.h); except after a
  // stream itself failed (its collective, say): the others would fail alike, or wait for peers
  // that are gone.
  bool ran[3] = {false, false, false}, stream_failed = false;
  const ArenaStream* const in_order[3] = {&streams.params, &streams.adam_m, &streams.adam_v};
  auto stream = [&](int i) {
    return std::function<void(const ArenaSink&)>([&, i](const ArenaSink& sink) {
      ran[i] = true;
      try {
        (*in_order[i])(sink);
      } catch (...) {
        stream_failed = true;
        throw;
      }
    });
  };
  auto drain = [&] {
    for (int i = 0; i < 3 && !stream_failed; ++i)
      if (!ran[i]) stream(i)([](const float*, size_t) {});
  };
  std::error_code ec;
  try {
    create_directories_checked(root_path.string(), "checkpoint directory");
    // Leftovers of saves killed midway (this run is the only writer of this folder).
    for (const auto& entry : fs::directory_iterator(root_path, ec)) {
      const std::string entry_name = entry.path().filename().string();
      if (entry_name.rfind("step_", 0) == 0 &&
          (entry_name.ends_with(".partial") || entry_name.ends_with(".old")))
        fs::remove_all(entry.path(), ec);
    }
    create_directories_checked(temp_dir.string(), "checkpoint directory");
    const auto layout = parameter_layout(state.model);
    write_arenas(temp_dir / kModelFile, final_dir, layout, {{"", stream(0)}}, "the model",
                 {{"format", "lmtrain"}, {"layout", "llm.c stacked, fp32 master weights"}});
    write_arenas(temp_dir / kOptimizerFile, final_dir, layout, {{"m.", stream(1)}, {"v.", stream(2)}}, "the optimizer",
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
    drain();
    fs::remove_all(temp_dir, ec);
    throw Error(fmt::format("saving checkpoint {} failed: {}; the previous checkpoint is intact",
                            final_dir.string(), e.what()));
  } catch (...) {
    drain();
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
    if (file_kind(latest.string(), "checkpoint pointer") == fs::file_type::not_found) {
      if (!required) return std::nullopt;
      if (auto newest = newest_checkpoint(dir.string()))
        throw Error(fmt::format("'{}' does not exist, but {} holds complete checkpoints, the newest {}; "
                                "name the one to resume: {} {}",
                                latest.string(), dir.string(), *newest, flag, *newest));
      throw Error(fmt::format("no checkpoint to resume: '{}' does not exist (no run has saved "
                              "into {} yet); leave out {} to start a new run",
                              latest.string(), dir.string(), flag));
    }
    std::string name = read_file_bytes(latest.string(), "checkpoint pointer");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    // Only a step directory beside it: `latest` is ours to write, and following a path it names
    // elsewhere would resume (and then overwrite) another run's checkpoints.
    if (!is_step_dir_name(name))
      throw Error(fmt::format("'{}' names '{}', which is not a step_NNNNNNNN directory name; it may only name a "
                              "checkpoint in {}. Point {} at a step_* directory instead",
                              latest.string(), name.substr(0, 200), dir.string(), flag));
    const fs::path target = dir / name;
    if (file_kind(target.string(), "checkpoint") != fs::file_type::directory)
      throw Error(fmt::format("'{}' names '{}', which is not a checkpoint directory; point {} "
                              "at a step_* directory instead", latest.string(), name, flag));
    return target.string();
  };
  if (which == "auto") return from_latest(root, false);
  if (which == "latest") return from_latest(root, true);
  const fs::path path(which);
  if (file_kind((path / kManifestFile).string(), "checkpoint") != fs::file_type::not_found) return path.string();
  if (file_kind((path / "latest").string(), "checkpoint pointer") != fs::file_type::not_found)
    return from_latest(path, true);
  throw Error(fmt::format("{} {}: not a checkpoint directory (no {}) and no 'latest' in it", flag, which,
                          kManifestFile));
}

namespace {

// Reads trainer_state.json and manifest.json: every field with its type and range, so that a
// hand-edited or damaged file is refused naming the file and the key, before any of it is used.
class JsonFields {
 public:
  JsonFields(const fs::path& path, const char* what) : path_(path.string()) {
    try {
      storage_ = nlohmann::json::parse(read_file_bytes(path_, what));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{} '{}' is not valid JSON ({}); resume from another checkpoint", what, path_,
                              e.what()));
    }
    if (!storage_.is_object()) throw Error(fmt::format("{} '{}' is not a JSON object", what, path_));
    root_ = &storage_;
  }
  // The object under `parent`'s key `object_key` (one key, which may hold dots, e.g. a file name
  // in the manifest's "files"), for keys relative to it; messages name the whole path.
  JsonFields(const JsonFields& parent, const std::string& object_key, const std::string& name)
      : path_(parent.path_), prefix_(parent.prefix_ + object_key + "." + name + ".") {
    const nlohmann::json& object = parent.at(object_key);
    if (!object.is_object() || !object.contains(name)) parent.fail(object_key + "." + name, "is missing");
    root_ = &object[name];
    if (!root_->is_object()) parent.fail(object_key + "." + name, "must be an object");
  }
  JsonFields(const JsonFields&) = delete;

  bool has(const std::string& key) const { return find(key) != nullptr; }
  // `key` is a dotted path ("data.epoch").
  const nlohmann::json& at(const std::string& key) const {
    const nlohmann::json* value = find(key);
    if (!value) fail(key, "is missing");
    return *value;
  }
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const {
    const nlohmann::json& value = at(key);
    const bool too_big = value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    if (!value.is_number_integer() || too_big || value.get<int64_t>() < lo || value.get<int64_t>() > hi)
      fail(key, fmt::format("must be an integer from {} to {} (got {})", lo, hi, value.dump()));
    return value.get<int64_t>();
  }
  double number(const std::string& key) const {
    const nlohmann::json& value = at(key);
    if (!value.is_number()) fail(key, fmt::format("must be a number (got {})", value.dump()));
    return value.get<double>();
  }
  std::string string(const std::string& key) const {
    const nlohmann::json& value = at(key);
    if (!value.is_string()) fail(key, fmt::format("must be a string (got {})", value.dump()));
    return value.get<std::string>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(fmt::format("'{}': {}{} {}; the file is damaged or was edited by hand. Resume from another checkpoint",
                            path_, prefix_, key, problem.substr(0, 300)));
  }
  const std::string& path() const { return path_; }

 private:
  const nlohmann::json* find(const std::string& key) const {
    const nlohmann::json* node = root_;
    size_t begin = 0;
    while (true) {
      const size_t dot = key.find('.', begin);
      const std::string part = key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
      if (!node->is_object() || !node->contains(part)) return nullptr;
      node = &(*node)[part];
      if (dot == std::string::npos) return node;
      begin = dot + 1;
    }
  }

  std::string path_, prefix_;
  nlohmann::json storage_;
  const nlohmann::json* root_ = nullptr;
};

// The bounds of trainer_state.json: far beyond any real run, so that only damage reaches them.
constexpr int64_t kMaxSteps = int64_t{1} << 40;   // 1.1e12 optimizer steps
constexpr int64_t kMaxTokens = int64_t{1} << 53;  // 9e15 tokens (seen, or in a dataset)
constexpr int64_t kMaxWorldSize = int64_t{1} << 20;
constexpr int64_t kMaxDimension = 2147483647;     // what GPTConfig holds

GPTConfig model_config(const JsonFields& state) {
  GPTConfig cfg;
  for (const auto& field : kGPTConfigFields)
    cfg.*field.member = static_cast<int>(state.integer(std::string("model.") + field.name, 1, kMaxDimension));
  // The shape sizes every buffer that follows, so a damaged one must not get that far.
  if (cfg.channels % cfg.num_heads != 0) state.fail("model.n_embd", "is not a multiple of model.n_head");
  if (cfg.padded_vocab_size < cfg.vocab_size) state.fail("model.padded_vocab_size", "is below model.vocab_size");
  const double params = static_cast<double>(cfg.num_layers) * 12.0 * cfg.channels * cfg.channels +
                        (static_cast<double>(cfg.padded_vocab_size) + cfg.max_seq_len) * cfg.channels;
  if (params > 1e12) state.fail("model", fmt::format("would hold {:.3g} parameters", params));
  return cfg;
}

}  // namespace

GPTConfig checkpoint_model_config(const std::string& dir) {
  return model_config(JsonFields(fs::path(dir) / kStateFile, "checkpoint state"));
}

LoadedCheckpoint load_checkpoint_state(const std::string& dir, const GPTConfig& expected, bool model_only) {
  const fs::path root(dir);
  const JsonFields manifest(root / kManifestFile, "checkpoint manifest");
  const int64_t version = manifest.integer("format_version", 0, INT32_MAX);
  if (version != kCheckpointFormatVersion)
    throw Error(fmt::format("checkpoint '{}' has format version {}; this lmtrain reads version {}", dir, version,
                            kCheckpointFormatVersion));
  if (!manifest.at("files").is_object()) manifest.fail("files", "must be an object");
  // Verify everything before reading any state.
  for (const char* file : {kModelFile, kOptimizerFile, kStateFile, kRecipeFile}) {
    if (model_only && std::string_view(file) == kOptimizerFile) continue;
    const fs::path path = root / file;
    if (!manifest.at("files").contains(file))
      throw Error(fmt::format("checkpoint manifest '{}' does not list {}", manifest.path(), file));
    const JsonFields entry(manifest, "files", file);
    const int64_t expected_bytes = entry.integer("bytes", 0, INT64_MAX);
    const std::string expected_crc = entry.string("crc32c");
    if (file_kind(path.string(), "checkpoint file") == fs::file_type::not_found)
      throw Error(fmt::format("checkpoint file '{}' is missing", path.string()));
    check_regular_file(path.string(), "checkpoint file");
    const uintmax_t bytes = fs::file_size(path);
    if (bytes != static_cast<uintmax_t>(expected_bytes))
      throw Error(fmt::format("checkpoint file '{}' is {} bytes, the manifest says {} (truncated or "
                              "replaced); resume from an earlier checkpoint",
                              path.string(), bytes, expected_bytes));
    const std::string crc = crc32c_file(path.string());
    if (crc != expected_crc)
      throw Error(fmt::format("checkpoint file '{}' fails its checksum (crc32c {} != {}): it is "
                              "corrupted; resume from an earlier checkpoint",
                              path.string(), crc, expected_crc));
  }
  LoadedCheckpoint out;
  out.dir = dir;
  const JsonFields state(root / kStateFile, "checkpoint state");
  const GPTConfig saved = model_config(state);
  std::vector<std::string> differing;
  for (const auto& field : kGPTConfigFields)
    if (saved.*field.member != expected.*field.member)
      differing.push_back(fmt::format("model.{}: checkpoint {} vs recipe {}", field.name, saved.*field.member,
                                      expected.*field.member));
  if (!differing.empty())
    throw Error(fmt::format("checkpoint '{}' holds a different model shape than the recipe:\n  {}", dir,
                            fmt::join(differing, "\n  ")));
  out.state.step = state.integer("step", 0, kMaxSteps);
  out.state.tokens_seen = state.integer("tokens_seen", 0, kMaxTokens);
  out.state.world_size = state.integer("world_size", 1, kMaxWorldSize);
  out.state.seed = state.integer("seed", INT64_MIN, INT64_MAX);
  const std::string sampler = state.has("data.sampler") && state.at("data.sampler").is_string()
                                  ? state.string("data.sampler")
                                  : state.at("data.sampler").dump();
  if (sampler != kSamplerName)
    throw Error(fmt::format("checkpoint '{}' records its data position for the sampler {} but this "
                            "lmtrain uses {}; it cannot continue that data stream. Start a new run "
                            "(or use an lmtrain of the same version)",
                            dir, sampler, kSamplerName));
  auto& data = out.state.data;
  data.num_files = state.integer("data.files", 1, INT32_MAX);
  data.num_tokens = state.integer("data.tokens", 1, kMaxTokens);
  data.window_tokens = state.integer("data.window_tokens", 1, kMaxDimension);
  data.epoch = static_cast<uint64_t>(state.integer("data.epoch", 0, kMaxSteps));
  data.shard = static_cast<uint64_t>(state.integer("data.shard", 0, data.num_files - 1));
  data.window = static_cast<uint64_t>(state.integer("data.window", 0, data.num_tokens));
  // AdamW's t counts the applied steps: at most the steps done (fewer after skipped steps).
  out.state.optimizer_step = state.integer("optimizer.step", 0, out.state.step);
  if (state.has("loss_scaler") && !state.at("loss_scaler").is_null()) {
    LossScalerState s;
    s.scale = state.number("loss_scaler.scale");
    s.hysteresis_left = state.integer("loss_scaler.hysteresis_left", 0, kMaxSteps);
    s.iteration = state.integer("loss_scaler.iteration", 0, kMaxSteps);
    s.last_overflow = state.integer("loss_scaler.last_overflow", -1, s.iteration);
    s.skipped_steps = state.integer("loss_scaler.skipped_steps", 0, s.iteration);
    if (!(s.scale > 0) || !std::isfinite(s.scale)) state.fail("loss_scaler.scale", "must be a positive finite number");
    out.state.loss_scaler = s;
  }
  out.state.model = expected;
  out.state.recipe_yaml = read_file_bytes((root / kRecipeFile).string(), "checkpoint recipe");
  const auto layout = parameter_layout(expected);
  check_arena_tensors(read_safetensors_index((root / kModelFile).string()), layout, "");
  if (model_only) return out;
  const SafeTensorsIndex optimizer = read_safetensors_index((root / kOptimizerFile).string());
  check_arena_tensors(optimizer, layout, "m.");
  check_arena_tensors(optimizer, layout, "v.");
  return out;
}

void read_checkpoint_arena(const std::string& dir, const GPTConfig& model, CheckpointArena which, size_t first,
                           size_t count, const std::function<void(size_t first, const float* data, size_t count)>& sink) {
  const auto layout = parameter_layout(model);
  const size_t total = parameter_storage_count(model);
  LMT_CHECK(first <= total && count <= total - first,
            fmt::format("read_checkpoint_arena: [{}, {}) is outside the {} values", first, first + count, total));
  const fs::path root(dir);
  const std::string prefix = which == CheckpointArena::kParams ? "" : which == CheckpointArena::kFirstMoment ? "m." : "v.";
  const SafeTensorsIndex index =
      read_safetensors_index((root / (which == CheckpointArena::kParams ? kModelFile : kOptimizerFile)).string());
  check_arena_tensors(index, layout, prefix);
  std::vector<float> piece(std::min(kCheckpointPiece, std::max<size_t>(count, 1)));
  for (const auto& t : layout) {
    const size_t lo = std::max(first, t.offset), hi = std::min(first + count, t.offset + t.numel);
    for (size_t at = lo; at < hi; at += piece.size()) {
      const size_t n = std::min(piece.size(), hi - at);
      read_safetensors_bytes(index, prefix + t.name, (at - t.offset) * sizeof(float), n * sizeof(float), piece.data());
      sink(at, piece.data(), n);
    }
  }
}

LoadedCheckpoint load_checkpoint(const std::string& dir, const GPTConfig& expected, bool model_only) {
  LoadedCheckpoint out = load_checkpoint_state(dir, expected, model_only);
  const size_t total = parameter_storage_count(expected);
  auto whole = [&](CheckpointArena which) {
    std::vector<float> arena(total);
    read_checkpoint_arena(dir, expected, which, 0, total, [&](size_t first, const float* data, size_t count) {
      std::copy(data, data + count, arena.begin() + static_cast<std::ptrdiff_t>(first));
    });
    return arena;
  };
  out.tensors.params = whole(CheckpointArena::kParams);
  if (model_only) return out;
  out.tensors.adam_m = whole(CheckpointArena::kFirstMoment);
  out.tensors.adam_v = whole(CheckpointArena::kSecondMoment);
  return out;
}

}  // namespace lmt
