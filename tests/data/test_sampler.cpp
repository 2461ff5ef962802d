#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <catch2/catch.hpp>
#include <map>
#include <numeric>
#include <set>

#include "data/sampler.h"
#include "data/shard.h"
#include "tests/test_util.h"

using namespace lmt::data;
using namespace lmt::testing;
using Catch::Matchers::Contains;

namespace {

constexpr int64_t kVocab = 1 << 20;

// Files whose token i of file f is f * 100000 + i, so a window's tokens reveal where it came from.
TokenDataset counting_dataset(const std::vector<size_t>& sizes) {
  TokenDataset dataset;
  dataset.key = "test";
  dataset.vocab_size = kVocab;
  for (size_t f = 0; f < sizes.size(); ++f) {
    std::vector<int32_t> tokens(sizes[f]);
    std::iota(tokens.begin(), tokens.end(), static_cast<int32_t>(f * 100000));
    dataset.files.push_back(TokenFile::from_tokens("file" + std::to_string(f), std::move(tokens), kVocab));
  }
  return dataset;
}

std::multiset<WindowRef> as_multiset(std::span<const WindowRef> windows) {
  return {windows.begin(), windows.end()};
}

}  // namespace

TEST_CASE("an epoch visits every window of every file exactly once, in a fresh order each epoch",
          "[data][sampler]") {
  const int T = 16;
  const TokenDataset dataset = counting_dataset({100, 17, 250, 64});
  WindowSampler sampler(dataset, T, 7);
  std::vector<std::vector<WindowRef>> epochs;
  for (uint64_t epoch = 0; epoch < 4; ++epoch) {
    uint64_t per_epoch = 0;
    for (uint32_t f = 0; f < dataset.files.size(); ++f) {
      const uint64_t n = sampler.windows_in(epoch, f);
      CHECK(n >= 1);
      CHECK(n <= (dataset.files[f].size() - 1) / T);
      per_epoch += n;
    }
    REQUIRE(sampler.position() == DataPosition{epoch, 0, 0});
    std::vector<WindowRef> windows = sampler.next(per_epoch);
    // Every window lies inside its file, windows of one file share one grid and none repeats.
    std::map<uint32_t, std::set<uint64_t>> starts;
    for (const WindowRef& w : windows) {
      REQUIRE(w.start + T + 1 <= dataset.files[w.file].size());
      CHECK(starts[w.file].insert(w.start).second);
    }
    for (auto& [file, set] : starts) {
      CHECK(set.size() == sampler.windows_in(epoch, file));
      const uint64_t offset = *set.begin() % T;
      CHECK(*set.begin() < static_cast<uint64_t>(T));
      for (uint64_t s : set) CHECK(s % T == offset);
    }
    CHECK(starts.size() == dataset.files.size());
    // Files are visited one after the other: the windows of a file are contiguous in the stream.
    std::set<uint32_t> finished;
    for (size_t i = 1; i < windows.size(); ++i) {
      if (windows[i].file != windows[i - 1].file) {
        CHECK(finished.insert(windows[i - 1].file).second);
        CHECK(finished.count(windows[i].file) == 0);
      }
    }
    epochs.push_back(std::move(windows));
  }
  CHECK(sampler.position() == DataPosition{4, 0, 0});
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);
  // Later epochs shift the grid of some file off offset 0, so window boundaries change.
  bool shifted = false;
  for (int e = 1; e < 4; ++e)
    for (const auto& w : epochs[e]) shifted = shifted || w.start % T != 0;
  CHECK(shifted);
  // Epoch 0 is not in file order for this seed, and within a file not in position order.
  CHECK_FALSE(std::is_sorted(epochs[0].begin(), epochs[0].end()));
}

TEST_CASE("the stream depends only on the seed", "[data][sampler]") {
  const TokenDataset dataset = counting_dataset({300, 200});
  WindowSampler a(dataset, 8, 1), b(dataset, 8, 1), c(dataset, 8, 2);
  const auto wa = a.next(100), wb = b.next(100), wc = c.next(100);
  CHECK(wa == wb);
  CHECK(wa != wc);
}

