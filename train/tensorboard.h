// TensorBoard output: the reporter's records as scalars in TensorBoard event files
// (docs/metrics.md#tensorboard). An event file is a sequence of TFRecords, each a serialized
// Event (train/tensorboard_event.proto):
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
// Every run (a fresh start or a resume) opens a new file whose first events are the file version
// and a SessionLog START at the run's first step: TensorBoard then discards what older files of
// the same directory logged at that step or later, so a resumed run's view has no duplicate steps.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/reporter.h"

namespace lmt {

// CRC-32C, rotated right by 15 bits plus a constant: the checksum TFRecord stores, masked so that
// a CRC computed over data that holds CRCs stays well distributed.
uint32_t masked_crc32c(const void* data, size_t num_bytes);

// One TFRecord: the framing above around `data`.
std::string tfrecord(const std::string& data);

// TensorFlow's event file name: events.out.tfevents.<unix seconds, 10 digits>.<host>.<pid>.<n>.
std::string event_file_name(int64_t unix_seconds, const std::string& hostname, int64_t pid, int64_t n);

enum class SessionStatus { kStart = 1, kStop = 2, kCheckpoint = 3 };  // the proto's values

struct TensorboardScalar {
  std::string tag;
  double value = 0;  // stored as a float32
};

// A new event file in `dir` (created if missing) that begins with the file version record. Its
// name sorts after every event file already there, which is the order TensorBoard reads them in.
// Each event is flushed as it is written; failures throw lmt::Error naming the file.
class EventFileWriter {
 public:
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  const std::string& path() const { return path_; }
  void write_scalars(int64_t step, const std::vector<TensorboardScalar>& scalars);
  void write_session_log(int64_t step, SessionStatus status, const std::string& checkpoint_path = "");

 private:
  void write_record(const std::string& serialized_event);

  std::string path_;
  std::FILE* file_ = nullptr;
};

// The scalars of one report event (docs/metrics.md#tensorboard): every number of a training or
// overflow record as train/<key>, of an evaluation as val/<key> or val/<set>/<key> (val_loss as
// loss); `step` is the event's step, not a scalar. Other kinds give none.
std::vector<TensorboardScalar> tensorboard_scalars(const ReportEvent& event);

// A sink that writes the scalars to a new event file in `dir`. The file starts with a SessionLog
// START at step resume_step + 1 (1 for a fresh run); checkpoints add SessionLog CHECKPOINT events.
std::unique_ptr<ReportSink> make_tensorboard_sink(const std::string& dir, std::optional<int64_t> resume_step);

}  // namespace lmt
