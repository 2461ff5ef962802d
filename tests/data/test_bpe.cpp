#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "data/bpe.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "tests/test_util.h"

using lmt::data::BpeModel;
using lmt::data::BpeTrainOptions;
using lmt::data::BpeTrainSummary;
using lmt::data::Tokenizer;
using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

using Pieces = std::vector<std::string>;

Pieces pieces_of(std::string_view text) {
  Pieces pieces;
  for (std::string_view piece : lmt::data::gpt2_pieces(text)) pieces.emplace_back(piece);
  return pieces;
}

// Words built from random syllables, plus contractions, numbers, punctuation and non-ASCII,
// one or more per line, so that many safe split points exist and merges have much to learn.
std::string generated_text(uint32_t seed, size_t num_bytes) {
  static const char* const kSyllables[] = {"th", "e", "qu", "ick", "br", "own", "f", "ox", "j", "um", "ps",
                                           "ov", "er", "la", "zy", "do", "g", "in", "an", "re", "st", "é",
                                           "日本", "na", "ï", "ve", "KO", "ng", "s", "a"};
  static const char* const kExtras[] = {"'s", "'ll", "n't", " 42", " 3.14", "!!", " 🎉", "\t", "  ", ",", "."};
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < num_bytes) {
    for (uint32_t n = 1 + rng() % 3; n > 0; --n) text += kSyllables[rng() % std::size(kSyllables)];
    if (rng() % 4 == 0) text += kExtras[rng() % std::size(kExtras)];
    const uint32_t r = rng() % 10;
    text += r < 7 ? " " : r < 9 ? "\n" : "\n\n";
  }
  return text;
}

std::string random_bytes(std::mt19937& rng, size_t length) {
  std::string bytes(length, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
  return bytes;
}

BpeTrainOptions options_for(int vocab_size, int num_threads = 1) {
  BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.num_threads = num_threads;
  return options;
}

const Tokenizer& small_model() {
  static const Tokenizer tokenizer = Tokenizer::train_bpe_on_text(generated_text(1, 200000), options_for(600));
  return tokenizer;
}

void check_round_trip(const Tokenizer& tokenizer, const std::string& text) {
  const std::vector<int32_t> ids = tokenizer.encode(text);
  REQUIRE(tokenizer.decode(ids) == text);
}

// GPT-2's bpe() written the obvious way, to check the model's fast paths against.
std::vector<int32_t> reference_merge(const BpeModel& model, std::string_view piece) {
  std::vector<int32_t> parts;
  for (char c : piece) parts.push_back(model.byte_id(static_cast<unsigned char>(c)));
  while (parts.size() > 1) {
    std::optional<BpeModel::Merge> best;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto merge = model.find_merge(parts[i], parts[i + 1]);
      if (merge && (!best || merge->rank < best->rank)) best = merge, best_at = i;
    }
    if (!best) break;
    const int32_t left = parts[best_at], right = parts[best_at + 1];
    std::vector<int32_t> merged;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i + 1 < parts.size() && parts[i] == left && parts[i + 1] == right) {
        merged.push_back(best->id);
        ++i;
      } else {
        merged.push_back(parts[i]);
      }
    }
    parts = merged;
  }
  return parts;
}

// Training without any incremental bookkeeping: recount every pair before each merge.
struct NaiveBpe {
  std::vector<std::string> tokens;
  std::vector<std::pair<int32_t, int32_t>> merges;
};

