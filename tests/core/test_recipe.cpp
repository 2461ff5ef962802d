// Recipe parsing (YAML -> Recipe), validation, --set overrides and the YAML round trip.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/recipe.h"
#include "tests/test_util.h"

using Catch::Matchers::Contains;
using lmt::LoadedRecipe;
using lmt::parse_recipe_text;
using lmt::Recipe;
using lmt::testing::error_message;
namespace fs = std::filesystem;

namespace {

// The smallest recipe that validates: a batch size and a data source that needs no files.
const char* kValidBase =
    "run:\n"
    "  micro_batch_size: 4\n"
    "data:\n"
    "  source: synthetic\n";

LoadedRecipe parse(const std::string& text) { return parse_recipe_text(text, "x.yaml"); }

std::string parse_error(const std::string& text) {
  return error_message([&] { parse(text); });
}

std::string validate_error(const std::string& text, int64_t world = 1) {
  LoadedRecipe loaded = parse(text);
  return error_message([&] { lmt::validate_recipe(loaded, world); });
}

LoadedRecipe parse_and_validate(const std::string& text, int64_t world = 1) {
  LoadedRecipe loaded = parse(text);
  lmt::validate_recipe(loaded, world);
  return loaded;
}

// A recipe text with the three batch keys (0 = leave the key out).
std::string batch_recipe(int64_t micro, int64_t accum, int64_t global) {
  std::string text = "run:\n  steps: 10\n";
  if (micro) text += "  micro_batch_size: " + std::to_string(micro) + "\n";
  if (accum) text += "  grad_accum_steps: " + std::to_string(accum) + "\n";
  if (global) text += "  global_batch_size: " + std::to_string(global) + "\n";
  text += "data:\n  source: synthetic\n";
  return text;
}

bool contains_regex(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

std::vector<fs::path> recipe_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(lmt::testing::source_dir() / "recipes"))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

// ---- parsing ----------------------------------------------------------------------------------

TEST_CASE("parse_recipe_text: keys not given keep the documented defaults", "[recipe][parse]") {
  LoadedRecipe loaded = parse("run:\n  steps: 5\n");
  const Recipe& r = loaded.recipe;
  const Recipe defaults;
  CHECK(r.run.steps == 5);
  CHECK(r.run.name == "run");
  CHECK(r.run.out_dir == "runs");
  CHECK(r.run.seed == 1337);
  CHECK(r.run.seq_len == 1024);
  CHECK(r.run.micro_batch_size == 0);
  CHECK(r.run.device == lmt::DeviceKind::kAuto);
  CHECK(r.model.n_layer == 12);
  CHECK(r.model.n_head == 12);
  CHECK(r.model.n_embd == 768);
  CHECK(r.model.vocab_pad_to == 128);
  CHECK(r.model.init_std == 0.02);
  CHECK(r.data.source == lmt::DataSource::kShards);
  CHECK(r.data.synthetic.vocab_size == 32);
  CHECK(r.optimizer.name == lmt::OptimizerKind::kAdamW);
  CHECK(r.optimizer.lr == 6e-4);
  CHECK(r.optimizer.beta2 == 0.95);
  CHECK(r.schedule.decay == lmt::LrDecay::kCosine);
  CHECK(r.precision.dtype == lmt::DType::kF32);
  CHECK(r.eval.batches == 20);
  CHECK(r.log.every == 10);
  // Only the key that was written has an origin; the rest are defaults.
  CHECK(loaded.origins.size() == 1);
  CHECK(loaded.origins.at("run.steps") == "x.yaml:2:10");
  CHECK(loaded.path == "x.yaml");
  // Everything but run.steps is the default: compare through the YAML printer.
  Recipe expected = defaults;
  expected.run.steps = 5;
  CHECK(lmt::recipe_to_yaml(r) == lmt::recipe_to_yaml(expected));
}

TEST_CASE("parse_recipe_text: nested sections and every scalar type", "[recipe][parse]") {
  LoadedRecipe loaded = parse(
      "run:\n"
      "  name: tiny\n"
      "  seq_len: 16\n"
      "model:\n"
      "  n_layer: 2\n"
      "  init_std: 0.01\n"
      "data:\n"
      "  source: synthetic\n"
      "  synthetic:\n"
      "    vocab_size: 8\n"
      "    order: 3\n"
      "optimizer: {lr: 1.0e-3, beta2: 0.99}\n"
      "schedule:\n"
      "  decay: wsd\n");
  const Recipe& r = loaded.recipe;
  CHECK(r.run.name == "tiny");
  CHECK(r.run.seq_len == 16);
  CHECK(r.model.n_layer == 2);
  CHECK(r.model.init_std == 0.01);
  CHECK(r.data.source == lmt::DataSource::kSynthetic);
  CHECK(r.data.synthetic.vocab_size == 8);
  CHECK(r.data.synthetic.order == 3);
  CHECK(r.data.synthetic.branching == 4);  // default inside a nested section
  CHECK(r.optimizer.lr == 1e-3);
  CHECK(r.optimizer.beta2 == 0.99);
  CHECK(r.schedule.decay == lmt::LrDecay::kWsd);
  CHECK(loaded.origins.at("data.synthetic.order") == "x.yaml:11:12");
  CHECK(loaded.origins.at("model.n_layer") == "x.yaml:5:12");
  CHECK(loaded.origins.count("data.synthetic") == 0);  // sections are not keys
}

TEST_CASE("parse_recipe_text: unknown top-level key names it, suggests, and gives line:col",
          "[recipe][parse][errors]") {
  const std::string msg = parse_error(
      "run:\n"
      "  steps: 10\n"
      "modle:\n"
      "  n_layer: 2\n");
  CHECK_THAT(msg, Contains("unknown key 'modle'"));
  CHECK_THAT(msg, Contains("did you mean 'model'"));
  CHECK_THAT(msg, Contains("x.yaml:3:1"));
  CHECK_THAT(msg, Contains("1 problem)"));
}

TEST_CASE("parse_recipe_text: unknown key on line 2 reports x.yaml:2:1", "[recipe][parse][errors]") {
  const std::string msg = parse_error("model:\nmodle:\n  n_layer: 2\n");
  CHECK_THAT(msg, Contains("x.yaml:2:1: unknown key 'modle' (did you mean 'model'?)"));
}

TEST_CASE("parse_recipe_text: unknown nested key suggests the close sibling", "[recipe][parse][errors]") {
  const std::string msg = parse_error("model: {n_layr: 2}\n");
  CHECK_THAT(msg, Contains("unknown key 'model.n_layr'"));
  CHECK_THAT(msg, Contains("did you mean 'model.n_layer'"));
  CHECK_THAT(msg, Contains("x.yaml:1:9"));
}

TEST_CASE("parse_recipe_text: a key in the wrong section suggests its full path", "[recipe][parse][errors]") {
  const std::string msg = parse_error("run: {n_layer: 2}\n");
  CHECK_THAT(msg, Contains("unknown key 'run.n_layer'"));
  CHECK_THAT(msg, Contains("did you mean 'model.n_layer'"));
}

TEST_CASE("parse_recipe_text: an unknown key with no close match lists the valid keys",
          "[recipe][parse][errors]") {
  const std::string msg = parse_error("precision:\n  zzzzzz: 1\n");
  CHECK_THAT(msg, Contains("unknown key 'precision.zzzzzz'"));
  CHECK_THAT(msg, Contains("valid keys here: dtype"));
  CHECK_THAT(msg, !Contains("did you mean"));
}

TEST_CASE("parse_recipe_text: a word for an integer names the key path and line", "[recipe][parse][errors]") {
  const std::string msg = parse_error("run:\n  steps: 3\nmodel:\n  n_layer: twelve\n");
  CHECK_THAT(msg, Contains("expected an integer, got 'twelve'"));
  CHECK_THAT(msg, Contains("model.n_layer"));
  CHECK_THAT(msg, Contains("x.yaml:4:12: model.n_layer: expected an integer, got 'twelve'"));
}

TEST_CASE("parse_recipe_text: integers refuse fractions but accept integral floats",
          "[recipe][parse][errors]") {
  SECTION("2.5 is not an integer") {
    const std::string msg = parse_error("model:\n  n_layer: 2.5\n");
    CHECK_THAT(msg, Contains("x.yaml:2:12: model.n_layer: expected an integer, got '2.5'"));
  }
  SECTION("1e3 is 1000") { CHECK(parse("run:\n  steps: 1e3\n").recipe.run.steps == 1000); }
  SECTION("2.0 is 2") { CHECK(parse("model:\n  n_layer: 2.0\n").recipe.model.n_layer == 2); }
  SECTION("a huge float is refused rather than overflowing") {
    CHECK_THAT(parse_error("run:\n  steps: 1e30\n"), Contains("run.steps: '1e30' is too large for an integer here"));
  }
  SECTION("a word for a float") {
    CHECK_THAT(parse_error("optimizer:\n  lr: fast\n"),
               Contains("x.yaml:2:7: optimizer.lr: expected a number, got 'fast'"));
  }
  SECTION("a list or mapping for a scalar") {
    CHECK_THAT(parse_error("model:\n  n_layer: [1, 2]\n"), Contains("model.n_layer: expected an integer, got a list"));
    CHECK_THAT(parse_error("model:\n  n_layer: {a: 1}\n"),
               Contains("model.n_layer: expected an integer, got a mapping"));
    CHECK_THAT(parse_error("model:\n  n_layer:\n"), Contains("model.n_layer: expected an integer, got nothing"));
  }
}

TEST_CASE("parse_recipe_text: a section given a scalar", "[recipe][parse][errors]") {
  const std::string msg = parse_error("run:\n  steps: 2\nmodel: 12\n");
  CHECK_THAT(msg, Contains("x.yaml:3:8: model: expected a mapping of keys (section 'model'), got '12'"));
  CHECK_THAT(parse_error("data:\n  synthetic: 5\n"),
             Contains("data.synthetic: expected a mapping of keys (section 'data.synthetic')"));
}

TEST_CASE("parse_recipe_text: invalid YAML syntax reports a location", "[recipe][parse][errors]") {
  const std::string msg = parse_error("run:\n  steps: [1, 2\nmodel:\n  n_layer: 2\n");
  CHECK_THAT(msg, Contains("invalid YAML"));
  CHECK(contains_regex(msg, R"(^x\.yaml:[0-9]+:[0-9]+: invalid YAML)"));

  const std::string tabs = parse_error("run:\n  steps: 2\n   bad indent: [\n");
  CHECK(contains_regex(tabs, R"(^x\.yaml:[0-9]+:[0-9]+: invalid YAML)"));
}

TEST_CASE("parse_recipe_text: several problems are reported together", "[recipe][parse][errors]") {
  const std::string msg = parse_error(
      "modle:\n"
      "  n_layer: 2\n"
      "run:\n"
      "  steps: ten\n"
      "  sed: 3\n"
      "optimizer:\n"
      "  lr: fast\n");
  CHECK_THAT(msg, Contains("invalid recipe x.yaml (4 problems):"));
  CHECK_THAT(msg, Contains("x.yaml:1:1: unknown key 'modle'"));
  CHECK_THAT(msg, Contains("x.yaml:4:10: run.steps: expected an integer, got 'ten'"));
  CHECK_THAT(msg, Contains("unknown key 'run.sed' (did you mean 'run.seed'?)"));
  CHECK_THAT(msg, Contains("x.yaml:7:7: optimizer.lr: expected a number, got 'fast'"));
  // One problem per line.
  CHECK(std::count(msg.begin(), msg.end(), '\n') == 4);
}

TEST_CASE("parse_recipe_text: an empty recipe and a non-mapping recipe are errors", "[recipe][parse][errors]") {
  CHECK_THAT(parse_error(""), Contains("x.yaml: the recipe is empty"));
  CHECK_THAT(parse_error("# only a comment\n"), Contains("x.yaml: the recipe is empty"));
  CHECK_THAT(parse_error("- run\n- model\n"), Contains("a recipe is a mapping of sections"));
  CHECK_THAT(parse_error("just a word\n"), Contains("a recipe is a mapping of sections"));
}

// YAML requires the keys of a mapping to be unique. A repeated key must not be silently dropped:
// the user who edits the second copy would see no effect and no message.
TEST_CASE("parse_recipe_text: a repeated key is an error, not silently ignored", "[recipe][parse][errors]") {
  const std::string text =
      "run:\n"
      "  steps: 10\n"
      "  micro_batch_size: 4\n"
      "  steps: 20\n";
  std::string msg;
  try {
    const LoadedRecipe loaded = parse(text);
    FAIL_CHECK("a repeated run.steps was accepted; run.steps = " << loaded.recipe.run.steps
                                                                 << " (the other value was dropped silently)");
  } catch (const lmt::Error& e) {
    msg = e.what();
  }
  if (!msg.empty()) {
    CHECK_THAT(msg, Contains("run.steps"));
    CHECK_THAT(msg, Contains("x.yaml:4"));
  }
}

TEST_CASE("parse_recipe_text: keys of a repeated section are not skipped unchecked", "[recipe][parse][errors]") {
  // The second model: section holds a typo; it must not vanish without a message.
  const std::string text =
      "run:\n"
      "  micro_batch_size: 4\n"
      "model:\n"
      "  n_layer: 2\n"
      "data:\n"
      "  source: synthetic\n"
      "model:\n"
      "  n_layr: 6\n";
  std::string msg;
  try {
    const LoadedRecipe loaded = parse(text);
    FAIL_CHECK("the repeated model: section (with the unknown key n_layr) was accepted; model.n_layer = "
               << loaded.recipe.model.n_layer);
  } catch (const lmt::Error& e) {
    msg = e.what();
  }
  if (!msg.empty()) {
    CHECK_THAT(msg, Contains("model"));
    CHECK_THAT(msg, Contains("x.yaml:"));
  }
}

TEST_CASE("load_recipe: a missing file is an lmt::Error naming it", "[recipe][parse][errors]") {
  const std::string msg = error_message([] { lmt::load_recipe("/nonexistent/dir/r.yaml"); });
  CHECK_THAT(msg, Contains("recipe '/nonexistent/dir/r.yaml' does not exist"));
}

TEST_CASE("load_recipe: a directory, a device, a FIFO and a symlink loop are named as such, without reading",
          "[recipe][parse][errors]") {
  lmt::testing::TempDir dir;
  CHECK_THAT(error_message([&] { lmt::load_recipe(dir.path().string()); }), Contains("is a directory"));
  // /dev/zero would be read without end, a FIFO with no writer would block forever.
  CHECK_THAT(error_message([] { lmt::load_recipe("/dev/zero"); }), Contains("'/dev/zero' is not a regular file"));
  const std::string fifo = (dir.path() / "fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(error_message([&] { lmt::load_recipe(fifo); }), Contains("is not a regular file"));
  fs::create_symlink("b", dir.path() / "a");
  fs::create_symlink("a", dir.path() / "b");
  CHECK_THAT(error_message([&] { lmt::load_recipe((dir.path() / "a").string()); }),
             Contains("cannot be reached: Too many levels of symbolic links"));
  lmt::testing::write_file(dir.path() / "big.yaml", std::string((16 << 20) + 1, '#'));
  CHECK_THAT(error_message([&] { lmt::load_recipe((dir.path() / "big.yaml").string()); }), Contains("at most 16 MiB"));
}

TEST_CASE("recipe_keys: every leaf once, in declaration order, no sections", "[recipe][keys]") {
  const auto keys = lmt::recipe_keys();
  REQUIRE(keys.size() >= 40);
  CHECK(keys.front().first == "run.name");
  CHECK(keys.back().first == "distributed.bucket_mb");
  std::set<std::string> unique;
  for (const auto& [key, help] : keys) {
    INFO(key);
    CHECK(unique.insert(key).second);
    CHECK_FALSE(help.empty());
    CHECK(key.find('.') != std::string::npos);
  }
  CHECK(unique.count("model.n_layer") == 1);
  CHECK(unique.count("data.synthetic.vocab_size") == 1);
  CHECK(unique.count("data.synthetic") == 0);
  CHECK(unique.count("run") == 0);
}

// ---- validation -------------------------------------------------------------------------------

TEST_CASE("validate_recipe: the minimal base recipe is valid", "[recipe][validate]") {
  LoadedRecipe loaded = parse_and_validate(kValidBase);
  CHECK(loaded.recipe.run.micro_batch_size == 4);
  CHECK(loaded.recipe.run.grad_accum_steps == 1);
  CHECK(loaded.recipe.run.global_batch_size == 4);
}

TEST_CASE("validate_recipe: a negative layer count names key, rule and line", "[recipe][validate]") {
  const std::string msg = validate_error(std::string(kValidBase) + "model:\n  n_layer: -1\n");
  CHECK_THAT(msg, Contains("model.n_layer"));
  CHECK_THAT(msg, Contains("must be at least 1"));
  CHECK_THAT(msg, Contains("x.yaml:6:12: model.n_layer: must be at least 1 (got -1)"));
  CHECK_THAT(msg, Contains("(1 problem)"));
}

TEST_CASE("validate_recipe: n_embd must be divisible by n_head", "[recipe][validate]") {
  const std::string msg = validate_error(std::string(kValidBase) + "model:\n  n_head: 12\n  n_embd: 100\n");
  CHECK_THAT(msg, Contains("x.yaml:7:11: model.n_embd: 100 is not divisible by model.n_head 12"));
}

TEST_CASE("validate_recipe: seq_len may not exceed max_seq_len", "[recipe][validate]") {
  const std::string msg = validate_error(
      "run:\n  micro_batch_size: 4\n  seq_len: 2048\ndata:\n  source: synthetic\nmodel:\n  max_seq_len: 1024\n");
  CHECK_THAT(msg, Contains("x.yaml:3:12: run.seq_len: 2048 exceeds model.max_seq_len 1024"));
  // Equal is fine.
  CHECK_NOTHROW(parse_and_validate(
      "run:\n  micro_batch_size: 4\n  seq_len: 1024\ndata:\n  source: synthetic\nmodel:\n  max_seq_len: 1024\n"));
}

// The ops count rows (B * T tokens of a micro-batch, padded vocabulary entries) in 32-bit ints and
// the kernels add a tile or a stride to a row index: both stop at 2^30 (issue 19).
TEST_CASE("validate_recipe: a micro-batch holds at most 2^30 tokens and a vocabulary at most 2^30 rows",
          "[recipe][validate]") {
  const std::string small_model = "model:\n  n_layer: 1\n  n_head: 1\n  n_embd: 32\n  max_seq_len: 1024\n";
  auto batch = [&](int64_t micro) {
    return "run:\n  micro_batch_size: " + std::to_string(micro) + "\n  seq_len: 1024\ndata:\n  source: synthetic\n" +
           small_model;
  };
  CHECK_NOTHROW(parse_and_validate(batch(1 << 20)));  // 2^30 tokens
  CHECK_THAT(validate_error(batch((1 << 20) + 1)),
             Contains("run.micro_batch_size: micro_batch_size 1048577 x seq_len 1024 = 1073742848 tokens per "
                      "micro-batch; lmtrain holds at most 2^30 (1073741824)"));
  auto vocab = [&](int64_t size) {
    return std::string(kValidBase) + small_model + "  vocab_size: " + std::to_string(size) + "\n  vocab_pad_to: 128\n";
  };
  CHECK_NOTHROW(parse_and_validate(vocab(1073741800)));  // padded to 2^30
  CHECK_THAT(validate_error(vocab(1073741825)),
             Contains("model.vocab_size: 1073741825 padded to a multiple of vocab_pad_to 128 is 1073741952; lmtrain "
                      "holds at most 2^30 (1073741824) vocabulary rows"));
}

TEST_CASE("parse: an enum typo lists the values and suggests one", "[recipe][validate]") {
  // Choice keys are enums: a name outside the table fails at parse time, at its line.
  const std::string msg = parse_error(std::string(kValidBase) + "schedule:\n  decay: cosin\n");
  CHECK_THAT(msg, Contains("x.yaml:6:10: schedule.decay: 'cosin' is not one of: cosine, linear, constant, wsd"));
  CHECK_THAT(msg, Contains("did you mean 'cosine'"));
  CHECK_THAT(parse_error(std::string(kValidBase) + "precision:\n  dtype: bf61\n"),
             Contains("did you mean 'bf16'"));
  // --set is checked the same way, and a choice key given as a list or nothing names its values.
  LoadedRecipe loaded = parse(kValidBase);
  CHECK_THAT(error_message([&] { lmt::apply_overrides(loaded, {"run.device=gpu"}); }),
             Contains("--set run.device=gpu: run.device: 'gpu' is not one of: auto, cpu, cuda"));
  CHECK_THAT(parse_error(std::string(kValidBase) + "  format: [llmc]\n"),
             Contains("data.format: expected one of: lmtrain, llmc, nanogpt, got a list"));
}

TEST_CASE("recipe_keys: a choice key's help lists its names", "[recipe][keys]") {
  for (const auto& [key, help] : lmt::recipe_keys()) {
    if (key == "schedule.decay") CHECK_THAT(help, Catch::StartsWith("cosine | linear | constant | wsd: "));
    if (key == "precision.dtype") CHECK_THAT(help, Catch::StartsWith("fp32 | bf16 | fp16: "));
  }
}

TEST_CASE("validate_recipe: a default that breaks a rule is reported as (default)", "[recipe][validate]") {
  // data.source defaults to shards, which needs data.train.
  const std::string msg = validate_error("run:\n  micro_batch_size: 4\n");
  CHECK_THAT(msg, Contains("x.yaml (default): data.train: source is 'shards' but no training shard"));
}

TEST_CASE("validate_recipe: all problems at once with their count", "[recipe][validate]") {
  const std::string msg = validate_error(
      "run:\n  micro_batch_size: 4\n  steps: 0\ndata:\n  source: synthetic\n"
      "model:\n  n_layer: 0\noptimizer:\n  lr: 20\n");
  CHECK_THAT(msg, Contains("(3 problems)"));
  CHECK_THAT(msg, Contains("run.steps: must be at least 1 (got 0)"));
  CHECK_THAT(msg, Contains("model.n_layer: must be at least 1 (got 0)"));
  CHECK_THAT(msg, Contains("x.yaml:9:7: optimizer.lr: must be in (0, 10] (got 20)"));
}

TEST_CASE("validate_recipe: world size below 1 is an error", "[recipe][validate]") {
  LoadedRecipe loaded = parse(kValidBase);
  CHECK_THAT(error_message([&] { lmt::validate_recipe(loaded, 0); }), Contains("world size must be at least 1"));
}

TEST_CASE("validate_recipe: batch relation global = micro x accum x world", "[recipe][validate][batch]") {
  struct Case {
    int64_t micro, accum, global, world;
    int64_t want_micro, want_accum, want_global;
  };
  const std::vector<Case> cases = {
      // micro + global -> accum
      {4, 0, 16, 1, 4, 4, 16},
      {4, 0, 16, 2, 4, 2, 16},
      {4, 0, 16, 4, 4, 1, 16},
      // accum + global -> micro
      {0, 2, 16, 1, 8, 2, 16},
      {0, 2, 16, 2, 4, 2, 16},
      {0, 2, 16, 4, 2, 2, 16},
      // micro + accum -> global
      {4, 3, 0, 1, 4, 3, 12},
      {4, 3, 0, 2, 4, 3, 24},
      {4, 3, 0, 4, 4, 3, 48},
      // all three consistent
      {4, 2, 8, 1, 4, 2, 8},
      {4, 2, 16, 2, 4, 2, 16},
      {4, 2, 32, 4, 4, 2, 32},
      // only micro -> accum 1
      {4, 0, 0, 1, 4, 1, 4},
      {4, 0, 0, 2, 4, 1, 8},
      {4, 0, 0, 4, 4, 1, 16},
      // only global -> accum 1, micro = global / world
      {0, 0, 8, 1, 8, 1, 8},
      {0, 0, 8, 2, 4, 1, 8},
      {0, 0, 8, 4, 2, 1, 8},
  };
  for (const auto& c : cases) {
    INFO("micro " << c.micro << " accum " << c.accum << " global " << c.global << " world " << c.world);
    LoadedRecipe loaded = parse(batch_recipe(c.micro, c.accum, c.global));
    REQUIRE_NOTHROW(lmt::validate_recipe(loaded, c.world));
    CHECK(loaded.recipe.run.micro_batch_size == c.want_micro);
    CHECK(loaded.recipe.run.grad_accum_steps == c.want_accum);
    CHECK(loaded.recipe.run.global_batch_size == c.want_global);
    CHECK(loaded.recipe.run.global_batch_size ==
          loaded.recipe.run.micro_batch_size * loaded.recipe.run.grad_accum_steps * c.world);
  }
}

TEST_CASE("validate_recipe: batch contradictions and impossible divisions", "[recipe][validate][batch]") {
  SECTION("three keys that disagree name run.global_batch_size and its line") {
    for (int64_t world : {1, 2, 4}) {
      INFO("world " << world);
      const std::string msg = validate_error(batch_recipe(4, 2, 10), world);
      CHECK_THAT(msg, Contains("x.yaml:5:22: run.global_batch_size: 10 contradicts micro_batch_size 4 x "
                               "grad_accum_steps 2 x world size " +
                               std::to_string(world)));
    }
  }
  SECTION("consistent at world 1 contradicts at world 2") {
    CHECK_NOTHROW(parse_and_validate(batch_recipe(4, 2, 8), 1));
    CHECK_THAT(validate_error(batch_recipe(4, 2, 8), 2), Contains("run.global_batch_size"));
  }
  SECTION("global not a multiple of micro x world") {
    CHECK_THAT(validate_error(batch_recipe(3, 0, 16), 1),
               Contains("run.global_batch_size: 16 is not a multiple of micro_batch_size 3 x world size 1 = 3"));
    CHECK_THAT(validate_error(batch_recipe(4, 0, 16), 8),  // 4 x 8 = 32 > 16
               Contains("16 is not a multiple of micro_batch_size 4 x world size 8 = 32"));
  }
  SECTION("global not a multiple of accum x world") {
    CHECK_THAT(validate_error(batch_recipe(0, 3, 16), 1),
               Contains("16 is not a multiple of grad_accum_steps 3 x world size 1"));
    CHECK_THAT(validate_error(batch_recipe(0, 2, 12), 4),
               Contains("12 is not a multiple of grad_accum_steps 2 x world size 4 = 8"));
  }
  SECTION("only global, not a multiple of the world size") {
    CHECK_THAT(validate_error(batch_recipe(0, 0, 6), 4),
               Contains("run.global_batch_size: 6 is not a multiple of the world size 4"));
  }
  SECTION("nothing given, or only accum") {
    CHECK_THAT(validate_error(batch_recipe(0, 0, 0), 1),
               Contains("run.micro_batch_size: give two of run.micro_batch_size, run.grad_accum_steps, "
                        "run.global_batch_size"));
    CHECK_THAT(validate_error(batch_recipe(0, 4, 0), 2), Contains("give two of"));
  }
  SECTION("negative batch keys are range errors") {
    CHECK_THAT(validate_error(batch_recipe(-4, 0, 0), 1),
               Contains("run.micro_batch_size: must be at least 0 (got -4)"));
  }
}

// ---- --set ------------------------------------------------------------------------------------

TEST_CASE("apply_overrides: sets values and records the --set origin", "[recipe][set]") {
  LoadedRecipe loaded = parse(kValidBase);
  lmt::apply_overrides(loaded, {"model.n_layer=6", "optimizer.lr=3e-4", "run.name=other",
                                "data.synthetic.vocab_size=8"});
  CHECK(loaded.recipe.model.n_layer == 6);
  CHECK(loaded.recipe.optimizer.lr == 3e-4);
  CHECK(loaded.recipe.run.name == "other");
  CHECK(loaded.recipe.data.synthetic.vocab_size == 8);
  CHECK(loaded.origins.at("model.n_layer") == "--set model.n_layer=6");
  CHECK(loaded.origins.at("data.synthetic.vocab_size") == "--set data.synthetic.vocab_size=8");
  // A later override of the same key wins.
  lmt::apply_overrides(loaded, {"model.n_layer=2", "model.n_layer=3"});
  CHECK(loaded.recipe.model.n_layer == 3);
  CHECK(loaded.origins.at("model.n_layer") == "--set model.n_layer=3");
  CHECK_NOTHROW(lmt::validate_recipe(loaded, 1));
}

TEST_CASE("apply_overrides: the --set origin shows up in validation messages", "[recipe][set]") {
  LoadedRecipe loaded = parse(std::string(kValidBase) + "model:\n  n_layer: 4\n");
  lmt::apply_overrides(loaded, {"model.n_layer=-1"});
  const std::string msg = error_message([&] { lmt::validate_recipe(loaded, 1); });
  CHECK_THAT(msg, Contains("--set model.n_layer=-1: model.n_layer: must be at least 1 (got -1)"));
  CHECK_THAT(msg, !Contains("x.yaml:6"));
}

TEST_CASE("apply_overrides: unknown keys get a suggestion", "[recipe][set][errors]") {
  LoadedRecipe loaded = parse(kValidBase);
  SECTION("misspelled leaf") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"model.n_layr=3"}); });
    CHECK_THAT(msg, Contains("--set model.n_layr=3: unknown key 'model.n_layr'"));
    CHECK_THAT(msg, Contains("did you mean"));
    CHECK_THAT(msg, Contains("n_layer"));
  }
  SECTION("misspelled section") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"modle.n_layer=3"}); });
    CHECK_THAT(msg, Contains("unknown key 'modle.n_layer'"));
    CHECK_THAT(msg, Contains("did you mean 'model.n_layer'"));
  }
  SECTION("key in the wrong section") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"run.n_layer=3"}); });
    CHECK_THAT(msg, Contains("did you mean 'model.n_layer'"));
  }
  CHECK(loaded.recipe.model.n_layer == 12);  // nothing changed
}

