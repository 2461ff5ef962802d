// What a training run tells the world, as events. Each event is rendered once, into its JSON
// record (a line of metrics.jsonl, docs/metrics.md) and its console line, and handed to every
// sink: the console, the JSON-lines file, and whatever else plugs in (a TensorBoard writer reads
// the records). Rank 0 reports; the other ranks hold a reporter without sinks.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lmt {

struct ReportEvent {
  std::string kind;       // start, resume, step, overflow, eval, checkpoint, notice, end
  nlohmann::json record;  // null: nothing for the metrics file
  std::string line;       // empty: nothing for the console
};

class ReportSink {
 public:
  virtual ~ReportSink() = default;
  virtual void on_event(const ReportEvent& event) = 0;
};

// The console: each line on stdout, flushed (progress must show up in a file or a pipe).
std::unique_ptr<ReportSink> make_console_sink();
// metrics.jsonl: each record as one line, flushed; append continues a resumed run's file.
std::unique_ptr<ReportSink> make_jsonl_sink(const std::string& path, bool append);

// One training step as the console and metrics show it (averages over the logging window).
struct StepReport {
  int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double ms = 0, tokens_per_s = 0;
  std::optional<double> mfu;
  int64_t tokens_seen = 0;
  int seq_len = 0;
  bool show_seq_len = false;           // a sequence-length schedule is on
  std::optional<double> loss_scale;    // fp16
  double elapsed_s = 0, eta_s = 0;
};

class Reporter {
 public:
  void add_sink(std::unique_ptr<ReportSink> sink) { sinks_.push_back(std::move(sink)); }
  void emit(const ReportEvent& event);

  void notice(const std::string& line) { emit({"notice", nullptr, line}); }
  void step(const StepReport& s);
  void overflow(int64_t step, int64_t total_steps, double old_scale, double new_scale, int64_t skipped);
  // run.divergence: skip dropped this step's update; `skipped`: the run's divergence skips so far.
  void divergence_skip(int64_t step, int64_t total_steps, double loss, double loss_mean, double grad_norm,
                       double grad_norm_mean, const std::string& why, int64_t skipped);
  // An evaluation: set empty for the validation split, else the name of an eval.sets entry.
  void eval(int64_t step, int64_t total_steps, const std::string& set, double loss,
            std::optional<double> loss_floor, double ms);
  void checkpoint(int64_t step, int64_t total_steps, const std::string& dir, double ms);

 private:
  std::vector<std::unique_ptr<ReportSink>> sinks_;
};

}  // namespace lmt