NaiveBpe naive_train(std::string_view text, size_t num_tokens) {
  std::map<std::string, int64_t> counts;
  for (std::string_view piece : lmt::data::gpt2_pieces(text)) ++counts[std::string(piece)];
  NaiveBpe bpe;
  std::map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    bpe.tokens.emplace_back(1, static_cast<char>(b));
    id_of[bpe.tokens.back()] = b;
  }
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [piece, count] : counts) {
    std::vector<int32_t> ids;
    for (char c : piece) ids.push_back(static_cast<unsigned char>(c));
    words.emplace_back(ids, count);
  }
  while (bpe.tokens.size() < num_tokens) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pair_counts;
    for (const auto& [ids, count] : words) {
      for (size_t i = 0; i + 1 < ids.size(); ++i) pair_counts[{ids[i], ids[i + 1]}] += count;
    }
    if (pair_counts.empty()) break;
    auto best = pair_counts.begin();
    for (auto it = pair_counts.begin(); it != pair_counts.end(); ++it) {
      const auto key = [&](const auto& entry) {
        return std::make_tuple(-entry.second, bpe.tokens[entry.first.first], bpe.tokens[entry.first.second]);
      };
      if (key(*it) < key(*best)) best = it;
    }
    const auto [left, right] = best->first;
    const std::string bytes = bpe.tokens[left] + bpe.tokens[right];
    if (!id_of.count(bytes)) {
      id_of[bytes] = static_cast<int32_t>(bpe.tokens.size());
      bpe.tokens.push_back(bytes);
    }
    bpe.merges.emplace_back(left, right);
    for (auto& [ids, count] : words) {
      std::vector<int32_t> merged;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right) {
          merged.push_back(id_of[bytes]);
          ++i;
        } else {
          merged.push_back(ids[i]);
        }
      }
      ids = merged;
    }
  }
  return bpe;
}

}  // namespace

TEST_CASE("bpe pre-tokenizer: GPT-2's splits", "[data][bpe]") {
  CHECK(pieces_of("Hello world's  123 !!\n\n x") ==
        Pieces{"Hello", " world", "'s", " ", " 123", " !!", "\n\n", " x"});
  CHECK(pieces_of("a   b") == Pieces{"a", "  ", " b"});
  CHECK(pieces_of("  hello") == Pieces{" ", " hello"});
  CHECK(pieces_of("a\tb") == Pieces{"a", "\t", "b"});
  CHECK(pieces_of("a \tb") == Pieces{"a", " ", "\t", "b"});
  CHECK(pieces_of("a\t\t b") == Pieces{"a", "\t\t", " b"});
  CHECK(pieces_of("\n\nhello\n") == Pieces{"\n", "\n", "hello", "\n"});
  CHECK(pieces_of("end  \n ") == Pieces{"end", "  \n "});
  CHECK(pieces_of("I'm he'll we've they're it'd don't") ==
        Pieces{"I", "'m", " he", "'ll", " we", "'ve", " they", "'re", " it", "'d", " don", "'t"});
  CHECK(pieces_of("THEY'RE 'sa ''s '") == Pieces{"THEY", "'", "RE", " '", "sa", " ''", "s", " '"});
  CHECK(pieces_of("3.14abc x2 1,000") == Pieces{"3", ".", "14", "abc", " x", "2", " 1", ",", "000"});
  CHECK(pieces_of("foo!?bar ...baz") == Pieces{"foo", "!?", "bar", " ...", "baz"});
}

TEST_CASE("bpe pre-tokenizer: Unicode classes and invalid UTF-8", "[data][bpe]") {
  CHECK(pieces_of("héllo wörld 日本語 ١٢٣ 🎉🎉!") == Pieces{"héllo", " wörld", " 日本語", " ١٢٣", " 🎉🎉!"});
  CHECK(pieces_of("x² Ⅻ") == Pieces{"x", "²", " Ⅻ"});                       // No and Nl are numbers
  CHECK(pieces_of("a\u00A0b \u3000c") == Pieces{"a", "\u00A0", "b", " ", "\u3000", "c"});  // Unicode spaces
  CHECK(pieces_of("a\x1F b") == Pieces{"a", "\x1F", " b"});                   // str.isspace() spaces
  CHECK(pieces_of("ab\xFF\xFE" "cd") == Pieces{"ab", "\xFF\xFE", "cd"});
  CHECK(pieces_of("a \x80" "b") == Pieces{"a", " \x80", "b"});
  CHECK(pieces_of("caf\xC3") == Pieces{"caf", "\xC3"});                        // truncated é
  CHECK(pieces_of("\xED\xA0\x80x") == Pieces{"\xED\xA0\x80", "x"});           // surrogate: three "other" bytes
  CHECK(pieces_of("").empty());

  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string bytes = random_bytes(rng, rng() % 300);
    std::string joined;
    for (const std::string& piece : pieces_of(bytes)) {
      REQUIRE_FALSE(piece.empty());
      joined += piece;
    }
    REQUIRE(joined == bytes);
  }
}

