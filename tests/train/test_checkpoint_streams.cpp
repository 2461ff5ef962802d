// save_checkpoint from streams (train/checkpoint.h: the trainer hands the parameters and the
// AdamW moments over a piece at a time, so the host never holds a whole copy): the same bytes as
// a save from whole arrays, and every stream called exactly once, in order, even when the save
// fails, since under ZeRO-1 the moments' streams are collectives the other ranks run alongside.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"

namespace lmt {
namespace {

using Catch::Matchers::Contains;
using testing::TempDir;

CheckpointState tiny_state(int64_t step) {
  CheckpointState state;
  state.step = step;
  state.data.num_files = 1;
  state.data.window_tokens = 8;
  state.data.num_tokens = 100;
  state.model.max_seq_len = 8;
  state.model.vocab_size = 10;
  state.model.padded_vocab_size = 16;
  state.model.num_layers = 2;
  state.model.num_heads = 2;
  state.model.channels = 8;
  state.recipe_yaml = recipe_to_yaml(Recipe{});
  return state;
}

// Distinct values per arena and element, so that a piece out of place changes the bytes.
CheckpointTensors tensors_for(const CheckpointState& state) {
  const size_t n = parameter_storage_count(state.model);
  CheckpointTensors t{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n)};
  for (size_t i = 0; i < n; ++i) {
    t.params[i] = 0.001f * static_cast<float>(i);
    t.adam_m[i] = -0.5f * static_cast<float>(i);
    t.adam_v[i] = 2.0f + static_cast<float>(i);
  }
  return t;
}

// Streams `arena` in pieces of `piece` values, appending its name to `order` at each call.
ArenaStream pieces(const std::vector<float>& arena, size_t piece, std::string name, std::vector<std::string>& order) {
  return [&arena, piece, name, &order](const ArenaSink& sink) {
    order.push_back(name);
    for (size_t first = 0; first < arena.size(); first += piece)
      sink(arena.data() + first, std::min(piece, arena.size() - first));
  };
}

std::string read(const std::string& dir, const char* file) { return testing::read_file(dir + "/" + file); }

// The error of a save of `t` under `root` in pieces of 3 values (the second moment's stream
// replaced by `m` when given); `order` receives the streams' names as they run.
std::string failed_save(const std::string& root, const CheckpointState& state, const CheckpointTensors& t,
                        std::vector<std::string>& order, const ArenaStream& m = {}) {
  return testing::error_message([&] {
    save_checkpoint(root, state,
                    CheckpointStreams{pieces(t.params, 3, "params", order),
                                      m ? m : pieces(t.adam_m, 3, "m", order),
                                      pieces(t.adam_v, 3, "v", order)},
                    0, 0);
  });
}

}  // namespace

TEST_CASE("checkpoint: a save from streams in pieces writes the bytes of a save from whole arrays",
          "[train][checkpoint]") {
  TempDir whole_dir, streamed_dir;
  const CheckpointState state = tiny_state(4);
  const CheckpointTensors t = tensors_for(state);
  const std::string whole = save_checkpoint((whole_dir.path() / "run").string(), state, t, 0, 0);
  // 7 values a piece: pieces cross every tensor boundary.
  std::vector<std::string> order;
  const std::string streamed = save_checkpoint(
      (streamed_dir.path() / "run").string(), state,
      CheckpointStreams{pieces(t.params, 7, "params", order), pieces(t.adam_m, 7, "m", order),
                        pieces(t.adam_v, 7, "v", order)},
      0, 0);
  CHECK(order == std::vector<std::string>{"params", "m", "v"});
  for (const char* file : {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "manifest.json"}) {
    INFO(file);
    CHECK(read(streamed, file) == read(whole, file));
  }
  const LoadedCheckpoint loaded = load_checkpoint(streamed, state.model);
  CHECK(loaded.tensors.params == t.params);
  CHECK(loaded.tensors.adam_m == t.adam_m);
  CHECK(loaded.tensors.adam_v == t.adam_v);
}

