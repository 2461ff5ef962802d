// What a client of the rendezvous store sends, as its server reads it (parallel/store.cpp's
// serve): store_wire::parse_hello, then store_wire::parse_request until the bytes run out or a
// message is malformed. Bytes are fed in two deliveries, split where the first byte says, so that
// a message arriving in pieces is parsed too.
#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "parallel/store.h"

using lmt::store_wire::Parsed;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input = lmt::fuzz::as_text(data + 1, size - 1);
  const size_t first_delivery = std::min<size_t>(data[0], input.size());
  std::string received(input.substr(0, first_delivery));
  bool delivered_all = first_delivery == input.size();
  const auto deliver_rest = [&] {
    if (delivered_all) return false;
    received += input.substr(first_delivery);
    delivered_all = true;
    return true;
  };
  size_t consumed = 0;
  std::string secret;
  for (;;) {
    const Parsed parsed = lmt::store_wire::parse_hello(received, consumed, secret);
    if (parsed == Parsed::kMalformed) return 0;
    if (parsed == Parsed::kComplete) break;
    if (!deliver_rest()) return 0;
  }
  lmt::fuzz::require(consumed <= received.size() && secret.size() <= 1024, "hello within the bytes");
  received.erase(0, consumed);
  for (;;) {
    lmt::store_wire::Request request;
    const Parsed parsed = lmt::store_wire::parse_request(received, consumed, request);
    if (parsed == Parsed::kMalformed) return 0;
    if (parsed == Parsed::kIncomplete) {
      if (!deliver_rest()) return 0;
      continue;
    }
    lmt::fuzz::require(consumed == 13 + request.key.size() + request.value.size() && consumed <= received.size(),
                       "a request's length is what it holds");
    received.erase(0, consumed);
  }
}