TEST_CASE("bpe pre-tokenizer: cutting at safe split points changes no piece", "[data][bpe]") {
  // Text from a small alphabet rich in the characters that matter: newlines, spaces,
  // apostrophes, letters, digits, punctuation, non-ASCII and invalid bytes.
  static const char* const kAlphabet[] = {"\n", "\n", "\n", " ", " ", "a", "b", "'", "s", "1", ".", "é", "\xFF", "\t"};
  std::mt19937 rng(11);
  int num_safe_points = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    const size_t length = rng() % 60;
    for (size_t i = 0; i < length; ++i) text += kAlphabet[rng() % std::size(kAlphabet)];
    const Pieces whole = pieces_of(text);
    for (size_t p = 0; p <= text.size(); ++p) {
      if (!lmt::data::is_safe_split_point(text, p)) continue;
      ++num_safe_points;
      Pieces split = pieces_of(std::string_view(text).substr(0, p));
      const Pieces rest = pieces_of(std::string_view(text).substr(p));
      split.insert(split.end(), rest.begin(), rest.end());
      REQUIRE(split == whole);
    }
  }
  CHECK(num_safe_points > 100);
  CHECK(lmt::data::is_safe_split_point("a\nb", 2));
  CHECK_FALSE(lmt::data::is_safe_split_point("a\n b", 2));
  CHECK_FALSE(lmt::data::is_safe_split_point(" \nb", 2));
  CHECK(lmt::data::last_safe_split_point("a\nb\nc d") == 4u);
  CHECK(lmt::data::last_safe_split_point("no newline") == 0u);
}

TEST_CASE("bpe: decode(encode(x)) == x for any bytes", "[data][bpe]") {
  const Tokenizer& tokenizer = small_model();
  REQUIRE(tokenizer.kind() == "bpe");
  CHECK(tokenizer.encode("").empty());
  CHECK(tokenizer.decode(std::vector<int32_t>{}).empty());

  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  check_round_trip(tokenizer, all_bytes);
  check_round_trip(tokenizer, all_bytes + all_bytes + "the dog's");

  std::mt19937 rng(2024);
  for (int seed = 0; seed < 200; ++seed) {
    check_round_trip(tokenizer, random_bytes(rng, rng() % 2001));
  }
  const char* const invalid_utf8[] = {
      "\x80", "\xBF\x80\x80", "a\x80 b",                       // lone continuation bytes
      "\xC3", "\xE6\x97", "\xF0\x9F\x8E", "x\xE6\x97 y\xF0",   // truncated sequences
      "\xC0\xAF", "\xE0\x80\xAF", "\xF0\x80\x80\xAF",          // overlong forms
      "\xED\xA0\x80", "\xED\xBF\xBF the",                      // UTF-16 surrogates
      "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFE\xFF",  // above U+10FFFF, 5-byte, FE FF
  };
  for (const char* text : invalid_utf8) check_round_trip(tokenizer, text);
  check_round_trip(tokenizer, "héllo wörld — 日本語 🎉🎉 ١٢٣ x² \u00A0\u3000 \t\t\n\n\n   end   ");
  check_round_trip(tokenizer, std::string("nul\0inside", 10));
  check_round_trip(tokenizer, std::string(5000, ' ') + std::string(3000, 'a') + std::string(100, '\n'));
}

TEST_CASE("bpe: long pieces merge exactly like GPT-2's loop", "[data][bpe]") {
  const BpeModel& model = *small_model().bpe();
  std::mt19937 rng(5);
  const std::string letters = "thequickbrownfoxjumpsoverlazydog";
  for (int trial = 0; trial < 300; ++trial) {
    std::string piece;
    const size_t length = 1 + rng() % 400;  // both sides of the scan/heap threshold
    for (size_t i = 0; i < length; ++i) piece += letters[rng() % letters.size()];
    if (trial % 3 == 0) piece = std::string(length, letters[rng() % 4]);  // overlapping pairs
    REQUIRE(model.encode(piece) == reference_merge(model, piece));
  }
}

