// Text as data prepare and the tokenizers cut it: GPT-2's pre-tokenizer (every split gives back
// the input), the UTF-8 helpers (find_invalid_utf8 agrees with is_valid_utf8 and decode_utf8),
// and encode/decode with the byte tokenizer, a char tokenizer of the text, and a small BPE.
#include <string>

#include "core/error.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "core/utf8.h"
#include "fuzz/fuzz_util.h"

namespace {

std::string joined(const std::vector<std::string_view>& pieces) {
  std::string out;
  for (auto piece : pieces) {
    lmt::fuzz::require(!piece.empty(), "no empty piece");
    out += piece;
  }
  return out;
}

const lmt::data::Tokenizer& small_bpe() {
  static const lmt::data::Tokenizer tokenizer = [] {
    lmt::data::BpeTrainOptions options;
    options.vocab_size = 300;
    options.num_threads = 1;
    return lmt::data::Tokenizer::train_bpe_on_text(
        "the quick brown fox jumps over the lazy dog. The dog's 123 naps; caf\xc3\xa9 \xe2\x82\xac\n\n"
        "  indented lines\tand tabs, the end.<|endoftext|>",
        options);
  }();
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = lmt::fuzz::as_text(data, size);
  lmt::fuzz::require(joined(lmt::data::gpt2_pieces(text)) == text, "gpt2_pieces concatenate to the input");
  lmt::fuzz::require(joined(lmt::data::split_at_safe_points(text, 7)) == text, "split_at_safe_points");
  lmt::fuzz::require(lmt::data::last_safe_split_point(text) <= text.size(), "last_safe_split_point in range");

  const std::optional<size_t> invalid = lmt::data::find_invalid_utf8(text);
  lmt::fuzz::require(invalid.has_value() != lmt::is_valid_utf8(text), "find_invalid_utf8 == !is_valid_utf8");
  size_t offset = 0;
  while (offset < text.size()) {
    char32_t code_point = 0;
    const int length = lmt::decode_utf8(text, offset, code_point);
    if (length <= 0) break;
    offset += static_cast<size_t>(length);
  }
  lmt::fuzz::require(offset == invalid.value_or(text.size()), "decode_utf8 stops where find_invalid_utf8 points");

  const auto byte = lmt::data::Tokenizer::byte();
  lmt::fuzz::require(byte.decode(byte.encode(text)) == text, "byte tokenizer round trip");
  lmt::fuzz::require(small_bpe().decode(small_bpe().encode(text)) == text, "BPE round trip");
  try {
    const auto chars = lmt::data::Tokenizer::build_char(text);
    lmt::fuzz::require(chars.decode(chars.encode(text)) == text, "char tokenizer round trip");
  } catch (const lmt::Error&) {
    lmt::fuzz::require(invalid.has_value() || text.empty(), "build_char refuses only invalid or empty text");
  }
  return 0;
}
