#include "train/reporter.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/strings.h"
#include "train/metrics.h"

namespace lmt {
namespace {

class ConsoleSink final : public ReportSink {
 public:
  void on_event(const ReportEvent& event) override {
    if (event.line.empty()) return;
    fmt::print("{}\n", event.line);
    std::fflush(stdout);
  }
};

class JsonlSink final : public ReportSink {
 public:
  JsonlSink(const std::string& path, bool append) : writer_(path, append) {}
  void on_event(const ReportEvent& event) override {
    if (!event.record.is_null()) writer_.write(event.record);
  }

 private:
  MetricsWriter writer_;
};

nlohmann::json optional_json(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json();
}

}  // namespace

std::unique_ptr<ReportSink> make_console_sink() { return std::make_unique<ConsoleSink>(); }
std::unique_ptr<ReportSink> make_jsonl_sink(const std::string& path, bool append) {
  return std::make_unique<JsonlSink>(path, append);
}

void Reporter::emit(const ReportEvent& event) {
  for (auto& sink : sinks_) sink->on_event(event);
}

void Reporter::step(const StepReport& s) {
  nlohmann::json record = {{"step", s.step},
                           {"loss", s.loss},
                           {"lr", s.lr},
                           {"grad_norm", s.grad_norm},
                           {"ms", s.ms},
                           {"tokens_per_s", s.tokens_per_s},
                           {"mfu", optional_json(s.mfu)},
                           {"tokens", s.tokens_seen},
                           {"seq_len", s.seq_len},
                           {"loss_scale", optional_json(s.loss_scale)},
                           {"elapsed_s", s.elapsed_s}};
  std::string line = fmt::format(
      "step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} |{}{} {:.1f} ms | {} tok/s | mfu {} | eta {}", s.step,
      s.total_steps, s.loss, s.lr, s.grad_norm, s.show_seq_len ? fmt::format(" T {} |", s.seq_len) : std::string(),
      s.loss_scale ? fmt::format(" scale {:g} |", *s.loss_scale) : std::string(), s.ms, human_count(s.tokens_per_s),
      s.mfu ? fmt::format("{:.1f}%", *s.mfu * 100) : std::string("-"), human_duration(s.eta_s));
  emit({"step", std::move(record), std::move(line)});
}

void Reporter::overflow(int64_t step, int64_t total_steps, double old_scale, double new_scale, int64_t skipped) {
  emit({"overflow",
        {{"step", step}, {"event", "overflow"}, {"loss_scale", new_scale}, {"skipped_steps", skipped}},
        fmt::format("step {:>6}/{} | fp16 gradients overflowed; step skipped, loss scale {} -> {} ({} skipped)", step,
                    total_steps, old_scale, new_scale, skipped)});
}

void Reporter::divergence_skip(int64_t step, int64_t total_steps, double loss, double loss_mean, double grad_norm,
                               double grad_norm_mean, const std::string& why, int64_t skipped) {
  emit({"divergence_skip",
        {{"step", step},
         {"event", "divergence_skip"},
         {"loss", loss},
         {"loss_mean", loss_mean},
         {"grad_norm", grad_norm},
         {"grad_norm_mean", grad_norm_mean},
         {"divergence_skipped_steps", skipped}},
        fmt::format("step {:>6}/{} | diverged: {}; step skipped ({} skipped)", step, total_steps, why, skipped)});
}

void Reporter::eval(int64_t step, int64_t total_steps, const std::string& set, double loss,
                    std::optional<double> loss_floor, double ms) {
  if (!set.empty()) {
    emit({"eval",
          {{"step", step}, {"set", set}, {"val_loss", loss}, {"ms", ms}},
          fmt::format("step {:>6}/{} | {} loss {:.4f} | {:.0f} ms", step, total_steps, set, loss, ms)});
    return;
  }
  nlohmann::json record = {{"step", step}, {"val_loss", loss}, {"ms", ms}};
  std::string floor_text;
  if (loss_floor) {
    record["loss_floor"] = *loss_floor;
    floor_text = fmt::format(" (floor {:.4f})", *loss_floor);
  }
  emit({"eval", std::move(record),
        fmt::format("step {:>6}/{} | val loss {:.4f}{} | {:.0f} ms", step, total_steps, loss, floor_text, ms)});
}

void Reporter::checkpoint(int64_t step, int64_t total_steps, const std::string& dir, double ms) {
  emit({"checkpoint",
        {{"event", "checkpoint"}, {"step", step}, {"path", dir}},
        fmt::format("step {:>6}/{} | saved {} ({:.0f} ms)", step, total_steps, dir, ms)});
}

}  // namespace lmt
