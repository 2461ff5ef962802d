// A tokenizer file as `lmtrain data tokenizer encode|decode`, generate and eval read it
// (Tokenizer::load is from_json on the file's text): from_json, then encode and decode, and the
// round trip through to_json.
#include <numeric>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<lmt::data::Tokenizer> tokenizer;
  try {
    tokenizer = lmt::data::Tokenizer::from_json(lmt::fuzz::as_text(data, size), "fuzz-tokenizer.json");
  } catch (const lmt::Error&) {
    return 0;
  }
  std::vector<int32_t> ids(std::min(tokenizer->vocab_size(), 4096));
  std::iota(ids.begin(), ids.end(), 0);
  tokenizer->decode(ids);  // every id below vocab_size decodes
  try {
    const std::string text = "Hello, world!\n  it's 2024: caf\xc3\xa9 \xe2\x82\xac";
    const std::vector<int32_t> encoded = tokenizer->encode(text);
    if (tokenizer->kind() != "char") lmt::fuzz::require(tokenizer->decode(encoded) == text, "decode(encode(x)) == x");
  } catch (const lmt::Error&) {
    lmt::fuzz::require(tokenizer->kind() == "char", "only a char tokenizer refuses text");
  }
  const std::string json = tokenizer->to_json();
  lmt::fuzz::require(lmt::data::Tokenizer::from_json(json, "to_json").to_json() == json, "to_json round trip");
  return 0;
}