TEST_CASE("bpe training: vocabulary layout and the first merges", "[data][bpe]") {
  SECTION("the most frequent pair is merged first; ties go to the smaller bytes") {
    // Pieces "low", " lower", " lowest": (l,o) and (o,w) occur 3 times, so (l,o) wins the tie.
    BpeTrainSummary summary;
    const Tokenizer tokenizer = Tokenizer::train_bpe_on_text("low lower lowest", options_for(259), &summary);
    const BpeModel& model = *tokenizer.bpe();
    REQUIRE(model.vocab_size() == 259);
    CHECK(model.token_bytes(256) == "lo");
    CHECK(model.token_bytes(257) == "low");
    CHECK(model.merges() == std::vector<std::pair<int32_t, int32_t>>{{'l', 'o'}, {256, 'w'}});
    CHECK(model.token_bytes(258) == "<|endoftext|>");
    CHECK(tokenizer.eot_id() == 258);
    CHECK(summary.vocab_size == 259);
    CHECK(summary.num_merges == 2);
    CHECK_FALSE(summary.ran_out_of_pairs);
  }
  SECTION("ids: bytes, then merges, then special tokens; size as requested") {
    BpeTrainOptions options = options_for(700);
    options.special_tokens = {"<|endoftext|>", "<|pad|>"};
    const Tokenizer tokenizer = Tokenizer::train_bpe_on_text(generated_text(3, 100000), options);
    const BpeModel& model = *tokenizer.bpe();
    CHECK(tokenizer.vocab_size() == 700);
    for (int b = 0; b < 256; ++b) REQUIRE(model.byte_id(static_cast<unsigned char>(b)) == b);
    CHECK(model.special_id("<|endoftext|>") == 698);
    CHECK(model.special_id("<|pad|>") == 699);
    CHECK(tokenizer.eot_id() == 698);
    // Special names in the text are plain text.
    const std::vector<int32_t> ids = tokenizer.encode("a<|endoftext|>b");
    CHECK(std::find(ids.begin(), ids.end(), 698) == ids.end());
    CHECK(tokenizer.decode(std::vector<int32_t>{698, 699}) == "<|endoftext|><|pad|>");
  }
  SECTION("running out of pairs stops early") {
    BpeTrainSummary summary;
    const Tokenizer tokenizer = Tokenizer::train_bpe_on_text("ab ab", options_for(1000), &summary);
    CHECK(summary.ran_out_of_pairs);
    // Pieces "ab" and " ab": merging "ab", then " ab" leaves no pairs.
    CHECK(tokenizer.vocab_size() == 256 + 2 + 1);
    CHECK(summary.vocab_size == tokenizer.vocab_size());
    check_round_trip(tokenizer, "ab ab abc");
  }
  SECTION("bad options") {
    CHECK_THAT(error_message([] { Tokenizer::train_bpe_on_text("abc", options_for(256)); }),
               Contains("vocab size 256 is too small") && Contains("257"));
    CHECK(Tokenizer::train_bpe_on_text("abc", options_for(257)).vocab_size() == 257);
    BpeTrainOptions options = options_for(300);
    options.special_tokens = {"<|a|>", "<|a|>"};
    CHECK_THAT(error_message([&] { Tokenizer::train_bpe_on_text("abc", options); }), Contains("twice"));
    options.special_tokens = {""};
    CHECK_THAT(error_message([&] { Tokenizer::train_bpe_on_text("abc", options); }), Contains("empty"));
  }
}

TEST_CASE("bpe training: same merges as recounting every pair", "[data][bpe]") {
  const std::string text = generated_text(9, 30000) + "aaaaaaa abababab " + std::string(50, 'z');
  const NaiveBpe expected = naive_train(text, 256 + 200);
  const Tokenizer tokenizer = Tokenizer::train_bpe_on_text(text, options_for(256 + 200 + 1));
  const BpeModel& model = *tokenizer.bpe();
  REQUIRE(model.merges() == expected.merges);
  for (size_t id = 0; id < expected.tokens.size(); ++id) REQUIRE(model.token_bytes(static_cast<int32_t>(id)) == expected.tokens[id]);
}

TEST_CASE("bpe training: deterministic and independent of threads", "[data][bpe]") {
  const std::string text = generated_text(4, 1500000);  // several counting chunks
  REQUIRE(lmt::data::split_at_safe_points(text, 256 << 10).size() > 2);
  const Tokenizer one = Tokenizer::train_bpe_on_text(text, options_for(800, 1));
  const Tokenizer again = Tokenizer::train_bpe_on_text(text, options_for(800, 1));
  const Tokenizer two = Tokenizer::train_bpe_on_text(text, options_for(800, 2));
  const Tokenizer three = Tokenizer::train_bpe_on_text(text, options_for(800, 3));
  CHECK(one.to_json() == again.to_json());
  CHECK(one.to_json() == two.to_json());
  CHECK(one.to_json() == three.to_json());

  lmt::data::PieceCounts serial, parallel;
  lmt::data::count_pieces(text, 1, serial);
  lmt::data::count_pieces(text, 4, parallel);
  CHECK(serial == parallel);
}