TEST_CASE("apply_overrides: malformed overrides", "[recipe][set][errors]") {
  LoadedRecipe loaded = parse(kValidBase);
  SECTION("bad value type") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"model.n_layer=abc"}); });
    CHECK_THAT(msg, Contains("--set model.n_layer=abc: model.n_layer: expected an integer, got 'abc'"));
    CHECK(loaded.recipe.model.n_layer == 12);
    CHECK(loaded.origins.count("model.n_layer") == 0);
  }
  SECTION("missing '='") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"model.n_layer"}); });
    CHECK_THAT(msg, Contains("--set model.n_layer: expected key.path=value"));
  }
  SECTION("empty key") {
    CHECK_THAT(error_message([&] { lmt::apply_overrides(loaded, {"=3"}); }), Contains("expected key.path=value"));
  }
  SECTION("setting a section") {
    const std::string msg = error_message([&] { lmt::apply_overrides(loaded, {"model=3"}); });
    CHECK_THAT(msg, Contains("'model' is a section"));
    const std::string nested = error_message([&] { lmt::apply_overrides(loaded, {"data.synthetic=3"}); });
    CHECK_THAT(nested, Contains("'data.synthetic' is a section"));
  }
  SECTION("several bad overrides are reported together") {
    const std::string msg =
        error_message([&] { lmt::apply_overrides(loaded, {"model.n_layer=x", "nokey", "model.zzz=1"}); });
    CHECK_THAT(msg, Contains("(3 problems)"));
  }
}

