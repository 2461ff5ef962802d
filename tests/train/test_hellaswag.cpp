// Multiple-choice scoring (train/hellaswag.h): the jsonl reader names the line and key of every
// problem, and a batch of padded endings scores each ending as its own unpadded sequence would.
// tests/train/test_hf_transformers.cpp cross-checks the scores against transformers.
#include <catch2/catch.hpp>

#include <cmath>

#include "cpu/cpu_backend.h"
#include "tests/test_util.h"
#include "train/hellaswag.h"

using namespace lmt;
using namespace lmt::testing;

TEST_CASE("hellaswag: the jsonl reader takes HellaSwag's lines and names the line and key of a bad one",
          "[hellaswag]") {
  TempDir dir;
  const auto path = (dir.path() / "hs.jsonl").string();
  write_file(path, "{\"ctx\": \"a b\", \"endings\": [\"c\", \"d\"], \"label\": 1, \"ind\": 4}\n\n"
                   "{\"ctx\": \"x\", \"endings\": [\"y\", \"z\", \"w\"], \"label\": \"2\"}\n");
  const std::vector<ChoiceExample> examples = read_choice_examples(path);
  REQUIRE(examples.size() == 2);
  CHECK(examples[0].ctx == "a b");
  CHECK(examples[0].endings == std::vector<std::string>{"c", "d"});
  CHECK(examples[0].label == 1);
  CHECK(examples[1].label == 2);
  CHECK(examples[1].line == 3);
  auto refused = [&](const std::string& line) {
    write_file(path, "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 0}\n" + line + "\n");
    return error_message([&] { read_choice_examples(path); });
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(refused("{\"ctx\": \"a\""), Contains(path + ":2: not valid JSON"));
  CHECK_THAT(refused("[1]"), Contains(":2: expected a JSON object"));
  CHECK_THAT(refused("{\"endings\": [\"b\", \"c\"], \"label\": 0}"), Contains(":2: \"ctx\" must be"));
  CHECK_THAT(refused("{\"ctx\": \"a\", \"endings\": [\"b\"], \"label\": 0}"), Contains(":2: \"endings\" must be a list of at least 2"));
  CHECK_THAT(refused("{\"ctx\": \"a\", \"endings\": [\"b\", 3], \"label\": 0}"), Contains("found 3"));
  CHECK_THAT(refused("{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"]}"), Contains(":2: \"label\" is missing"));
  CHECK_THAT(refused("{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 2}"),
             Contains("\"label\" is 2 but there are only 2 endings"));
  CHECK_THAT(refused("{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": \"x\"}"), Contains("\"label\" is \"x\""));
  write_file(path, "\n\n");
  CHECK_THAT(error_message([&] { read_choice_examples(path); }), Contains("no examples"));
}

TEST_CASE("hellaswag: each ending's loss is the unpadded sequence's loss on the ending's tokens", "[hellaswag]") {
  const data::Tokenizer tokenizer = data::Tokenizer::build_char("abcdefgh ");
  GPTConfig cfg;
  cfg.num_layers = 2;
  cfg.num_heads = 2;
  cfg.channels = 16;
  cfg.max_seq_len = 12;
  cfg.vocab_size = tokenizer.vocab_size();
  cfg.padded_vocab_size = GPTConfig::pad_vocab(cfg.vocab_size, 8);
  auto backend = cpu::make_cpu_backend(1);
  GPT model(*backend, cfg);
  model.init_weights(5, 0.5);
  ChoiceExample ex;
  ex.ctx = "abcab";
  ex.endings = {"h", "gggg", "fed", "ab"};
  const ChoiceScore score = score_choices(model, tokenizer, ex);
  REQUIRE(score.sum_losses.size() == 4);
  CHECK_FALSE(score.cropped);
  for (size_t e = 0; e < 4; ++e) {
    // The sequence alone: ctx + " " + ending, and the loss of every ending token.
    const std::vector<int32_t> ids = tokenizer.encode(ex.ctx + " " + ex.endings[e]);
    const std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
    model.forward(inputs.data(), targets.data(), 1, static_cast<int>(inputs.size()));
    const std::vector<float> losses = model.get_losses();
    const size_t n = ex.endings[e].size() + 1;  // " " starts the ending
    double expected = 0;
    for (size_t j = inputs.size() - n; j < inputs.size(); ++j) expected += losses[j];
    CHECK(score.sum_losses[e] == Approx(expected).epsilon(1e-5));
    CHECK(score.mean_losses[e] == Approx(expected / static_cast<double>(n)).epsilon(1e-5));
  }
  CHECK(score.pred == std::min_element(score.sum_losses.begin(), score.sum_losses.end()) - score.sum_losses.begin());
  CHECK(score.pred_norm == std::min_element(score.mean_losses.begin(), score.mean_losses.end()) - score.mean_losses.begin());

  // A context too long for the model keeps its last tokens.
  ex.ctx = "abcdefghabcdefgh";
  const ChoiceScore cropped = score_choices(model, tokenizer, ex);
  CHECK(cropped.cropped);
  ex.endings = {"abcdefghabcdefgh", "a"};
  CHECK_THAT(error_message([&] { score_choices(model, tokenizer, ex); }), Catch::Matchers::Contains("an ending has 17 tokens"));
}
