// Enums with names: the recipe's choice keys (run.device, schedule.decay, precision.dtype, ...)
// are enums, each declared once next to its table of names. The table drives parsing (with a
// "did you mean"), printing, the key's help text and every message that names a value, so a new
// choice is one enumerator and one table entry.
//
// To name an enum E, declare beside it (same namespace, found by argument-dependent lookup):
//   inline constexpr EnumName<E> kENames[] = {{E::kA, "a"}, ...};
//   constexpr const auto& enum_names(E) { return kENames; }
// (C++17, for the CUDA sources that see core/dtype.h.)
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace lmt {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E, class = void>
struct is_named_enum : std::false_type {};
template <class E>
struct is_named_enum<E, std::void_t<decltype(enum_names(std::declval<E>()))>> : std::is_enum<E> {};
template <class E>
inline constexpr bool is_named_enum_v = is_named_enum<E>::value;

template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
const char* name_of(E value) {
  for (const auto& entry : enum_names(E{}))
    if (entry.value == value) return entry.name;
  LMT_CHECK(false, "an enum value without a name in its table");
  return "";
}

template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
std::optional<E> enum_from_name(std::string_view name) {
  for (const auto& entry : enum_names(E{}))
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
std::vector<std::string> enum_name_list() {
  std::vector<std::string> names;
  for (const auto& entry : enum_names(E{})) names.emplace_back(entry.name);
  return names;
}

// "auto | cpu | cuda"
template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
std::string enum_choices(std::string_view separator = " | ") {
  std::string out;
  for (const auto& entry : enum_names(E{})) {
    if (!out.empty()) out += separator;
    out += entry.name;
  }
  return out;
}

}  // namespace lmt
