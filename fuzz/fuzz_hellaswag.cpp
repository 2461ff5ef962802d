// `lmtrain eval --task hellaswag --data FILE.jsonl`: read_choice_examples.
#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "train/hellaswag.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lmt::fuzz::scratch_dir() / "hellaswag.jsonl";
  lmt::fuzz::write_bytes(path, lmt::fuzz::as_text(data, size));
  try {
    for (const auto& example : lmt::read_choice_examples(path.string()))
      lmt::fuzz::require(example.endings.size() >= 2 && example.label >= 0 &&
                             example.label < static_cast<int>(example.endings.size()),
                         "a read example has >= 2 endings and a label among them");
  } catch (const lmt::Error&) {
  }
  return 0;
}
