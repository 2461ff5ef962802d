// A .lmtrain_env file as `lmtrain launch` applies it to every worker: read_env_file.
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "parallel/launcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lmt::read_env_file(std::string(lmt::fuzz::as_text(data, size)), "fuzz/.lmtrain_env");
  } catch (const lmt::Error&) {
  }
  return 0;
}
