// TensorBoard event files (train/tensorboard.h): the TFRecord framing and its masked CRC-32C
// against values computed here bit by bit (and by TensorBoard's own Python implementation), the
// file name, and the written file read back record by record with the generated protobuf classes.
// TensorBoard itself reads a trained run's files in tests/cli/test_tensorboard_reader.cpp.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/test_util.h"
#include "train/reporter.h"
#include "train/tensorboard.h"
#include "train/tensorboard_event.pb.h"

namespace lmt {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

// CRC-32C one bit at a time (reflected polynomial 0x82F63B78), independent of core/checksum.cpp's tables.
uint32_t bitwise_crc32c(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

uint32_t bitwise_masked(const std::string& bytes) {
  const uint32_t crc = bitwise_crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t read_le(const std::string& bytes, size_t at, int num_bytes) {
  uint64_t value = 0;
  for (int i = 0; i < num_bytes; ++i) value |= uint64_t(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return value;
}

// Every record of an event file, each checked against both of its CRCs.
std::vector<tensorboard::Event> read_events(const fs::path& path) {
  const std::string bytes = testing::read_file(path);
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    REQUIRE(at + 12 <= bytes.size());
    const uint64_t length = read_le(bytes, at, 8);
    CHECK(read_le(bytes, at + 8, 4) == bitwise_masked(bytes.substr(at, 8)));
    REQUIRE(at + 12 + length + 4 <= bytes.size());
    const std::string data = bytes.substr(at + 12, length);
    CHECK(read_le(bytes, at + 12 + length, 4) == bitwise_masked(data));
    tensorboard::Event event;
    REQUIRE(event.ParseFromString(data));
    events.push_back(event);
    at += 12 + length + 4;
  }
  return events;
}

// (tag, value) of a report event's scalars, by tag.
std::vector<std::pair<std::string, double>> scalars_of(const ReportEvent& event) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& s : tensorboard_scalars(event)) out.emplace_back(s.tag, s.value);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("tensorboard: masked CRC-32C and TFRecord framing", "[train][tensorboard]") {
  // The CRC-32C check value, and the masked values TensorBoard's masked_crc32c gives.
  CHECK(bitwise_crc32c("123456789") == 0xE3069283u);
  CHECK(masked_crc32c("123456789", 9) == 0xC78AB0E5u);
  CHECK(masked_crc32c("123456789", 9) == bitwise_masked("123456789"));
  CHECK(masked_crc32c("abc", 3) == 0x21F1576Eu);

  const std::string record = tfrecord("abc");
  REQUIRE(record.size() == 8 + 4 + 3 + 4);
  const std::string length("\x03\0\0\0\0\0\0\0", 8);
  CHECK(record.substr(0, 8) == length);
  CHECK(read_le(record, 8, 4) == 0x0E4999B0u);  // masked CRC of the 8 length bytes
  CHECK(read_le(record, 8, 4) == bitwise_masked(length));
  CHECK(record.substr(12, 3) == "abc");
  CHECK(read_le(record, 15, 4) == 0x21F1576Eu);

  const std::string empty = tfrecord("");
  REQUIRE(empty.size() == 16);
  CHECK(read_le(empty, 12, 4) == bitwise_masked(""));
}

TEST_CASE("tensorboard: event file names are TensorFlow's and sort in the order of writing", "[train][tensorboard]") {
  CHECK(event_file_name(1700000000, "node7", 4242, 3) == "events.out.tfevents.1700000000.node7.4242.3");
  CHECK(event_file_name(99, "h", 1, 0) == "events.out.tfevents.0000000099.h.1.0");

  TempDir dir;
  const fs::path tb = dir.path() / "nested" / "tensorboard";
  // A name from the future (a clock step back, or another host) still sorts before the next file.
  fs::create_directories(tb);
  testing::write_file(tb / event_file_name(4000000000, "zzz", 1, 0), "");
  EventFileWriter first(tb.string());
  EventFileWriter second(tb.string());
  const std::string name = fs::path(first.path()).filename().string();
  const std::regex pattern(R"(events\.out\.tfevents\.\d{10}\.[^.]+.*\.)" + std::to_string(::getpid()) + R"(\.\d+)");
  CHECK(std::regex_match(name, pattern));
  const std::vector<fs::path> files = event_files(tb);
  REQUIRE(files.size() == 3);
  CHECK(files[1] == fs::path(first.path()));
  CHECK(files[2] == fs::path(second.path()));
}

TEST_CASE("tensorboard: records become train/, val/ and val/<set>/ scalars", "[train][tensorboard]") {
  const ReportEvent step{"step",
                         {{"step", 20}, {"loss", 3.5}, {"lr", 1e-3}, {"mfu", nullptr}, {"loss_scale", nullptr},
                          {"seq_len", 64}, {"tokens_per_s", 2000.0}},
                         "line"};
  const std::vector<std::pair<std::string, double>> expected = {
      {"train/loss", 3.5}, {"train/lr", 1e-3}, {"train/seq_len", 64}, {"train/tokens_per_s", 2000.0}};
  CHECK(scalars_of(step) == expected);

  const ReportEvent val{"eval", {{"step", 20}, {"val_loss", 2.5}, {"ms", 3.0}, {"loss_floor", 0.8}}, ""};
  CHECK(scalars_of(val) ==
        std::vector<std::pair<std::string, double>>{{"val/loss", 2.5}, {"val/loss_floor", 0.8}, {"val/ms", 3.0}});

  const ReportEvent set{"eval", {{"step", 20}, {"set", "wiki"}, {"val_loss", 2.25}, {"ms", 1.0}}, ""};
  CHECK(scalars_of(set) == std::vector<std::pair<std::string, double>>{{"val/wiki/loss", 2.25}, {"val/wiki/ms", 1.0}});

  const ReportEvent overflow{"overflow", {{"step", 3}, {"event", "overflow"}, {"loss_scale", 512.0}, {"skipped_steps", 2}}, ""};
  CHECK(scalars_of(overflow) ==
        std::vector<std::pair<std::string, double>>{{"train/loss_scale", 512.0}, {"train/skipped_steps", 2}});

  CHECK(tensorboard_scalars({"start", {{"event", "start"}, {"step", 0}, {"parameters", 100}}, ""}).empty());
  CHECK(tensorboard_scalars({"end", {{"event", "end"}, {"steps", 6}, {"loss", 1.0}}, ""}).empty());
}

TEST_CASE("tensorboard: the sink's file parses back to its events", "[train][tensorboard]") {
  TempDir dir;
  const fs::path tb = dir.path() / "tb";
  {
    Reporter reporter;
    reporter.add_sink(make_tensorboard_sink(tb.string(), 10));
    reporter.notice("a console line only");
    reporter.emit({"resume", {{"event", "resume"}, {"step", 10}, {"parameters", 100}}, ""});
    StepReport report;
    report.step = 11;
    report.loss = 3.25;
    report.lr = 6e-4;
    report.grad_norm = 0.5;
    report.ms = 12.5;
    report.tokens_per_s = 1024;
    report.tokens_seen = 11 * 64;
    report.seq_len = 16;
    report.elapsed_s = 0.1;
    reporter.step(report);
    reporter.eval(12, 20, "", 2.75, 0.5, 4.0);
    reporter.checkpoint(12, 20, "ckpt/step_00000012", 1.0);
  }
  const std::vector<fs::path> files = event_files(tb);
  REQUIRE(files.size() == 1);
  const std::vector<tensorboard::Event> events = read_events(files[0]);
  REQUIRE(events.size() == 5);
  CHECK(events[0].file_version() == "brain.Event:2");
  CHECK(events[0].wall_time() > 1.6e9);
  // The resumed run starts at the step after its checkpoint.
  REQUIRE(events[1].has_session_log());
  CHECK(events[1].session_log().status() == tensorboard::SessionLog::START);
  CHECK(events[1].step() == 11);

  REQUIRE(events[2].has_summary());
  CHECK(events[2].step() == 11);
  std::vector<std::pair<std::string, float>> values;
  for (const auto& value : events[2].summary().value()) {
    CHECK(value.value_case() == tensorboard::Summary::Value::kSimpleValue);
    values.emplace_back(value.tag(), value.simple_value());
  }
  const std::vector<std::pair<std::string, float>> expected = {
      {"train/elapsed_s", 0.1f},      {"train/grad_norm", 0.5f}, {"train/loss", 3.25f},
      {"train/lr", 6e-4f},            {"train/ms", 12.5f},       {"train/seq_len", 16.0f},
      {"train/tokens", 704.0f},       {"train/tokens_per_s", 1024.0f}};
  std::sort(values.begin(), values.end());
  CHECK(values == expected);

  REQUIRE(events[3].has_summary());
  CHECK(events[3].step() == 12);
  std::vector<std::pair<std::string, float>> val_values;
  for (const auto& value : events[3].summary().value()) val_values.emplace_back(value.tag(), value.simple_value());
  std::sort(val_values.begin(), val_values.end());
  CHECK(val_values == std::vector<std::pair<std::string, float>>{{"val/loss", 2.75f}, {"val/loss_floor", 0.5f}, {"val/ms", 4.0f}});

  REQUIRE(events[4].has_session_log());
  CHECK(events[4].step() == 12);
  CHECK(events[4].session_log().status() == tensorboard::SessionLog::CHECKPOINT);
  CHECK(events[4].session_log().checkpoint_path() == "ckpt/step_00000012");
}

TEST_CASE("tensorboard: a fresh run's file starts at step 1", "[train][tensorboard]") {
  TempDir dir;
  { auto sink = make_tensorboard_sink(dir.file("tb"), std::nullopt); }
  const std::vector<tensorboard::Event> events = read_events(event_files(dir.path() / "tb").at(0));
  REQUIRE(events.size() == 2);
  CHECK(events[1].session_log().status() == tensorboard::SessionLog::START);
  CHECK(events[1].step() == 1);
}

TEST_CASE("tensorboard: a directory that cannot be made is an error naming it", "[train][tensorboard]") {
  TempDir dir;
  testing::write_file(dir.path() / "file", "x");
  const std::string target = (dir.path() / "file" / "tb").string();
  const std::string message = testing::error_message([&] { make_tensorboard_sink(target, std::nullopt); });
  CHECK_THAT(message, Catch::Contains("cannot create TensorBoard directory") && Catch::Contains(target));
}

}  // namespace lmt