// ---- YAML round trip --------------------------------------------------------------------------

TEST_CASE("recipe_to_yaml: every recipe in recipes/ round-trips exactly", "[recipe][roundtrip]") {
  const auto files = recipe_files();
  REQUIRE(files.size() >= 6);
  for (const auto& file : files) {
    INFO(file.string());
    LoadedRecipe first = lmt::load_recipe(file.string());
    REQUIRE_NOTHROW(lmt::validate_recipe(first, 1));
    const std::string yaml1 = lmt::recipe_to_yaml(first.recipe);
    LoadedRecipe second = parse_recipe_text(yaml1, file.filename().string() + " (printed)");
    REQUIRE_NOTHROW(lmt::validate_recipe(second, 1));
    const std::string yaml2 = lmt::recipe_to_yaml(second.recipe);
    CHECK(yaml1 == yaml2);
    // The printed recipe sets every key.
    CHECK(second.origins.size() == lmt::recipe_keys().size());
    // Spot checks that the text holds the values and not just the same defaults twice.
    CHECK(second.recipe.model.n_layer == first.recipe.model.n_layer);
    CHECK(second.recipe.optimizer.lr == first.recipe.optimizer.lr);
    CHECK(second.recipe.run.name == first.recipe.run.name);
  }
}

TEST_CASE("recipe_to_yaml: awkward strings and extreme numbers round-trip", "[recipe][roundtrip]") {
  Recipe r;
  r.run.name = "a: b # c";
  r.run.out_dir = "it's \"quoted\"\tand\nmultiline";
  r.data.train = "";
  r.data.val = "null";
  r.checkpoint.dir = "yes";
  r.eval.sets = {{"n", "123"}, {"u", "ünïcödé"}, {"w", "  leading and trailing  "}};
  r.data.format = lmt::ShardFormat::kNanogpt;
  r.run.device = lmt::DeviceKind::kCuda;
  r.precision.dtype = lmt::DType::kBF16;
  r.schedule.decay = lmt::LrDecay::kWsd;
  r.seq_len_schedule.type = lmt::SeqLenScheduleKind::kFixedRoot;
  r.run.seed = std::numeric_limits<int64_t>::max();
  r.data.synthetic.seed = -9007199254740993LL;  // not representable as a double
  r.optimizer.lr = 0.1 + 0.2;
  r.optimizer.eps = 1e-300;
  r.optimizer.beta1 = 1.0 / 3.0;
  r.log.peak_tflops = 1.7976931348623157e308;
  r.model.init_std = -0.0;
  const std::string yaml1 = lmt::recipe_to_yaml(r);
  LoadedRecipe back = parse(yaml1);
  const Recipe& b = back.recipe;
  CHECK(b.run.name == r.run.name);
  CHECK(b.run.out_dir == r.run.out_dir);
  CHECK(b.data.train == r.data.train);
  CHECK(b.data.val == r.data.val);
  CHECK(b.checkpoint.dir == r.checkpoint.dir);
  CHECK(b.eval.sets == r.eval.sets);
  CHECK(b.data.format == r.data.format);
  CHECK(b.run.device == r.run.device);
  CHECK(b.precision.dtype == r.precision.dtype);
  CHECK(b.schedule.decay == r.schedule.decay);
  CHECK(b.seq_len_schedule.type == r.seq_len_schedule.type);
  CHECK(b.run.seed == r.run.seed);
  CHECK(b.data.synthetic.seed == r.data.synthetic.seed);
  CHECK(b.optimizer.lr == r.optimizer.lr);
  CHECK(b.optimizer.eps == r.optimizer.eps);
  CHECK(b.optimizer.beta1 == r.optimizer.beta1);
  CHECK(b.log.peak_tflops == r.log.peak_tflops);
  CHECK(lmt::recipe_to_yaml(b) == yaml1);
}

