// GPT-2's tokenizer files (hf:DIR, `--tokenizer vocab.json`): Tokenizer::load_gpt2 on
// vocab.json and merges.txt, which the input holds separated by a "\n@@@@\n" line; then encode
// and decode.
#include "core/error.h"
#include "data/tokenizer.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = lmt::fuzz::split_parts(lmt::fuzz::as_text(data, size), 2);
  const auto vocab_path = lmt::fuzz::scratch_dir() / "vocab.json";
  const auto merges_path = lmt::fuzz::scratch_dir() / "merges.txt";
  lmt::fuzz::write_bytes(vocab_path, parts[0]);
  lmt::fuzz::write_bytes(merges_path, parts.size() > 1 ? parts[1] : std::string_view("#version: 0.2\n"));
  try {
    const auto tokenizer = lmt::data::Tokenizer::load_gpt2(vocab_path.string(), merges_path.string());
    const std::string text = "Hello, world!\n  it's 2024: caf\xc3\xa9 \xe2\x82\xac \xff";
    lmt::fuzz::require(tokenizer.decode(tokenizer.encode(text)) == text, "decode(encode(x)) == x");
  } catch (const lmt::Error&) {
  }
  return 0;
}
