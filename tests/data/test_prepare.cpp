#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "tests/test_util.h"

using namespace lmt::data;
using namespace lmt::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::string repeated(const std::string& piece, size_t num_bytes) {
  std::string text;
  while (text.size() < num_bytes) text += piece;
  text.resize(num_bytes);
  return text;
}

std::vector<std::string> directory_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("prepare_data: two inputs, char tokenizer, last 10% is val", "[data][prepare]") {
  TempDir dir;
  const std::string first = repeated("To be, or not to be: that is the question.\n", 600);
  const std::string second = repeated("Whether 'tis nobler in the mind to suffer\n", 401);
  write_file(dir.file("a.txt"), first);
  write_file(dir.file("b.txt"), second);

  PrepareOptions options;
  options.inputs = {dir.file("a.txt"), dir.file("b.txt")};
  options.out_dir = dir.file("out/nested");
  options.split = "tail";
  const PrepareSummary summary = prepare_data(options);

  CHECK(summary.num_bytes == 1001);
  CHECK(summary.train_tokens == 900);  // floor(1001 * 0.9), as nanoGPT's int(n * 0.9)
  CHECK(summary.val_tokens == 101);
  const std::string text = first + second;
  const Tokenizer expected_tokenizer = Tokenizer::build_char(text);
  CHECK(summary.vocab_size == expected_tokenizer.vocab_size());
  const fs::path out(options.out_dir);
  CHECK(summary.files_written ==
        std::vector<std::string>{(out / "train_000000.bin").string(), (out / "val_000000.bin").string(),
                                 (out / "tokenizer.json").string(), (out / "prepare.json").string()});
  CHECK(directory_listing(out) ==
        std::vector<std::string>{"prepare.json", "tokenizer.json", "train_000000.bin", "val_000000.bin"});
  CHECK(summary.documents == 2);
  CHECK(summary.split == "tail");

  const Shard train = read_shard((out / "train_000000.bin").string());
  const Shard val = read_shard((out / "val_000000.bin").string());
  CHECK(train.tokens.size() == 900);
  CHECK(val.tokens.size() == 101);
  CHECK(train.vocab_size == summary.vocab_size);
  const Tokenizer tokenizer = Tokenizer::load((out / "tokenizer.json").string());
  CHECK(tokenizer.code_points() == expected_tokenizer.code_points());
  CHECK(tokenizer.decode(train.tokens) + tokenizer.decode(val.tokens) == text);
  CHECK(tokenizer.decode(val.tokens) == text.substr(900));
}

TEST_CASE("prepare_data: byte tokenizer takes non-UTF-8 input, char names the file", "[data][prepare]") {
  TempDir dir;
  const std::string latin1 = repeated("caf\xE9 cr\xE8me br\xFBl\xE9\n", 200);
  write_file(dir.file("latin1.txt"), latin1);

  PrepareOptions options;
  options.inputs = {dir.file("latin1.txt")};
  options.out_dir = dir.file("out");
  options.tokenizer = "byte";
  options.val_fraction = 0.25;
  const PrepareSummary summary = prepare_data(options);
  CHECK(summary.vocab_size == 256);
  CHECK(summary.train_tokens == 150);
  CHECK(summary.val_tokens == 50);
  CHECK(read_shard(dir.file("out/val_000000.bin")).tokens == Tokenizer::byte().encode(latin1.substr(150)));

  options.tokenizer = "char";
  options.out_dir = dir.file("out_char");
  const std::string message = error_message([&] { prepare_data(options); });
  CHECK_THAT(message, Contains(dir.file("latin1.txt")) && Contains("byte offset 3") && Contains("--tokenizer byte"));
  CHECK_FALSE(fs::exists(options.out_dir));
}