// ---- recipe files -----------------------------------------------------------------------------

TEST_CASE("recipes: each file starts with a comment giving its exact command", "[recipe][files]") {
  const auto files = recipe_files();
  REQUIRE(files.size() >= 6);
  const std::regex command(R"(lmtrain (train|plan|data|doctor)\b)");
  for (const auto& file : files) {
    INFO(file.string());
    const std::string text = lmt::testing::read_file(file);
    REQUIRE_FALSE(text.empty());
    CHECK(text.rfind("# ", 0) == 0);
    // The command sits in the leading comment block and names this very file.
    std::istringstream lines(text);
    std::string line;
    bool found = false;
    while (std::getline(lines, line) && !line.empty() && line[0] == '#') {
      if (std::regex_search(line, command) &&
          line.find("recipes/" + file.filename().string()) != std::string::npos)
        found = true;
    }
    CHECK(found);
    CHECK(std::regex_search(text, command));
  }
}

TEST_CASE("recipe_differences names each changed key with both values", "[recipe][diff]") {
  LoadedRecipe a = parse_and_validate(kValidBase);
  LoadedRecipe b = parse_and_validate(kValidBase);
  b.recipe.run.steps = a.recipe.run.steps + 5;
  b.recipe.schedule.decay = lmt::LrDecay::kLinear;
  const auto changes = lmt::recipe_differences(lmt::recipe_to_yaml(a.recipe), lmt::recipe_to_yaml(b.recipe));
  REQUIRE(changes.size() == 2);
  CHECK(changes[0] == fmt::format("run.steps: {} -> {}", a.recipe.run.steps, b.recipe.run.steps));
  CHECK(changes[1] == fmt::format("schedule.decay: '{}' -> 'linear'", lmt::name_of(a.recipe.schedule.decay)));
  CHECK(lmt::recipe_differences(lmt::recipe_to_yaml(a.recipe), lmt::recipe_to_yaml(a.recipe)).empty());
}

