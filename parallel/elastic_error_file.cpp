#include "parallel/elastic_error_file.h"

#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace lmt {

void write_torchelastic_error_file(const std::string& message, int exit_code) noexcept {
  const char* path = std::getenv("TORCHELASTIC_ERROR_FILE");
  if (path == nullptr || *path == '\0') return;
  try {
    // The layout Python's ErrorHandler writes; torchrun shows py_callstack as the traceback and
    // sets errorCode itself. lmtrain has no Python stack: its message stands in for it.
    const std::string text = "lmtrain exited " + std::to_string(exit_code) + ": " + message;
    const nlohmann::json record = {
        {"message",
         {{"message", text},
          {"extraInfo", {{"py_callstack", text}, {"timestamp", std::to_string(std::time(nullptr))}}}}},
    };
    // dump's replace mode: a message quoting a file's bytes must not make the JSON unreadable.
    write_file_atomic(path, record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } catch (...) {
    // The error was printed already; torchrun then reports the exit code alone.
  }
}

}  // namespace lmt
