// Hugging Face GPT-2 in and out, checked with transformers itself (tools/hf_reference.py):
// a model transformers creates and saves gives lmtrain transformers' logits, and a run lmtrain
// exports gives transformers lmtrain's logits, tokenization and greedy continuation. Skipped with
// the reason where the test environment (tools/setup-test-env.sh) is missing.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "model/gpt.h"
#include "tests/cli/cli_util.h"
#include "train/device.h"
#include "train/model_source.h"

using namespace lmt;
using namespace lmt::testing;

namespace {

std::string reference_script() { return (source_dir() / "tools" / "hf_reference.py").string(); }

// Runs the reference script; its output is shown when it fails.
void run_reference(const TempDir& dir, const std::string& python, const std::string& args) {
  const RunResult result = run_shell(dir, quoted(python) + " " + quoted(reference_script()) + " " + args);
  INFO(args << "\n" << result.output);
  REQUIRE(result.status == 0);
}

// lmtrain's logits (T, V) for `ids` from a model source, on the CPU in fp32: the code eval and
// generate run.
std::vector<float> lmtrain_logits(const std::string& which, const std::vector<int32_t>& ids) {
  const InferenceCheckpoint ck = open_for_inference(which);
  InferenceModel inference = build_inference_model(ck, DeviceKind::kCpu);
  GPT& model = *inference.gpt;
  const std::vector<int32_t> targets(ids.size(), 0);
  model.forward(ids.data(), targets.data(), 1, static_cast<int>(ids.size()));
  return model.get_logits();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

std::string id_list(const std::vector<int32_t>& ids) { return fmt::format("{}", fmt::join(ids, ",")); }

// The last JSON line of `generate --json`.
nlohmann::json last_json_line(const std::string& output) {
  std::istringstream lines(output);
  std::string line, last;
  while (std::getline(lines, line))
    if (!line.empty() && line.front() == '{') last = line;
  INFO(output);
  REQUIRE(!last.empty());
  return nlohmann::json::parse(last);
}

// Some English-like text for a BPE tokenizer and a few training steps.
std::string training_text() {
  const char* words[] = {"the", "king", "said", "that", "a", "horse", "is", "fair", "and", "we", "shall", "go",
                         "to", "London", "where", "night", "falls", "on", "my", "lord", "with", "gentle", "words"};
  std::string text;
  uint32_t state = 12345;
  for (int sentence = 0; sentence < 1500; ++sentence) {
    const int length = 4 + sentence % 7;
    for (int w = 0; w < length; ++w) {
      state = state * 1664525u + 1013904223u;
      if (w) text += ' ';
      text += words[(state >> 16) % std::size(words)];
    }
    text += sentence % 5 == 4 ? ".\n" : ". ";
  }
  return text;
}

// The test environment's Python with transformers, or empty after a visible SKIPPED line.
std::string transformers_python() {
  std::string why;
  const std::string python = test_python("torch, transformers, safetensors", why);
  if (python.empty()) WARN("SKIPPED: " << why);
  return python;
}

}  // namespace

TEST_CASE("hf import: a random GPT2LMHeadModel saved by transformers gives transformers' logits and greedy tokens",
          "[hf][transformers]") {
  const std::string python = transformers_python();
  if (python.empty()) return;
  TempDir dir;
  const std::vector<int32_t> ids = {5, 17, 99, 0, 42, 42, 7, 63, 100, 1, 28, 77, 3, 64, 12, 90, 31, 8, 55, 2};
  // fp32 as saved, and bf16/fp16 weights, which lmtrain converts (transformers' reference runs
  // the same rounded weights in fp32).
  for (const std::string dtype : {"float32", "bfloat16", "float16"}) {
    DYNAMIC_SECTION(dtype) {
      const std::string hf = (dir.path() / ("hf_" + dtype)).string();
      const std::string ref = (dir.path() / ("ref_" + dtype + ".safetensors")).string();
      run_reference(dir, python, fmt::format("random --out {} --seed 3 --layers 2 --heads 4 --embd 64 --vocab 101 "
                                        "--positions 64 --dtype {}",
                                        quoted(hf), dtype));
      run_reference(dir, python, fmt::format("run --model {} --ids {} --new-tokens 24 --out {}", quoted(hf), id_list(ids),
                                        quoted(ref)));
      const SafeTensorsFile expected = read_safetensors(ref);
      const std::vector<float> ours = lmtrain_logits("hf:" + hf, ids);
      const double diff = max_abs_diff(ours, expected.at("logits").as_f32());
      INFO("max |logits - transformers'| = " << diff);
      CHECK(diff <= 1e-4);

      // The CLI takes the same directory: greedy decoding gives transformers' tokens.
      const RunResult gen = run_lmtrain(dir, "generate --checkpoint hf:" + quoted(hf) + " --prompt-ids " + id_list(ids) +
                                                 " --max-new-tokens 24 --temperature 0 --json");
      REQUIRE(gen.status == 0);
      CHECK(last_json_line(gen.output)["ids"].get<std::vector<int32_t>>() == expected.at("greedy").as_i32());
    }
  }
}

TEST_CASE("hf export: transformers loads an exported run and gives lmtrain's logits, tokens and greedy continuation",
          "[hf][transformers]") {
  const std::string python = transformers_python();
  if (python.empty()) return;
  TempDir dir;
  write_file(dir.path() / "text.txt", training_text());
  REQUIRE(run_lmtrain(dir, "data tokenizer train --input text.txt --vocab-size 300 --out tok.json").status == 0);
  REQUIRE(run_lmtrain(dir, "data prepare --input text.txt --tokenizer tok.json --out data/bpe").status == 0);
  write_file(dir.path() / "r.yaml",
             "run: {name: bpe, steps: 40, seq_len: 64, micro_batch_size: 8, grad_accum_steps: 1, device: cpu}\n"
             "model: {n_layer: 2, n_head: 4, n_embd: 64, max_seq_len: 128}\n"
             "data: {source: shards, train: data/bpe/train_*.bin, val: data/bpe/val_*.bin}\n"
             "optimizer: {lr: 3.0e-3}\n"
             "log: {every: 20}\n");
  const RunResult train = run_lmtrain(dir, "train r.yaml");
  INFO(train.output);
  REQUIRE(train.status == 0);
  const RunResult exported = run_lmtrain(dir, "export --checkpoint runs/bpe/checkpoints --format hf --out hf");
  INFO(exported.output);
  REQUIRE(exported.status == 0);
  CHECK(std::filesystem::exists(dir.path() / "hf" / "vocab.json"));
  CHECK(std::filesystem::exists(dir.path() / "hf" / "merges.txt"));

  const std::string prompt = "the king said that we shall";
  const RunResult gen = run_lmtrain(dir, "generate --checkpoint runs/bpe/checkpoints --prompt " + quoted(prompt) +
                                             " --max-new-tokens 64 --temperature 0 --json");
  REQUIRE(gen.status == 0);
  const nlohmann::json sample = last_json_line(gen.output);
  const std::vector<int32_t> prompt_ids = sample["prompt_ids"].get<std::vector<int32_t>>();
  const std::string ref = (dir.path() / "ref.safetensors").string();
  run_reference(dir, python, fmt::format("run --model {} --ids {} --new-tokens 64 --text {} --out {}",
                                    quoted((dir.path() / "hf").string()), id_list(prompt_ids), quoted(prompt),
                                    quoted(ref)));
  const SafeTensorsFile expected = read_safetensors(ref);
  // transformers' GPT2Tokenizer reads the exported vocab.json + merges.txt as lmtrain's BPE.
  CHECK(expected.at("text_ids").as_i32() == prompt_ids);
  const double diff = max_abs_diff(lmtrain_logits((dir.path() / "runs/bpe/checkpoints").string(), prompt_ids),
                                   expected.at("logits").as_f32());
  INFO("max |logits - transformers'| = " << diff);
  CHECK(diff <= 1e-4);
  CHECK(sample["ids"].get<std::vector<int32_t>>() == expected.at("greedy").as_i32());

  // HellaSwag-style scoring: lmtrain's eval and the same scoring in transformers on the export.
  std::string jsonl;
  const char* endings[][4] = {{"go to London", "horse is fair", "king said that", "lord with words"},
                              {"night falls on my lord", "the the the", "fair and gentle", "we shall go"},
                              {"said", "London where night falls", "a horse", "gentle words to the king"}};
  const char* contexts[] = {"the king said that we shall", "where night falls on", "a fair horse is"};
  for (int i = 0; i < 3; ++i)
    jsonl += nlohmann::json{{"ctx", contexts[i]}, {"endings", endings[i]}, {"label", i % 4}}.dump() + "\n";
  write_file(dir.path() / "hs.jsonl", jsonl);
  const RunResult hs = run_lmtrain(dir, "eval --checkpoint runs/bpe/checkpoints --task hellaswag --data hs.jsonl --json");
  INFO(hs.output);
  REQUIRE(hs.status == 0);
  const nlohmann::json ours_hs = last_json_line(hs.output);
  run_reference(dir, python, "hellaswag --model " + quoted((dir.path() / "hf").string()) + " --data hs.jsonl --out hs.json");
  const nlohmann::json theirs_hs = nlohmann::json::parse(read_file(dir.path() / "hs.json"));
  CHECK(ours_hs["acc"] == theirs_hs["acc"]);
  CHECK(ours_hs["acc_norm"] == theirs_hs["acc_norm"]);
  for (size_t i = 0; i < 3; ++i) {
    const auto& a = ours_hs["scores"][i];
    const auto& b = theirs_hs["predictions"][i];
    CHECK(a["pred"] == b["pred"]);
    CHECK(a["pred_norm"] == b["pred_norm"]);
    for (size_t e = 0; e < 4; ++e) {
      CHECK(std::abs(a["sum_losses"][e].get<double>() - b["sum_losses"][e].get<double>()) <= 1e-4);
      CHECK(std::abs(a["mean_losses"][e].get<double>() - b["mean_losses"][e].get<double>()) <= 1e-4);
    }
  }

  // And lmtrain reads its own export back with the same tokenizer and weights.
  const RunResult again = run_lmtrain(dir, "generate --checkpoint hf:hf --prompt " + quoted(prompt) +
                                               " --max-new-tokens 64 --temperature 0 --json");
  REQUIRE(again.status == 0);
  CHECK(last_json_line(again.output)["ids"] == sample["ids"]);
}