TEST_CASE("bpe training: files are counted in blocks without changing the counts", "[data][bpe]") {
  TempDir dir;
  std::mt19937 rng(21);
  // Generated lines, then 30 KB without a newline (no safe split point), then random bytes.
  std::string text = generated_text(6, 200000);
  for (int i = 0; i < 10000; ++i) text += "ab ";
  text += random_bytes(rng, 3000) + "\nx";
  const std::string path = dir.file("input.txt");
  write_file(path, text);
  lmt::data::PieceCounts whole;
  lmt::data::count_pieces(text, 1, whole);
  for (const size_t block : {size_t{1000}, size_t{4096}, text.size(), text.size() + 1, size_t{64} << 20}) {
    lmt::data::PieceCounts blocked;
    std::vector<int64_t> reported;
    lmt::data::count_file_pieces(path, 2, blocked, [&](int64_t done) { reported.push_back(done); }, block);
    REQUIRE(blocked == whole);
    REQUIRE_FALSE(reported.empty());
    CHECK(std::is_sorted(reported.begin(), reported.end()));
    CHECK(reported.back() == static_cast<int64_t>(text.size()));
  }

  // Several files: each is counted on its own; here the boundary is a safe split point, so the
  // result equals training on the concatenation.
  const std::string first = generated_text(30, 50000) + "end\n", second = "start " + generated_text(31, 50000);
  write_file(dir.file("a.txt"), first);
  write_file(dir.file("b.txt"), second);
  BpeTrainSummary summary;
  BpeTrainOptions options = options_for(500);
  std::vector<lmt::data::BpeTrainProgress> progress;
  options.progress = [&](const lmt::data::BpeTrainProgress& p) { progress.push_back(p); };
  const Tokenizer from_files = Tokenizer::train_bpe({dir.file("a.txt"), dir.file("b.txt")}, options, &summary);
  CHECK(from_files.to_json() == Tokenizer::train_bpe_on_text(first + second, options_for(500)).to_json());
  const auto total_bytes = static_cast<int64_t>(first.size() + second.size());
  CHECK(summary.num_input_bytes == total_bytes);
  // Counting reports each file's end, then merging reaches the 243 learned tokens wanted.
  using Phase = lmt::data::BpeTrainProgress::Phase;
  REQUIRE(progress.size() > 3);
  CHECK((progress[0].phase == Phase::kCounting && progress[0].done == static_cast<int64_t>(first.size())));
  CHECK((progress[1].phase == Phase::kCounting && progress[1].done == total_bytes && progress[1].total == total_bytes));
  CHECK((progress.back().phase == Phase::kMerging && progress.back().done == 243 && progress.back().total == 243));

  CHECK_THAT(error_message([&] { Tokenizer::train_bpe({dir.file("a.txt"), dir.file("missing.txt")}, options_for(500)); }),
             Contains("missing.txt") && Contains("does not exist"));
  CHECK_THAT(error_message([&] { Tokenizer::train_bpe({dir.path().string()}, options_for(500)); }),
             Contains("is a directory"));
  CHECK_THAT(error_message([&] { Tokenizer::train_bpe({}, options_for(500)); }), Contains("at least one input file"));
  CHECK_THAT(error_message([&] { Tokenizer::train_bpe({dir.file("a.txt")}, options_for(100)); }),
             Contains("vocab size 100 is too small"));
}

TEST_CASE("bpe: encode_parallel equals encode", "[data][bpe]") {
  const Tokenizer& tokenizer = small_model();
  std::string text = generated_text(8, 1200000);
  std::mt19937 rng(3);
  text += random_bytes(rng, 5000) + "\nend";
  REQUIRE(lmt::data::split_at_safe_points(text, 64 << 10).size() > 4);
  const std::vector<int32_t> serial = tokenizer.encode(text);
  CHECK(tokenizer.encode_parallel(text, 2) == serial);
  CHECK(tokenizer.encode_parallel(text, 3) == serial);
  CHECK(tokenizer.encode_parallel(text, 0) == serial);
  CHECK(tokenizer.encode_parallel("short", 4) == tokenizer.encode("short"));
  const Tokenizer byte = Tokenizer::byte();
  CHECK(byte.encode_parallel(text, 2) == byte.encode(text));
  CHECK_FALSE(byte.eot_id().has_value());
}

