// error_message(): runs an action that must throw lmt::Error and returns its message, so tests
// can check what a user would read. Shared by every test area.
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include "core/error.h"

namespace lmt::testing {

template <class Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const lmt::Error& e) {
    return e.what();
  }
  FAIL("expected lmt::Error, but nothing was thrown");
  return {};
}

}  // namespace lmt::testing