TEST_CASE("prepare_data: val_fraction 0 writes no val shard", "[data][prepare]") {
  TempDir dir;
  write_file(dir.file("in.txt"), "abcabcabc");
  PrepareOptions options;
  options.inputs = {dir.file("in.txt")};
  options.out_dir = dir.file("out");
  options.val_fraction = 0.0;
  const PrepareSummary summary = prepare_data(options);
  CHECK(summary.train_tokens == 9);
  CHECK(summary.val_tokens == 0);
  CHECK(summary.val_shards.empty());
  CHECK_FALSE(fs::exists(dir.file("out/val_000000.bin")));
}

TEST_CASE("prepare_data: multi-byte characters across encode chunks", "[data][prepare]") {
  TempDir dir;
  // ~2.6 MB of 1-, 2-, 3- and 4-byte characters (16 bytes per repeat). The 6-byte prefix puts
  // the first 1 MiB encode-chunk boundary inside a 4-byte character, which chunked encoding
  // must not split.
  const std::string valid = "prefix" + repeated("a é 日 🎉 z\n", 2'600'000) + "end\n";
  REQUIRE((static_cast<unsigned char>(valid[1 << 20]) & 0xC0) == 0x80);
  write_file(dir.file("in.txt"), valid);
  PrepareOptions options;
  options.inputs = {dir.file("in.txt")};
  options.out_dir = dir.file("out");
  options.progress = false;
  const PrepareSummary summary = prepare_data(options);
  const Tokenizer tokenizer = Tokenizer::load(dir.file("out/tokenizer.json"));
  CHECK(tokenizer.code_points() == Tokenizer::build_char(valid).code_points());
  const std::string decoded = tokenizer.decode(read_shard(dir.file("out/train_000000.bin")).tokens) +
                              tokenizer.decode(read_shard(dir.file("out/val_000000.bin")).tokens);
  CHECK(decoded == valid);
  CHECK(summary.train_tokens + summary.val_tokens == static_cast<int64_t>(tokenizer.encode(valid).size()));
}

TEST_CASE("prepare_data: large input with the progress bar", "[data][prepare]") {
  TempDir dir;
  write_file(dir.file("big.txt"), repeated("All the world's a stage.\n", 5'000'000));
  PrepareOptions options;
  options.inputs = {dir.file("big.txt")};
  options.out_dir = dir.file("out");
  options.tokenizer = "byte";
  options.progress = true;  // draws on stderr; the outputs must be unaffected
  const PrepareSummary summary = prepare_data(options);
  CHECK(summary.num_bytes == 5'000'000);
  CHECK(summary.train_tokens == 4'500'000);
  CHECK(summary.val_tokens == 500'000);
}

TEST_CASE("prepare_data: invalid options are clear errors and write nothing", "[data][prepare]") {
  TempDir dir;
  write_file(dir.file("in.txt"), "some text to tokenize\n");
  PrepareOptions options;
  options.inputs = {dir.file("in.txt")};
  options.out_dir = dir.file("out");

  SECTION("no inputs") {
    options.inputs.clear();
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("no input files"));
  }
  SECTION("missing input") {
    options.inputs.push_back(dir.file("missing.txt"));
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains(dir.file("missing.txt")) && Contains("does not exist"));
  }
  SECTION("input is a directory") {
    options.inputs = {dir.path().string()};
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("directory"));
  }
  SECTION("val_fraction out of range") {
    for (double bad : {-0.1, 0.6, std::nan("")}) {
      options.val_fraction = bad;
      CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("--val-fraction") && Contains("[0, 0.5]"));
    }
  }
  SECTION("unknown tokenizer") {
    options.tokenizer = "bpe";
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("--tokenizer 'bpe'") && Contains("tok.json"));
  }
  SECTION("bad split and shard size") {
    options.split = "random";
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("--split 'random'"));
    options.split = "auto";
    options.shard_tokens = 1;
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("--shard-tokens 1"));
  }
  SECTION("a glob that matches nothing") {
    options.inputs = {dir.file("*.md")};
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("*.md") && Contains("matches no files"));
  }
  SECTION("no output directory") {
    options.out_dir.clear();
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("output directory"));
  }
  SECTION("empty input") {
    write_file(dir.file("empty.txt"), "");
    options.inputs = {dir.file("empty.txt")};
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("empty"));
  }
  SECTION("output directory is a file") {
    write_file(dir.file("out"), "x");
    CHECK_THAT(error_message([&] { prepare_data(options); }), Contains(dir.file("out")));
    return;
  }
  CHECK_FALSE(fs::exists(options.out_dir));
}