TEST_CASE("validate_recipe: keys of the data source that is not selected are errors, not ignored",
          "[recipe][validate]") {
  using Catch::Matchers::Contains;
  // The red-team case: --set data.train=... --set data.format=llmc on a synthetic recipe.
  LoadedRecipe loaded = parse(kValidBase);
  lmt::apply_overrides(loaded, {"data.train=data/x/train_*.bin", "data.format=llmc"});
  const std::string message = error_message([&] { lmt::validate_recipe(loaded, 1); });
  CHECK_THAT(message, Contains("--set data.train=data/x/train_*.bin: data.train: is set, but source is 'synthetic'") &&
                          Contains("data.format: is 'llmc', but source is 'synthetic'"));
  CHECK_THAT(validate_error("run: {micro_batch_size: 4}\ndata:\n  train: a.bin\n  synthetic: {vocab_size: 64}\n"),
             Contains("data.synthetic: is set, but source is 'shards'"));
  // data.format also reads eval.sets: with them it is not ignored.
  CHECK_NOTHROW(parse_and_validate(std::string(kValidBase) + "  format: nanogpt\neval:\n  sets: {held: h.bin}\n"));
  // A resolved recipe lists every key at its default: that passes.
  CHECK_NOTHROW(parse_and_validate(std::string(kValidBase) + "  format: lmtrain\n  train: \"\"\n  val: \"\"\n"));
}

