// A safetensors file (checkpoints, hf:DIR weights, test fixtures): read_safetensors, then every
// tensor converted as the readers convert it (to_f32, as_i32).
#include "core/error.h"
#include "core/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lmt::fuzz::scratch_dir() / "model.safetensors";
  lmt::fuzz::write_bytes(path, lmt::fuzz::as_text(data, size));
  try {
    const lmt::SafeTensorsFile file = lmt::read_safetensors(path.string());
    for (const auto& [name, tensor] : file.tensors) {
      try {
        if (tensor.dtype == "I32") {
          lmt::fuzz::require(tensor.as_i32().size() == tensor.numel(), "as_i32 size");
        } else {
          lmt::fuzz::require(tensor.to_f32().size() == tensor.numel(), "to_f32 size");
        }
      } catch (const lmt::Error&) {
      }
    }
  } catch (const lmt::Error&) {
  }
  return 0;
}