TEST_CASE("prepare_data: a failure midway leaves the earlier outputs as they were", "[data][prepare]") {
  TempDir dir;
  write_file(dir.file("a.jsonl"), "{\"text\": \"first document\"}\n{\"text\": \"second\"}\n");
  write_file(dir.file("b.jsonl"), "{\"text\": \"fine\"}\n\n{\"text\": \"broken\"\n");
  write_file(dir.file("good.txt"), repeated("good text\n", 5000));
  PrepareOptions options;
  options.inputs = {dir.file("good.txt")};
  options.out_dir = dir.file("out");
  options.shard_tokens = 1000;
  prepare_data(options);
  const auto before = directory_listing(options.out_dir);
  const std::string first_shard = read_file(dir.file("out/train_000000.bin"));
  REQUIRE(before.size() == 8);  // 5 train + 1 val shard, tokenizer.json, prepare.json

  // a.jsonl is encoded and sharded before b.jsonl's line 3 fails.
  options.inputs = {dir.file("a.jsonl"), dir.file("b.jsonl")};
  options.shard_tokens = 4;
  CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("b.jsonl:3") && Contains("not valid JSON"));
  CHECK(directory_listing(options.out_dir) == before);
  CHECK(read_file(dir.file("out/train_000000.bin")) == first_shard);

  write_file(dir.file("b.jsonl"), "{\"body\": \"x\"}\n");
  CHECK_THAT(error_message([&] { prepare_data(options); }), Contains("b.jsonl:1") && Contains("--json-key"));
  CHECK(directory_listing(options.out_dir) == before);
}

TEST_CASE("prepare_data: documents, shards of a fixed size, and no stale shards", "[data][prepare]") {
  TempDir dir;
  // 20 documents in two files: one by separator, one as JSON lines.
  std::string separated, jsonl;
  std::vector<std::string> docs;
  for (int i = 0; i < 20; ++i) docs.push_back(fmt::format("document number {} says {}\n", i, repeated("ab", i + 1)));
  for (int i = 0; i < 12; ++i) separated += docs[i] + "<SEP>";
  for (int i = 12; i < 20; ++i) jsonl += nlohmann::json({{"id", i}, {"body", docs[i]}}).dump() + "\n";
  write_file(dir.file("part1.txt"), separated);
  write_file(dir.file("part2.jsonl"), jsonl);

  PrepareOptions options;
  options.inputs = {dir.file("part*")};
  options.out_dir = dir.file("out");
  options.doc_separator = "<SEP>";
  options.json_key = "body";
  options.shard_tokens = 100;
  const PrepareSummary summary = prepare_data(options);
  CHECK(summary.split == "documents");
  CHECK(summary.documents == 20);
  CHECK(summary.val_documents == 2);  // every 10th: documents 9 and 19
  const Tokenizer tokenizer = Tokenizer::load(dir.file("out/tokenizer.json"));
  std::string train_text, val_text;
  for (const auto& path : summary.train_shards) {
    const Shard shard = read_shard(path);
    CHECK((shard.tokens.size() == 100 || path == summary.train_shards.back()));
    train_text += tokenizer.decode(shard.tokens);
  }
  for (const auto& path : summary.val_shards) val_text += tokenizer.decode(read_shard(path).tokens);
  std::string expected_train;
  for (int i = 0; i < 20; ++i)
    if (i != 9 && i != 19) expected_train += docs[i];
  CHECK(train_text == expected_train);
  CHECK(val_text == docs[9] + docs[19]);
  CHECK(summary.train_shards.size() == static_cast<size_t>((summary.train_tokens + 99) / 100));
  CHECK(summary.train_shards.size() > 3);

  // A second run with larger shards removes the first run's extra shards.
  options.shard_tokens = 1'000'000;
  const PrepareSummary second = prepare_data(options);
  CHECK(second.train_shards.size() == 1);
  CHECK(directory_listing(options.out_dir) ==
        std::vector<std::string>{"prepare.json", "tokenizer.json", "train_000000.bin", "val_000000.bin"});
  const auto record = nlohmann::json::parse(read_file(dir.file("out/prepare.json")));
  CHECK(record["documents"] == 20);
  CHECK(record["train"]["tokens"] == second.train_tokens);
}