TEST_CASE("bpe: encode_batch equals one encode per text, on any number of threads", "[data][bpe]") {
  const std::string text = generated_text(9, 300000);
  std::vector<std::string_view> docs;
  // Documents of 0 to ~2000 bytes cut from the text, with repeats so cached pieces are reused.
  std::mt19937 rng(5);
  for (size_t begin = 0; begin < text.size();) {
    const size_t length = std::min<size_t>(rng() % 2000, text.size() - begin);
    docs.push_back(std::string_view(text).substr(begin, length));
    begin += length + (rng() % 3 == 0 ? 0 : length / 2);
  }
  REQUIRE(docs.size() > 100);
  for (const Tokenizer* tokenizer : std::initializer_list<const Tokenizer*>{&small_model(), nullptr}) {
    const Tokenizer byte = Tokenizer::byte();
    const Tokenizer& t = tokenizer ? *tokenizer : byte;
    std::vector<std::vector<int32_t>> expected;
    for (auto doc : docs) expected.push_back(t.encode(doc));
    for (int threads : {1, 2, 3}) CHECK(t.encode_batch(docs, threads) == expected);
  }
}

TEST_CASE("bpe: decode rejects ids outside the vocabulary", "[data][bpe]") {
  const Tokenizer& tokenizer = small_model();
  const std::vector<int32_t> bad = {1, tokenizer.vocab_size()};
  CHECK_THAT(error_message([&] { tokenizer.decode(bad); }), Contains("token id 600 at position 1"));
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(tokenizer.decode(negative), lmt::Error);
}

TEST_CASE("bpe: save and load give identical encodings", "[data][bpe]") {
  TempDir dir;
  const Tokenizer& original = small_model();
  const std::string path = dir.file("tokenizer.json");
  original.save(path);
  const std::string json = read_file(path);
  CHECK_THAT(json, Contains("\"kind\": \"bpe\"") && Contains("\"pretokenizer\": \"gpt2\"") &&
                       Contains("\"special_tokens\": {\"<|endoftext|>\": 599}") && Contains("\"Ġ\""));
  const Tokenizer loaded = Tokenizer::load(path);
  CHECK(loaded.kind() == "bpe");
  CHECK(loaded.vocab_size() == original.vocab_size());
  CHECK(loaded.eot_id() == original.eot_id());
  CHECK(loaded.to_json() == json);
  const std::string text = generated_text(12, 50000) + "\xFF\xC3(";
  CHECK(loaded.encode(text) == original.encode(text));
  const Tokenizer copy = loaded;  // copies share the model
  CHECK(copy.bpe() == loaded.bpe());
}

namespace {

// A tiny GPT-2 pair: all 256 bytes (ids in a shuffled order, as GPT-2's are), then "Ġt", "he",
// "Ġthe", ..., "format" (a GPT-2 token too, which must not make vocab.json look like an lmtrain
// file), then <|endoftext|>.
struct TinyGpt2 {
  std::map<std::string, int> vocab;
  std::string merges = "#version: 0.2\nĠ t\nh e\nĠt he\nf o\nr m\na t\nfo rm\nform at\n";

  TinyGpt2() {
    for (int b = 0; b < 256; ++b) vocab[lmt::data::bytes_to_gpt2_text(std::string(1, static_cast<char>(b)))] = (b * 7 + 3) % 256;
    int id = 256;
    for (const char* token : {"Ġt", "he", "Ġthe", "fo", "rm", "at", "form", "format", "<|endoftext|>"}) vocab[token] = id++;
  }
  std::string vocab_json() const {
    std::string json = "{";
    for (const auto& [text, id] : vocab) json += (json.size() > 1 ? ", " : "") + nlohmann::json(text).dump() + ": " + std::to_string(id);
    return json + "}";
  }
  void write(const TempDir& dir) const {
    write_file(dir.file("vocab.json"), vocab_json());
    write_file(dir.file("merges.txt"), merges);
  }
};

std::string gpt2_load_error(const TinyGpt2& gpt2) {
  TempDir dir;
  gpt2.write(dir);
  return error_message([&] { Tokenizer::load_gpt2(dir.file("vocab.json"), dir.file("merges.txt")); });
}

}  // namespace

