// Checkpoints (docs/checkpoints.md): one directory per step, published by an atomic rename
// after every file is synced, then `latest` is replaced atomically. Loading verifies every
// file's size and CRC-32C against the manifest before any state is touched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/gpt_config.h"
#include "model/loss_scaler.h"

namespace lmt {

inline constexpr int kCheckpointFormatVersion = 1;

// What a checkpoint holds besides the tensors.
struct CheckpointState {
  int64_t step = 0;          // optimizer steps completed
  int64_t tokens_seen = 0;
  int64_t world_size = 1;
  int64_t seed = 0;          // run.seed: initialization and the data order
  // Where the training data stream stands (data/sampler.h), and the shape of the dataset it
  // refers to, so that a resume on different data is caught.
  struct DataState {
    uint64_t epoch = 0, shard = 0, window = 0;
    int64_t window_tokens = 0;  // T of the window grid (run.seq_len)
    int64_t num_files = 0;
    int64_t num_tokens = 0;
  } data;
  int64_t optimizer_step = 0;    // AdamW's t (bias correction)
  std::optional<LossScalerState> loss_scaler;  // fp16 runs: where the dynamic loss scale stands
  GPTConfig model;
  std::string recipe_yaml;       // the resolved recipe of the run that saved it
};

struct CheckpointTensors {
  std::vector<float> params, adam_m, adam_v;  // arena order (parameter_layout)
};

// One arena (the parameters, or an AdamW moment) handed over in pieces, so that the host never
// holds a whole copy of it: a stream calls sink(data, count) for consecutive pieces that cover
// the arena in order. The trainer's read the device a chunk at a time and, under ZeRO-1, take
// each chunk from the rank that owns it (a collective the other ranks run alongside).
using ArenaSink = std::function<void(const float* data, size_t count)>;
// Values per piece when an arena streams to or from a checkpoint's files (16 MiB of fp32).
inline constexpr size_t kCheckpointPiece = size_t{1} << 22;
using ArenaStream = std::function<void(const ArenaSink& sink)>;
struct CheckpointStreams {
  ArenaStream params, adam_m, adam_v;
};

// Writes root/step_NNNNNNNN, updates root/latest, then (keep_last > 0) removes the oldest
// complete checkpoints beyond the newest keep_last, sparing milestones (steps that are
// multiples of keep_every > 0). Returns the checkpoint directory. Each stream is called exactly
// once, params, adam_m then adam_v, even when the save fails (the rest are then drained into
// nothing before the error is thrown), so that collectives inside them stay matched across ranks.
std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const CheckpointStreams& streams, int64_t keep_last, int64_t keep_every);
// The same from whole host arrays (tests, tools).
std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const CheckpointTensors& tensors, int64_t keep_last, int64_t keep_every);

// root/step_NNNNNNNN, where save_checkpoint puts the checkpoint of `step`.
std::string checkpoint_step_directory(const std::string& root, int64_t step);

// The newest complete checkpoint (a step_* directory with its manifest) under root, if any.
std::optional<std::string> newest_checkpoint(const std::string& root);

// `which`: "latest" (root/latest), "auto" (latest if there is one, else nullopt) or a path to
// a step directory or to a root holding `latest`. Throws lmt::Error when a named checkpoint is
// missing or incomplete; `flag` names where `which` came from in the messages.
std::optional<std::string> resolve_checkpoint(const std::string& root, const std::string& which,
                                              const std::string& flag = "--resume");

struct LoadedCheckpoint {
  std::string dir;
  CheckpointState state;
  CheckpointTensors tensors;
};

// The model shape recorded in a checkpoint's trainer_state.json.
GPTConfig checkpoint_model_config(const std::string& dir);

// Verifies the manifest (every size and checksum) and reads everything; the model shape is
// checked against `expected` and every differing key is named. model_only: the optimizer's file
// (twice the model's size) is neither verified nor read, and tensors.adam_m/adam_v stay empty
// (eval, generate).
LoadedCheckpoint load_checkpoint(const std::string& dir, const GPTConfig& expected, bool model_only = false);

// The same checks, the state and the tensors' names, dtypes and shapes, but no tensor data
// (tensors stays empty): the trainer then reads the arenas in pieces straight into the model and
// the optimizer (read_checkpoint_arena), so a resume holds no whole copy of them on the host.
LoadedCheckpoint load_checkpoint_state(const std::string& dir, const GPTConfig& expected, bool model_only = false);

enum class CheckpointArena { kParams, kFirstMoment, kSecondMoment };
// Values [first, first + count) of one arena of checkpoint `dir` (of shape `model`), in pieces of
// at most 4M values, in order: sink(arena offset, data, count).
void read_checkpoint_arena(const std::string& dir, const GPTConfig& model, CheckpointArena which, size_t first,
                           size_t count, const std::function<void(size_t first, const float* data, size_t count)>& sink);

}  // namespace lmt