TEST_CASE("prepare_data: a BPE tokenizer file puts <|endoftext|> before every document", "[data][prepare]") {
  TempDir dir;
  std::string jsonl;
  std::vector<std::string> docs;
  for (int i = 0; i < 30; ++i) {
    docs.push_back(fmt::format("The {} quick brown foxes jump over {} lazy dogs.", i, 30 - i));
    jsonl += nlohmann::json({{"text", docs.back()}}).dump() + "\n";
  }
  write_file(dir.file("docs.jsonl"), jsonl);
  BpeTrainOptions train_options;
  train_options.vocab_size = 300;
  std::string corpus;
  for (const auto& d : docs) corpus += d;
  Tokenizer::train_bpe_on_text(corpus, train_options).save(dir.file("tok.json"));

  PrepareOptions options;
  options.inputs = {dir.file("docs.jsonl")};
  options.out_dir = dir.file("out");
  options.tokenizer = dir.file("tok.json");
  options.threads = 2;
  const PrepareSummary summary = prepare_data(options);
  CHECK(summary.end_of_text);
  CHECK(summary.vocab_size == 300);
  const Tokenizer tokenizer = Tokenizer::load(dir.file("out/tokenizer.json"));
  const int32_t eot = tokenizer.eot_id().value();
  const Shard train = read_shard(summary.train_shards.at(0));
  const Shard val = read_shard(summary.val_shards.at(0));
  CHECK(train.vocab_size == 300);
  // Documents 9, 19, 29 are val; each one starts with the end-of-text token.
  auto split_documents = [&](const std::vector<int32_t>& tokens) {
    std::vector<std::string> out;
    REQUIRE(tokens.at(0) == eot);
    std::vector<int32_t> current;
    for (size_t i = 1; i <= tokens.size(); ++i) {
      if (i == tokens.size() || tokens[i] == eot) {
        out.push_back(tokenizer.decode(current));
        current.clear();
      } else {
        current.push_back(tokens[i]);
      }
    }
    return out;
  };
  const auto val_docs = split_documents(val.tokens);
  CHECK(val_docs == std::vector<std::string>{docs[9], docs[19], docs[29]});
  const auto train_docs = split_documents(train.tokens);
  CHECK(train_docs.size() == 27);
  CHECK(train_docs.front() == docs[0]);
}

TEST_CASE("prepare_data: tinyshakespeare matches nanoGPT's shakespeare_char", "[data][prepare]") {
  // The corpus is not in the repository; it is looked for next to the checkout (shared/data)
  // or at $LMTRAIN_TINYSHAKESPEARE.
  const char* override_path = std::getenv("LMTRAIN_TINYSHAKESPEARE");
  const std::string path = override_path != nullptr
                               ? std::string(override_path)
                               : std::string(LMTRAIN_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";
  if (!fs::exists(path)) {
    WARN("SKIPPED: tinyshakespeare.txt not found at " << path << " (set LMTRAIN_TINYSHAKESPEARE)");
    return;
  }
  TempDir dir;
  PrepareOptions options;
  options.inputs = {path};
  options.out_dir = dir.file("shakespeare_char");
  options.progress = false;
  const PrepareSummary summary = prepare_data(options);
  // nanoGPT's data/shakespeare_char/prepare.py prints exactly these numbers.
  CHECK(summary.num_bytes == 1'115'394);
  CHECK(summary.vocab_size == 65);
  CHECK(summary.train_tokens == 1'003'854);
  CHECK(summary.val_tokens == 111'540);
}