TEST_CASE("bpe: GPT-2 vocab.json and merges.txt", "[data][bpe]") {
  TempDir dir;
  const TinyGpt2 gpt2;
  gpt2.write(dir);
  const Tokenizer tokenizer = Tokenizer::load_gpt2(dir.file("vocab.json"), dir.file("merges.txt"));
  const auto id = [](char c) { return (static_cast<unsigned char>(c) * 7 + 3) % 256; };
  CHECK(tokenizer.vocab_size() == 265);
  CHECK(tokenizer.eot_id() == 264);
  CHECK(tokenizer.encode(" the") == std::vector<int32_t>{258});
  CHECK(tokenizer.encode("the") == std::vector<int32_t>{id('t'), 257});
  CHECK(tokenizer.encode(" theme the") == std::vector<int32_t>{258, id('m'), id('e'), 258});
  CHECK(tokenizer.encode("\n") == std::vector<int32_t>{id('\n')});
  CHECK(tokenizer.encode("format") == std::vector<int32_t>{263});
  CHECK(tokenizer.encode(" format") == std::vector<int32_t>{id(' '), 263});
  CHECK(tokenizer.decode(std::vector<int32_t>{258, id('!'), 264}) == " the!<|endoftext|>");
  check_round_trip(tokenizer, "the theme of the\xFF\xFE thesis");

  // Tokenizer::load takes the vocab.json directly when merges.txt is next to it, and the
  // lmtrain JSON form of the result loads back to the same model.
  const Tokenizer via_load = Tokenizer::load(dir.file("vocab.json"));
  CHECK(via_load.encode(" theme the") == tokenizer.encode(" theme the"));
  tokenizer.save(dir.file("converted.json"));
  CHECK(Tokenizer::load(dir.file("converted.json")).encode(" theme the") == tokenizer.encode(" theme the"));

  std::filesystem::remove(dir.file("merges.txt"));
  CHECK_THAT(error_message([&] { Tokenizer::load(dir.file("vocab.json")); }),
             Contains("looks like GPT-2's vocab.json") && Contains("merges.txt"));
}

TEST_CASE("bpe: GPT-2 file errors name the file and the line or entry", "[data][bpe]") {
  TempDir dir;
  CHECK_THAT(error_message([&] { Tokenizer::load_gpt2(dir.file("nope.json"), dir.file("merges.txt")); }),
             Contains("nope.json") && Contains("does not exist"));
  write_file(dir.file("vocab.json"), TinyGpt2().vocab_json());
  CHECK_THAT(error_message([&] { Tokenizer::load_gpt2(dir.file("vocab.json"), dir.file("merges.txt")); }),
             Contains("merges.txt") && Contains("does not exist"));
  write_file(dir.file("bad.json"), "{\"a\": ");
  CHECK_THAT(error_message([&] { Tokenizer::load_gpt2(dir.file("bad.json"), dir.file("merges.txt")); }),
             Contains("bad.json") && Contains("not valid JSON"));

  TinyGpt2 gpt2;
  gpt2.merges = "#version: 0.2\nĠ t\nh  e\n";
  CHECK_THAT(gpt2_load_error(gpt2), Contains("merges.txt' line 3") && Contains("two tokens"));
  gpt2.merges = "Ġ t\nĠt\n";
  CHECK_THAT(gpt2_load_error(gpt2), Contains("line 2") && Contains("found \"Ġt\""));
  gpt2.merges = "Ġ t\nh e\nĠt he\nĠt e\n";  // "Ġte" is not in the vocab
  CHECK_THAT(gpt2_load_error(gpt2), Contains("line 4") && Contains("merged token \"Ġte\" is not in the vocab"));
  gpt2.merges = "Ġ t\nxyz e\n";
  CHECK_THAT(gpt2_load_error(gpt2), Contains("line 2") && Contains("token \"xyz\" is not in the vocab"));
  gpt2.merges = "Ġ t\nh e\nĠt he\nh e\n";
  CHECK_THAT(gpt2_load_error(gpt2), Contains("line 4") && Contains("already appears on line 2"));

  gpt2 = TinyGpt2();
  gpt2.vocab.erase("A");
  gpt2.vocab["<|endoftext|>"] = (('A' * 7) + 3) % 256;  // keep the ids 0..N-1
  CHECK_THAT(gpt2_load_error(gpt2), Contains("vocab.json") && Contains("no token for byte 0x41"));
  gpt2 = TinyGpt2();
  gpt2.vocab["<|endoftext|>"] = 258;
  CHECK_THAT(gpt2_load_error(gpt2), Contains("vocab.json") && Contains("both have id 258"));
  gpt2 = TinyGpt2();
  gpt2.vocab["<|endoftext|>"] = 300;
  CHECK_THAT(gpt2_load_error(gpt2), Contains("entry \"<|endoftext|>\" has id 300"));
  gpt2 = TinyGpt2();
  gpt2.vocab["xyz"] = 265;
  CHECK_THAT(gpt2_load_error(gpt2), Contains("entry \"xyz\" (id 265)") && Contains("neither a single byte"));
  gpt2 = TinyGpt2();
  gpt2.vocab["日本"] = 265;
  CHECK_THAT(gpt2_load_error(gpt2), Contains("entry \"日本\" (id 265)") && Contains("byte alphabet"));
}