TEST_CASE("parse_recipe_text: an integer too large for int64 is an error, not a float conversion out of range",
          "[recipe][parse][errors][fuzz]") {
  // fuzz_recipe found n_head: 5555...4 (70 digits) converted from double to int64 (UBSan).
  for (const std::string& value : {std::string(70, '5'), std::string("1e300"), std::string("-1e19"),
                                  std::string("inf")}) {
    INFO(value);
    CHECK_THAT(error_message([&] { parse("model:\n  n_head: " + value + "\n"); }),
               Contains("model.n_head") && Contains("too large for an integer here"));
  }
  CHECK_THAT(error_message([&] { parse("model:\n  n_head: 2.5\n"); }), Contains("expected an integer, got '2.5'"));
  CHECK(parse("model:\n  n_head: 4e0\n").recipe.model.n_head == 4);
}

TEST_CASE("parse_recipe_text and --set: bytes that are not UTF-8 are refused with their position", "[recipe][parse][errors][fuzz]") {
  // fuzz_recipe found run.name with 0xFF bytes: accepted, but recipe_to_yaml wrote them as
  // escapes that load back as other characters (and a name too long), so a run's recipe.yaml
  // was not the recipe it trained.
  CHECK_THAT(error_message([] { parse("run:\n  name: quic\xff\xffkstart\n"); }),
             Contains("x.yaml:2:13: byte 0xFF is not UTF-8 text"));
  CHECK_THAT(error_message([] { parse("\xc3(: 1\n"); }), Contains("x.yaml:1:1: byte 0xC3 is not UTF-8 text"));
  LoadedRecipe loaded = parse("run:\n  name: caf\xc3\xa9\n");  // UTF-8 is fine
  CHECK(loaded.recipe.run.name == "caf\xc3\xa9");
  CHECK(parse_recipe_text(recipe_to_yaml(loaded.recipe), "printed").recipe.run.name == "caf\xc3\xa9");
  CHECK_THAT(error_message([&] { apply_overrides(loaded, {"run.name=x\xfe"}); }), Contains("not UTF-8 text"));
}
