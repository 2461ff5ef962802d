// Metrics as JSON lines in the run directory (schema in docs/metrics.md) plus console lines.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace lmt {

class MetricsWriter {
 public:
  // append: continue an existing file (a resumed run) instead of starting a new one. An empty
  // path writes nothing (ranks other than 0).
  MetricsWriter(const std::string& path, bool append);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  // Appends one line and flushes, so a crash loses at most the line being written.
  void write(const nlohmann::json& record);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace lmt
