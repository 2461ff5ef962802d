#include "train/tensorboard.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/checksum.h"
#include "core/error.h"
#include "train/tensorboard_event.pb.h"

namespace lmt {
namespace {

constexpr const char* kEventFilePrefix = "events.out.tfevents.";
constexpr const char* kFileVersion = "brain.Event:2";

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

void put_le(std::string& out, uint64_t value, int num_bytes) {
  for (int i = 0; i < num_bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// TensorBoard reads a directory's event files in name order and purges by step as it goes, so
// a new file must sort after the existing ones, also when one was opened in the same second or
// carries a later time (another host's clock): then it takes the newest file's seconds + 1.
int64_t seconds_after_existing(const std::filesystem::path& dir, int64_t seconds, const std::string& host,
                               int64_t pid, int64_t n) {
  const std::string prefix = kEventFilePrefix;
  std::string newest;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name > newest) newest = name;
  }
  if (newest.empty() || event_file_name(seconds, host, pid, n) > newest) return seconds;
  const std::string digits = newest.substr(prefix.size(), newest.find('.', prefix.size()) - prefix.size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 10)
    return seconds;  // not a name of this form: nothing sorts after it by time
  return std::stoll(digits) + 1;
}

class TensorboardSink final : public ReportSink {
 public:
  TensorboardSink(const std::string& dir, std::optional<int64_t> resume_step) : writer_(dir) {
    writer_.write_session_log(resume_step.value_or(0) + 1, SessionStatus::kStart);
  }

  void on_event(const ReportEvent& event) override {
    if (!event.record.is_object() || !event.record.contains("step")) return;
    const int64_t step = event.record["step"].get<int64_t>();
    if (event.kind == "checkpoint") {
      writer_.write_session_log(step, SessionStatus::kCheckpoint, event.record.value("path", ""));
      return;
    }
    const std::vector<TensorboardScalar> scalars = tensorboard_scalars(event);
    if (!scalars.empty()) writer_.write_scalars(step, scalars);
  }

 private:
  EventFileWriter writer_;
};

}  // namespace

uint32_t masked_crc32c(const void* data, size_t num_bytes) {
  const uint32_t crc = crc32c(data, num_bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

std::string event_file_name(int64_t unix_seconds, const std::string& hostname, int64_t pid, int64_t n) {
  return fmt::format("{}{:010d}.{}.{}.{}", kEventFilePrefix, unix_seconds, hostname, pid, n);
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  // Distinguishes two files one process opens in the same second.
  static std::atomic<int64_t> num_files_opened{0};
  const std::filesystem::path root(dir);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) throw Error(fmt::format("cannot create TensorBoard directory '{}': {}", dir, ec.message()));
  const std::string host = hostname();
  const int64_t pid = ::getpid();
  const int64_t n = num_files_opened++;
  const auto now = static_cast<int64_t>(unix_time_now());
  int64_t seconds = now;
  try {
    seconds = seconds_after_existing(root, now, host, pid, n);
  } catch (const std::filesystem::filesystem_error& e) {
    throw Error(fmt::format("cannot list TensorBoard directory '{}': {}", dir, e.code().message()));
  }
  path_ = (root / event_file_name(seconds, host, pid, n)).string();
  file_ = std::fopen(path_.c_str(), "wbx");  // never over an existing file
  if (!file_) throw Error(fmt::format("cannot create TensorBoard event file '{}': {}", path_, std::strerror(errno)));
  tensorboard::Event event;
  event.set_wall_time(unix_time_now());
  event.set_file_version(kFileVersion);
  write_record(event.SerializeAsString());
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::write_scalars(int64_t step, const std::vector<TensorboardScalar>& scalars) {
  tensorboard::Event event;
  event.set_wall_time(unix_time_now());
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const TensorboardScalar& scalar : scalars) {
    tensorboard::Summary::Value* value = summary->add_value();
    value->set_tag(scalar.tag);
    value->set_simple_value(static_cast<float>(scalar.value));
  }
  write_record(event.SerializeAsString());
}

void EventFileWriter::write_session_log(int64_t step, SessionStatus status, const std::string& checkpoint_path) {
  tensorboard::Event event;
  event.set_wall_time(unix_time_now());
  event.set_step(step);
  tensorboard::SessionLog* log = event.mutable_session_log();
  log->set_status(static_cast<tensorboard::SessionLog::SessionStatus>(status));
  if (!checkpoint_path.empty()) log->set_checkpoint_path(checkpoint_path);
  write_record(event.SerializeAsString());
}

void EventFileWriter::write_record(const std::string& serialized_event) {
  // A user watches the run live: every event reaches the file at once.
  const std::string record = tfrecord(serialized_event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    throw Error(fmt::format("cannot write TensorBoard event file '{}': {}", path_, std::strerror(errno)));
}

std::vector<TensorboardScalar> tensorboard_scalars(const ReportEvent& event) {
  std::string prefix;
  if (event.kind == "step" || event.kind == "overflow") {
    prefix = "train/";
  } else if (event.kind == "eval") {
    prefix = event.record.contains("set") ? "val/" + event.record["set"].get<std::string>() + "/" : "val/";
  } else {
    return {};
  }
  std::vector<TensorboardScalar> scalars;
  for (const auto& [key, value] : event.record.items()) {
    // null (mfu without log.peak_tflops, loss_scale outside fp16) is no value, not zero.
    if (key == "step" || !value.is_number()) continue;
    scalars.push_back({prefix + (key == "val_loss" ? std::string("loss") : key), value.get<double>()});
  }
  return scalars;
}

std::unique_ptr<ReportSink> make_tensorboard_sink(const std::string& dir, std::optional<int64_t> resume_step) {
  return std::make_unique<TensorboardSink>(dir, resume_step);
}

}  // namespace lmt