TEST_CASE("checkpoint: a failed save still runs every stream once, in order, and keeps nothing", "[train][checkpoint]") {
  TempDir dir;
  const std::string root = (dir.path() / "run").string();
  const CheckpointState good_state = tiny_state(1);
  const CheckpointTensors good = tensors_for(good_state);
  save_checkpoint(root, good_state, good, 0, 0);
  const std::string latest = testing::read_file(dir.path() / "run" / "latest");
  const CheckpointState state = tiny_state(2);

  SECTION("a NaN in the parameters, found before the moments are streamed") {
    CheckpointTensors bad = good;
    bad.params[5] = std::nanf("");
    std::vector<std::string> order;
    const std::string message = failed_save(root, state, bad, order);
    CHECK_THAT(message, Contains("refusing to save checkpoint") && Contains("the model tensor 'wte'") &&
                            Contains("1 non-finite value") && Contains("the previous one is intact"));
    CHECK(order == std::vector<std::string>{"params", "m", "v"});
  }
  SECTION("an infinity in the second moment, the last stream") {
    CheckpointTensors bad = good;
    bad.adam_v.back() = INFINITY;
    std::vector<std::string> order;
    const std::string message = failed_save(root, state, bad, order);
    CHECK_THAT(message, Contains("the optimizer tensor 'v.lnfb'") && Contains("1 non-finite value"));
    CHECK(order == std::vector<std::string>{"params", "m", "v"});
  }
  SECTION("a root that cannot be created, before any file") {
    testing::write_file(dir.path() / "blocker", "a file where the directory should go");
    std::vector<std::string> order;
    const std::string message = failed_save((dir.path() / "blocker" / "run").string(), state, good, order);
    CHECK_THAT(message, Contains("blocker"));
    CHECK(order == std::vector<std::string>{"params", "m", "v"});
  }
  SECTION("a stream that fails is not followed by the others (their peers may be gone)") {
    std::vector<std::string> order;
    const ArenaStream broken = [&](const ArenaSink& sink) {
      order.push_back("m");
      sink(good.adam_m.data(), 4);
      throw Error("peer 1 lost");
    };
    const std::string message = failed_save(root, state, good, order, broken);
    CHECK_THAT(message, Contains("peer 1 lost"));
    CHECK(order == std::vector<std::string>{"params", "m"});
  }
  CHECK_FALSE(std::filesystem::exists(dir.path() / "run" / "step_00000002"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "run" / "step_00000002.partial"));
  CHECK(testing::read_file(dir.path() / "run" / "latest") == latest);
}

}  // namespace lmt

namespace lmt {

// A resume reads the arenas straight into the model and (a ZeRO-1 rank's shard of) the optimizer:
// any range, across tensor boundaries, must give the values load_checkpoint gives.
TEST_CASE("checkpoint: read_checkpoint_arena reads any range of each arena, as load_checkpoint does",
          "[train][checkpoint]") {
  TempDir dir;
  const CheckpointState state = tiny_state(3);
  const CheckpointTensors t = tensors_for(state);
  const std::string saved = save_checkpoint((dir.path() / "run").string(), state, t, 0, 0);
  const LoadedCheckpoint header_only = load_checkpoint_state(saved, state.model);
  CHECK(header_only.state.step == 3);
  CHECK(header_only.tensors.params.empty());
  const size_t n = t.params.size();
  const std::vector<std::pair<CheckpointArena, const std::vector<float>*>> arenas = {
      {CheckpointArena::kParams, &t.params}, {CheckpointArena::kFirstMoment, &t.adam_m},
      {CheckpointArena::kSecondMoment, &t.adam_v}};
  // Whole, empty, one value, a shard's worth in the middle (crossing tensors), the tail.
  for (const auto& [first, count] : std::vector<std::pair<size_t, size_t>>{
           {0, n}, {0, 0}, {n - 1, 1}, {n / 3, n / 3 + 5}, {n / 2, n - n / 2}}) {
    for (const auto& [which, whole] : arenas) {
      INFO("arena " << static_cast<int>(which) << ", [" << first << ", " << first + count << ")");
      std::vector<float> got;
      size_t next = first;
      read_checkpoint_arena(saved, state.model, which, first, count, [&](size_t at, const float* data, size_t k) {
        CHECK(at == next);
        next += k;
        got.insert(got.end(), data, data + k);
      });
      CHECK(got == std::vector<float>(whole->begin() + static_cast<long>(first),
                                      whole->begin() + static_cast<long>(first + count)));
    }
  }
}

}  // namespace lmt
