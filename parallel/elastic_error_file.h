// torchrun's error file: a worker that fails may write why to $TORCHELASTIC_ERROR_FILE, and the
// torchrun agent then prints that message in its failure summary ("error_file: ...") instead of
// "To enable traceback see ...". Python workers write it through @record; lmtrain writes the
// same JSON from main.
#pragma once
#include <string>

namespace lmt {

// Writes `message` (and the exit code it ends with) to $TORCHELASTIC_ERROR_FILE when that is set;
// nothing otherwise. Never throws: the process is already failing, and its message has been
// printed.
void write_torchelastic_error_file(const std::string& message, int exit_code) noexcept;

}  // namespace lmt