TEST_CASE("W ranks together see exactly the windows of one rank, step by step", "[data][sampler]") {
  const int T = 8;
  const TokenDataset dataset = counting_dataset({500, 130, 90, 333});
  const size_t global_batch = 12;  // divisible by 1, 2, 3 and 4
  const int steps = 40;            // several epochs
  WindowSampler single(dataset, T, 99);
  std::vector<std::vector<WindowRef>> reference;
  for (int s = 0; s < steps; ++s) reference.push_back(single.next(global_batch));
  for (int world = 1; world <= 4; ++world) {
    INFO("world size " << world);
    // Each rank runs its own sampler, as separate processes do.
    std::vector<WindowSampler> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(dataset, T, 99);
    for (int s = 0; s < steps; ++s) {
      std::multiset<WindowRef> seen;
      std::vector<int32_t> seen_tokens;
      for (int r = 0; r < world; ++r) {
        const std::vector<WindowRef> global = ranks[r].next(global_batch);
        const auto mine = rank_slice(global, r, world);
        CHECK(mine.size() == global_batch / world);
        for (const auto& w : mine) seen.insert(w);
        std::vector<int32_t> inputs(mine.size() * T), targets(inputs.size());
        read_windows(dataset, mine, T, inputs.data(), targets.data());
        seen_tokens.insert(seen_tokens.end(), inputs.begin(), inputs.end());
      }
      REQUIRE(seen == as_multiset(reference[s]));
      std::vector<int32_t> expected(global_batch * T), unused(expected.size());
      read_windows(dataset, reference[s], T, expected.data(), unused.data());
      CHECK(seen_tokens == expected);  // rank order = slice order
    }
  }
  CHECK_THAT(error_message([&] {
               const auto w = single.next(10);
               rank_slice(w, 0, 3);
             }),
             Contains("multiple of the world size"));
}

TEST_CASE("a saved position resumes the exact stream", "[data][sampler]") {
  const TokenDataset dataset = counting_dataset({200, 77, 150});
  WindowSampler straight(dataset, 10, 5);
  const auto expected = straight.next(200);  // crosses files and epochs
  for (size_t cut : {0, 1, 7, 19, 20, 33, 64, 150}) {
    WindowSampler first(dataset, 10, 5);
    first.next(cut);
    const DataPosition saved = first.position();
    WindowSampler resumed(dataset, 10, 5);
    resumed.seek(saved);
    const auto rest = resumed.next(200 - cut);
    CHECK(std::equal(rest.begin(), rest.end(), expected.begin() + static_cast<long>(cut)));
  }
  WindowSampler s(dataset, 10, 5);
  CHECK_THAT(error_message([&] { s.seek({0, 3, 0}); }), Contains("dataset has 3 files"));
  CHECK_THAT(error_message([&] { s.seek({0, 0, 1000}); }), Contains("window 1000"));
}

TEST_CASE("a shorter T reads the start of each window; targets are inputs shifted by one",
          "[data][sampler]") {
  const TokenDataset dataset = counting_dataset({100, 100});
  WindowSampler sampler(dataset, 32, 3);
  const auto windows = sampler.next(6);
  for (int T : {32, 8, 1}) {
    std::vector<int32_t> inputs(windows.size() * T), targets(inputs.size());
    read_windows(dataset, windows, T, inputs.data(), targets.data());
    for (size_t i = 0; i < windows.size(); ++i) {
      const int32_t first = static_cast<int32_t>(windows[i].file * 100000 + windows[i].start);
      for (int t = 0; t < T; ++t) {
        REQUIRE(inputs[i * T + t] == first + t);
        REQUIRE(targets[i * T + t] == first + t + 1);
      }
    }
  }
}

TEST_CASE("evaluation windows are fixed and spread evenly over all files", "[data][sampler]") {
  const int T = 10;
  SECTION("one file: the first window starts it, the last one ends it") {
    const TokenDataset dataset = counting_dataset({1000});
    const auto windows = eval_windows(dataset, 5, T);
    REQUIRE(windows.size() == 5);
    CHECK(windows.front().start == 0);
    CHECK(windows.back().start == 1000 - T - 1);
    for (size_t k = 0; k < windows.size(); ++k) CHECK(windows[k].start == k * (1000 - T - 1) / 4);
  }
  SECTION("several files are laid end to end") {
    const TokenDataset dataset = counting_dataset({50, 30, 80});
    const auto windows = eval_windows(dataset, 60, T);
    std::map<uint32_t, int> per_file;
    for (const auto& w : windows) {
      REQUIRE(w.start + T + 1 <= dataset.files[w.file].size());
      ++per_file[w.file];
    }
    CHECK(per_file.size() == 3);
    CHECK(per_file[2] > per_file[1]);  // in proportion to the files' sizes
    CHECK(windows.front() == WindowRef{0, 0});
    CHECK(windows.back() == WindowRef{2, 80 - T - 1});
    CHECK(eval_windows(dataset, 60, T) == windows);
  }
  SECTION("a single window") {
    const auto windows = eval_windows(counting_dataset({40}), 1, T);
    CHECK(windows == std::vector<WindowRef>{{0, 0}});
  }
}