TEST_CASE("bpe: tokenizer JSON errors name the file and the entry", "[data][bpe]") {
  TempDir dir;
  const std::string good = Tokenizer::train_bpe_on_text("low lower lowest", options_for(259)).to_json();
  const auto load_error = [&](const std::string& json) {
    const std::string path = dir.file("tok.json");
    write_file(path, json);
    return error_message([&] { Tokenizer::load(path); });
  };
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string json = good;
    const size_t at = json.find(from);
    REQUIRE(at != std::string::npos);
    return json.replace(at, from.size(), to);
  };
  REQUIRE(Tokenizer::from_json(good, "x").vocab_size() == 259);
  CHECK_THAT(load_error(replaced("\"pretokenizer\": \"gpt2\"", "\"pretokenizer\": \"llama\"")),
             Contains("tok.json") && Contains("\"llama\""));
  CHECK_THAT(load_error(replaced("\"vocab_size\": 259", "\"vocab_size\": 300")), Contains("says vocab_size 300"));
  CHECK_THAT(load_error(replaced("\"lo\"", "\"日本\"")), Contains("tokens entry 256"));
  CHECK_THAT(load_error(replaced("\"low\"", "\"lo\"")), Contains("tokens 256 and 257 are both \"lo\""));
  CHECK_THAT(load_error(replaced("[256, 119]", "[256]")), Contains("merges entry 1"));
  CHECK_THAT(load_error(replaced("[256, 119]", "[256, 120]")), Contains("merge 1") && Contains("\"lox\", which is not a token"));
  CHECK_THAT(load_error(replaced("[256, 119]", "[256, 258]")), Contains("merge 1") && Contains("special token"));
  CHECK_THAT(load_error(replaced("[256, 119]", "[108, 111]")), Contains("repeats merge 0"));
  CHECK_THAT(load_error(replaced(",\n  [256, 119]", "")), Contains("token 257 (\"low\")") && Contains("no merge produces it"));
  CHECK_THAT(load_error(replaced("\"<|endoftext|>\": 258", "\"<|endoftext|>\": 257")), Contains("special token"));
  CHECK_THAT(load_error(replaced("\"tokens\"", "\"tokenz\"")), Contains("has no \"tokens\" list"));
}

TEST_CASE("bpe: tinyshakespeare, vocab 512", "[data][bpe]") {
  const std::string path = LMTRAIN_SOURCE_DIR "/../shared/data/tinyshakespeare.txt";
  if (!std::filesystem::exists(path)) {
    std::printf("SKIPPED: %s not found\n", path.c_str());
    return;
  }
  const std::string text = read_file(path);
  BpeTrainSummary summary;
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer = Tokenizer::train_bpe({path}, options_for(512, 2), &summary);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(tokenizer.vocab_size() == 512);
  CHECK(summary.num_input_bytes == static_cast<int64_t>(text.size()));
  const std::vector<int32_t> ids = tokenizer.encode_parallel(text, 2);
  CHECK(tokenizer.decode(ids) == text);
  const double tokens_per_byte = static_cast<double>(ids.size()) / static_cast<double>(text.size());
  std::printf("tinyshakespeare: vocab 512 trained in %.2f s, %zu tokens for %zu bytes = %.3f tokens/byte\n",
              seconds, ids.size(), text.size(), tokens_per_byte);
  CHECK(tokens_per_byte < 0.6);
}
