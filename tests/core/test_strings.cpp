// core/strings: typo distance, suggestions and the number formats used in reports.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/strings.h"

using lmt::closest_matches;
using lmt::did_you_mean;
using lmt::edit_distance;
using lmt::human_bytes;
using lmt::human_count;
using lmt::human_duration;
using lmt::with_commas;
using Strings = std::vector<std::string>;

TEST_CASE("edit_distance: insertions, deletions, substitutions", "[strings]") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("abc", "abc") == 0);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("flaw", "lawn") == 2);
  CHECK(edit_distance("n_layr", "n_layer") == 1);
  CHECK(edit_distance("cosin", "cosine") == 1);
  // Symmetric.
  CHECK(edit_distance("sitting", "kitten") == 3);
}

TEST_CASE("edit_distance: a transposition of neighbours is one edit", "[strings]") {
  CHECK(edit_distance("ab", "ba") == 1);
  CHECK(edit_distance("modle", "model") == 1);
  CHECK(edit_distance("abcd", "acbd") == 1);
  CHECK(edit_distance("teh", "the") == 1);
  // Optimal string alignment: a transposed pair is not edited again.
  CHECK(edit_distance("ca", "abc") == 3);
}

TEST_CASE("closest_matches: close words best first, limited, deduplicated", "[strings]") {
  CHECK(closest_matches("n_layr", {"n_head", "n_layer", "n_embd", "max_seq_len"}) == Strings{"n_layer"});
  CHECK(closest_matches("cosin", {"cosine", "linear", "constant", "wsd"}) == Strings{"cosine"});
  CHECK(closest_matches("abcd", {"abxx", "abcx", "abcd"}) == Strings{"abcd", "abcx", "abxx"});
  CHECK(closest_matches("abcd", {"abxx", "abcx", "abcd"}, 2) == Strings{"abcd", "abcx"});
  CHECK(closest_matches("abcd", {"abcx", "abcx"}) == Strings{"abcx"});
  // A prefix counts as close even when the distance is large.
  CHECK(closest_matches("seq", {"seq_len", "steps"}) == Strings{"seq_len"});
  // Nothing close.
  CHECK(closest_matches("zzzzzz", {"model", "run"}).empty());
  CHECK(closest_matches("model", {}).empty());
}

TEST_CASE("did_you_mean: phrase or nothing", "[strings]") {
  CHECK(did_you_mean("modle", {"run", "model", "data"}) == " (did you mean 'model'?)");
  CHECK(did_you_mean("bf61", {"fp32", "bf16", "fp16"}) == " (did you mean 'bf16'?)");
  CHECK(did_you_mean("zzzzzz", {"run", "model"}).empty());
}

TEST_CASE("with_commas: thousands separators", "[strings]") {
  CHECK(with_commas(0) == "0");
  CHECK(with_commas(7) == "7");
  CHECK(with_commas(999) == "999");
  CHECK(with_commas(1000) == "1,000");
  CHECK(with_commas(65536) == "65,536");
  CHECK(with_commas(100000) == "100,000");
  CHECK(with_commas(124439808) == "124,439,808");
  CHECK(with_commas(std::numeric_limits<int64_t>::max()) == "9,223,372,036,854,775,807");
  CHECK(with_commas(-1) == "-1");
  CHECK(with_commas(-999) == "-999");
  CHECK(with_commas(-1000) == "-1,000");
  CHECK(with_commas(-1234567) == "-1,234,567");
}

TEST_CASE("with_commas: the most negative int64", "[strings]") {
  // -INT64_MIN overflows; the digits must still come out right.
  CHECK(with_commas(std::numeric_limits<int64_t>::min()) == "-9,223,372,036,854,775,808");
}

TEST_CASE("human_bytes: binary units with two decimals", "[strings]") {
  CHECK(human_bytes(0) == "0 B");
  CHECK(human_bytes(1023) == "1023 B");
  CHECK(human_bytes(1024) == "1.00 KiB");
  CHECK(human_bytes(1536) == "1.50 KiB");
  CHECK(human_bytes(1048576) == "1.00 MiB");
  CHECK(human_bytes(5e9) == "4.66 GiB");
  CHECK(human_bytes(2.0 * 1024 * 1024 * 1024 * 1024) == "2.00 TiB");
  CHECK(human_bytes(1024.0 * 1024 * 1024 * 1024 * 1024) == "1024.00 TiB");  // TiB is the largest unit
}

TEST_CASE("human_count: SI units", "[strings]") {
  CHECK(human_count(0) == "0");
  CHECK(human_count(999) == "999");
  CHECK(human_count(1000) == "1.00 K");
  CHECK(human_count(803.26e6) == "803.26 M");
  CHECK(human_count(1.2e12) == "1.20 T");
  CHECK(human_count(-1500) == "-1.50 K");
}

TEST_CASE("human_duration: seconds, minutes, hours", "[strings]") {
  CHECK(human_duration(0) == "0s");
  CHECK(human_duration(42) == "42s");
  CHECK(human_duration(59.4) == "59s");
  CHECK(human_duration(59.6) == "1m00s");
  CHECK(human_duration(185) == "3m05s");
  CHECK(human_duration(3599) == "59m59s");
  CHECK(human_duration(3600) == "1h00m");
  CHECK(human_duration(3725) == "1h02m");
  CHECK(human_duration(90000) == "25h00m");
  CHECK(human_duration(-1) == "?");
  CHECK(human_duration(std::nan("")) == "?");
  CHECK(human_duration(std::numeric_limits<double>::infinity()) == "?");
}