TEST_CASE("datasets: globs, too-short files and mixed vocabularies are caught with the file named",
          "[data][sampler][errors]") {
  TempDir dir;
  std::vector<int32_t> tokens(300);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i % 50);
  write_shard(dir.file("train_000000.bin"), tokens, 50);
  write_shard(dir.file("train_000001.bin"), std::vector<int32_t>(tokens.begin(), tokens.begin() + 100), 50);
  const std::string pattern = dir.file("train_*.bin");

  const TokenDataset dataset = open_dataset(pattern, "data.train", lmt::ShardFormat::kLmtrain, 0, 65);
  REQUIRE(dataset.files.size() == 2);
  CHECK(dataset.files[0].path() == dir.file("train_000000.bin"));  // sorted by name
  CHECK(dataset.num_tokens() == 400);
  CHECK(dataset.vocab_size == 50);

  const std::string too_short = error_message([&] { open_dataset(pattern, "data.train", lmt::ShardFormat::kLmtrain, 0, 129); });
  CHECK_THAT(too_short, Contains("data.train") && Contains("train_000001.bin") && Contains("100 tokens") &&
                            Contains("needs 129"));
  CHECK_THAT(error_message([&] { open_dataset(dir.file("val_*.bin"), "data.val", lmt::ShardFormat::kLmtrain, 0, 2); }),
             Contains("data.val") && Contains("matches no files"));
  write_shard(dir.file("train_000002.bin"), tokens, 51);
  CHECK_THAT(error_message([&] { open_dataset(pattern, "data.train", lmt::ShardFormat::kLmtrain, 0, 2); }),
             Contains("train_000002.bin") && Contains("vocab size 51") && Contains("same tokenizer"));
  // A corrupt shard among many is named.
  write_file(dir.file("train_000002.bin"), "not a shard at all");
  CHECK_THAT(error_message([&] { open_dataset(pattern, "data.train", lmt::ShardFormat::kLmtrain, 0, 2); }),
             Contains("data.train") && Contains("train_000002.bin") && Contains("not an lmtrain token shard"));
}

TEST_CASE("memory-mapped shards read like the file, and every id is checked on all threads",
          "[data][sampler][errors]") {
  TempDir dir;
  // Large enough to be split over several scanning threads; the bad id sits near the end.
  std::vector<int32_t> tokens(3'000'001);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919) % 1000);
  write_shard(dir.file("big.bin"), tokens, 1000);
  for (int threads : {1, 2, 4}) {
    const TokenFile file = TokenFile::open(dir.file("big.bin"), lmt::ShardFormat::kLmtrain, 0, threads);
    CHECK(file.size() == tokens.size());
    std::vector<int32_t> window(5);
    file.read(2'999'996, 5, window.data());
    CHECK(std::equal(window.begin(), window.end(), tokens.end() - 5));
  }
  // Patch one id in place to 1000 (= vocab_size): the header is 64 bytes, tokens are uint16.
  std::string bytes = read_file(dir.file("big.bin"));
  const size_t bad = 2'999'990;
  bytes[64 + 2 * bad] = static_cast<char>(1000 & 0xFF);
  bytes[64 + 2 * bad + 1] = static_cast<char>(1000 >> 8);
  write_file(dir.file("big.bin"), bytes);
  for (int threads : {1, 3}) {
    CHECK_THAT(error_message([&] { TokenFile::open(dir.file("big.bin"), lmt::ShardFormat::kLmtrain, 0, threads); }),
               Contains("big.bin") && Contains("index 2999990 is 1000") && Contains("vocabulary size is 1000"));
  }
  CHECK_THAT(error_message([&] { TokenFile::open(dir.path().string(), lmt::ShardFormat::kLmtrain, 0); }), Contains("directory"));
}

TEST_CASE("TokenFile: a FIFO, a device and a symlink loop are refused before open() could block", "[data][errors]") {
  TempDir dir;
  const std::string fifo = dir.file("fifo.bin");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // no writer: open() would wait forever
  CHECK_THAT(error_message([&] { TokenFile::open(fifo, lmt::ShardFormat::kLmtrain, 0); }),
             Contains("fifo.bin") && Contains("is not a regular file"));
  CHECK_THAT(error_message([&] { TokenFile::open("/dev/zero", lmt::ShardFormat::kLlmc, 65); }),
             Contains("'/dev/zero' is not a regular file"));
  std::filesystem::create_symlink("loop_b.bin", dir.file("loop_a.bin"));
  std::filesystem::create_symlink("loop_a.bin", dir.file("loop_b.bin"));
  const std::string loop_message =
      error_message([&] { TokenFile::open(dir.file("loop_a.bin"), lmt::ShardFormat::kNanogpt, 65); });
  CHECK_THAT(loop_message, Contains("loop_a.bin' cannot be reached") && Contains("symbolic links"));
  CHECK_FALSE(Catch::Matchers::Contains("does not exist").match(loop_message));
}

TEST_CASE("TokenFile: reading nothing from an empty 4-byte shard touches no memory", "[data][fuzz]") {
  // fuzz_shard found read(0, 0, nullptr) on a 4-byte shard of no tokens: memcpy from the unmapped
  // (null) file into an empty vector's null data, undefined behaviour for UBSan even at length 0.
  TempDir dir;
  const std::vector<int32_t> none;
  lmt::data::write_shard(dir.file("empty.bin"), none, 100000);  // more than 65535 ids: 4-byte tokens
  const TokenFile file = TokenFile::open(dir.file("empty.bin"), lmt::ShardFormat::kLmtrain, 0);
  CHECK(file.size() == 0);
  std::vector<int32_t> out;
  file.read(0, 0, out.data());
  CHECK(file.read_all().empty());
}
