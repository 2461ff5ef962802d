// lmtrain generate: text from a checkpoint with the run's tokenizer, streamed; --json; the KV
// cache gives the same greedy tokens as a full forward per token; bad input is exit 2.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>

#include "tests/cli/cli_util.h"

using namespace lmt::testing;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;


TEST_CASE("generate: streams text after the prompt with the run's tokenizer", "[cli][generate]") {
  TempDir dir;
  train_char_model(dir);
  RunResult r = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints --prompt 'ROMEO:' --max-new-tokens 50 "
                                 "--seed 3");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, StartsWith("ROMEO:"));
  CHECK(r.output.size() >= std::string("ROMEO:").size() + 50);  // 50 one-byte characters and a newline
  // The same seed gives the same text; --json has the ids, and its text is the new tokens'.
  RunResult again = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints --prompt 'ROMEO:' --max-new-tokens 50 "
                                     "--seed 3");
  CHECK(again.output == r.output);
  RunResult json = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints --prompt 'ROMEO:' --max-new-tokens 50 "
                                    "--seed 3 --json");
  INFO(json.output);
  REQUIRE(json.status == 0);
  const auto sample = nlohmann::json::parse(json.output);
  CHECK(sample["prompt_ids"].size() == 6);
  CHECK(sample["ids"].size() == 50);
  CHECK("ROMEO:" + sample["text"].get<std::string>() + "\n" == r.output);
  // Only the model is read: a damaged optimizer file (which --resume would refuse) does not matter.
  for (const auto& step : fs::directory_iterator(dir.path() / "runs" / "char" / "checkpoints"))
    if (fs::is_directory(step.path())) fs::resize_file(step.path() / "optimizer.safetensors", 10);
  RunResult damaged = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints --prompt 'ROMEO:' --max-new-tokens 50 "
                                       "--seed 3");
  INFO(damaged.output);
  CHECK(damaged.output == r.output);
}

TEST_CASE("generate: the KV cache gives the greedy tokens of a full forward, past the context too",
          "[cli][generate]") {
  TempDir dir;
  train_char_model(dir);
  // 6 + 60 tokens: the 32-token window slides.
  const std::string common = "generate --checkpoint runs/char/checkpoints --prompt 'JULIET:' --max-new-tokens 60 "
                             "--temperature 0 --num-samples 2 --json";
  RunResult cached = run_lmtrain(dir, common);
  RunResult full = run_lmtrain(dir, common + " --no-kv-cache");
  INFO(cached.output);
  REQUIRE(cached.status == 0);
  REQUIRE(full.status == 0);
  CHECK(cached.output == full.output);
  // Two samples, one JSON object each.
  CHECK(std::count(cached.output.begin(), cached.output.end(), '\n') == 2);
  // --stop ends a sample once its text holds the string.
  RunResult stopped = run_lmtrain(dir, "generate --checkpoint runs/char/checkpoints --prompt 'J' --max-new-tokens 200 "
                                       "--temperature 0 --stop ':' --json");
  INFO(stopped.output);
  REQUIRE(stopped.status == 0);
  const std::string text = nlohmann::json::parse(stopped.output)["text"];
  REQUIRE(!text.empty());
  CHECK(text.back() == ':');
  CHECK(text.find(':') == text.size() - 1);
}

TEST_CASE("generate: bad input is exit 2 with the flag or file named", "[cli][generate]") {
  TempDir dir;
  train_char_model(dir);
  const std::string ck = "generate --checkpoint runs/char/checkpoints ";
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--prompt x --top-p 0", "--top-p must be in (0, 1]"},
           {"--prompt x --max-new-tokens -1", "--max-new-tokens must be at least 0"},
           {"--prompt x --temperature -1", "--temperature must be a number >= 0"},
           {"--prompt-ids 1,x", "--prompt-ids: 'x' is not a token id"},
           {"--prompt-ids 1,999", "prompt token 1 is 999, outside the model's vocabulary"},
           {"--prompt x --prompt-ids 1", "exactly one of --prompt, --prompt-file and --prompt-ids"},
           {"--prompt 'é'", "é"},  // not in the char vocabulary
           {"--prompt-file missing.txt", "missing.txt"},
       }) {
    RunResult r = run_lmtrain(dir, ck + c.args);
    INFO(c.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(c.message));
  }
  RunResult nothing = run_lmtrain(dir, "generate --checkpoint nowhere --prompt x");
  CHECK(nothing.status == 2);
  CHECK_THAT(nothing.output, Contains("nowhere"));
  // A run on synthetic data has no tokenizer: text prompts are refused, ids work.
  write_file(dir.path() / "tiny.yaml", tiny_recipe(dir));
  REQUIRE(run_lmtrain(dir, "train tiny.yaml --set run.steps=2").status == 0);
  RunResult text = run_lmtrain(dir, "generate --checkpoint runs/tiny/checkpoints --prompt hello");
  CHECK(text.status == 2);
  CHECK_THAT(text.output, Contains("no tokenizer for this run") && Contains("--prompt-ids"));
  RunResult ids = run_lmtrain(dir, "generate --checkpoint runs/tiny/checkpoints --prompt-ids 1,2,3 --max-new-tokens 5");
  INFO(ids.output);
  CHECK(ids.status == 0);
  CHECK(std::count(ids.output.begin(), ids.output.end(), ' ') == 4);  // five ids
}
