// YAML <-> Recipe. Every component struct lists its fields once in visit(); the visitors here
// read them from YAML, apply --set overrides, print them and list them.
#include "core/recipe.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"
#include "core/utf8.h"

namespace lmt {
namespace {

std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string where(const std::string& file, const YAML::Mark& mark) {
  if (mark.line < 0) return file;
  return fmt::format("{}:{}:{}", file, mark.line + 1, mark.column + 1);
}

// The offset of the first byte that is not part of valid UTF-8, if any.
std::optional<size_t> first_invalid_utf8(std::string_view text) {
  char32_t code_point = 0;
  for (size_t offset = 0; offset < text.size();) {
    const int length = decode_utf8(text, offset, code_point);
    if (length == 0) return offset;
    offset += static_cast<size_t>(length);
  }
  return std::nullopt;
}

// ---- scalar conversion -------------------------------------------------------------------------

// Returns an error text ("" on success).
std::string parse_scalar(const std::string& text, int64_t& out) {
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && ptr == text.data() + text.size() && !text.empty()) {
    out = value;
    return "";
  }
  // Accept integral floats written as 1e6 or 2.0, refuse 2.5. The range is checked before the
  // conversion: a double beyond int64's range does not convert (undefined behaviour).
  double d = 0;
  auto [dptr, dec] = std::from_chars(text.data(), text.data() + text.size(), d);
  const bool is_number = dec == std::errc() && dptr == text.data() + text.size() && !text.empty();
  if (is_number && std::abs(d) < 9e15 && d == std::trunc(d)) {
    out = static_cast<int64_t>(d);
    return "";
  }
  if (ec == std::errc::result_out_of_range || (is_number && std::abs(d) >= 9e15 && d == std::trunc(d)))
    return fmt::format("'{}' is too large for an integer here (at most 9e15)", text.substr(0, 40));
  return fmt::format("expected an integer, got '{}'", text);
}

std::string parse_scalar(const std::string& text, bool& out) {
  // YAML 1.2's core schema spellings.
  if (text == "true" || text == "True" || text == "TRUE") {
    out = true;
    return "";
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    out = false;
    return "";
  }
  return fmt::format("expected true or false, got '{}'", text);
}

std::string parse_scalar(const std::string& text, double& out) {
  double value = 0;
  const char* begin = text.data();
  if (!text.empty() && text[0] == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (ec == std::errc() && ptr == text.data() + text.size() && !text.empty()) {
    out = value;
    return "";
  }
  return fmt::format("expected a number, got '{}'", text);
}

std::string parse_scalar(const std::string& text, std::string& out) {
  out = text;
  return "";
}

// A choice key: one of its enum's names.
template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
std::string parse_scalar(const std::string& text, E& out) {
  if (const auto value = enum_from_name<E>(text)) {
    out = *value;
    return "";
  }
  const std::vector<std::string> names = enum_name_list<E>();
  return fmt::format("'{}' is not one of: {}{}", text, fmt::join(names, ", "), did_you_mean(text, names));
}

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "a list of integers";
  if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) return "a mapping of names to paths";
  if constexpr (is_named_enum_v<T>) return "one of: " + enum_choices<T>(", ");
  return "a string";
}

template <class T>
std::string parse_node(const YAML::Node& node, T& out) {
  if (node.IsNull()) {
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<int64_t>> ||
                  std::is_same_v<T, std::map<std::string, std::string>>) {
      out.clear();  // `val:` or `--set data.val=` clears a path or a list
      return "";
    }
    return fmt::format("expected {}, got nothing", type_name<T>());
  }
  if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
    if (!node.IsMap()) return "expected a mapping of names to paths, like {wiki: data/wiki/val_*.bin}";
    std::map<std::string, std::string> values;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->second.IsScalar()) return fmt::format("'{}' must map to a path", it->first.Scalar());
      if (!values.emplace(it->first.Scalar(), it->second.Scalar()).second)
        return fmt::format("'{}' is given twice", it->first.Scalar());
    }
    out = std::move(values);
    return "";
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (node.IsMap()) return fmt::format("expected {}, got a mapping", type_name<T>());
    if (!node.IsSequence()) return fmt::format("expected a list of integers like [64, 128], got '{}'", node.Scalar());
    std::vector<int64_t> values;
    for (size_t i = 0; i < node.size(); ++i) {
      int64_t value = 0;
      if (!node[i].IsScalar()) return fmt::format("item {} of the list is not an integer", i + 1);
      std::string problem = parse_scalar(node[i].Scalar(), value);
      if (!problem.empty()) return fmt::format("item {}: {}", i + 1, problem);
      values.push_back(value);
    }
    out = std::move(values);
    return "";
  } else {
    if (node.IsMap()) return fmt::format("expected {}, got a mapping", type_name<T>());
    if (node.IsSequence()) return fmt::format("expected {}, got a list", type_name<T>());
    return parse_scalar(node.Scalar(), out);
  }
}

std::string format_scalar(int64_t v) { return std::to_string(v); }
template <class E, std::enable_if_t<is_named_enum_v<E>, int> = 0>
std::string format_scalar(E v) { return name_of(v); }
std::string format_scalar(bool v) { return v ? "true" : "false"; }
std::string format_scalar(double v) { return fmt::format("{}", v); }
std::string format_scalar(const std::vector<int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }
std::string format_scalar(const std::map<std::string, std::string>& m) {
  std::vector<std::string> items;
  for (const auto& [k, v] : m) items.push_back(fmt::format("{}: {}", k, v));
  return fmt::format("{{{}}}", fmt::join(items, ", "));
}

// ---- key listing -----------------------------------------------------------------------------

struct KeyLister {
  std::string prefix;
  std::vector<std::pair<std::string, std::string>>* leaves;
  std::vector<std::string>* sections;

  template <class T>
  void field(const char* name, T&, const char* help) {
    if constexpr (is_named_enum_v<T>)
      leaves->emplace_back(join_path(prefix, name), fmt::format("{}: {}", enum_choices<T>(), help));
    else
      leaves->emplace_back(join_path(prefix, name), help);
  }
  template <class S>
  void section(const char* name, S& s, const char*) {
    sections->push_back(join_path(prefix, name));
    KeyLister sub{join_path(prefix, name), leaves, sections};
    s.visit(sub);
  }
};

struct KeyIndex {
  std::vector<std::string> leaves;
  std::vector<std::string> sections;
};

const KeyIndex& key_index() {
  static const KeyIndex index = [] {
    KeyIndex idx;
    std::vector<std::pair<std::string, std::string>> leaves;
    Recipe r;
    KeyLister lister{"", &leaves, &idx.sections};
    r.visit(lister);
    for (auto& [k, h] : leaves) idx.leaves.push_back(k);
    return idx;
  }();
  return index;
}

// Suggestion for an unknown key `name` under `prefix`: a sibling with a close spelling, else
// the same key name in another section.
std::string suggest_key(const std::string& prefix, const std::string& name) {
  const auto& idx = key_index();
  std::vector<std::string> siblings;
  auto consider = [&](const std::string& full) {
    std::string parent = full.rfind('.') == std::string::npos ? "" : full.substr(0, full.rfind('.'));
    if (parent == prefix) siblings.push_back(full.substr(parent.empty() ? 0 : parent.size() + 1));
  };
  for (const auto& k : idx.leaves) consider(k);
  for (const auto& k : idx.sections) consider(k);
  auto close = closest_matches(name, siblings, 1);
  if (!close.empty()) return fmt::format(" (did you mean '{}'?)", join_path(prefix, close.front()));
  for (const auto& k : idx.leaves) {
    std::string leaf = k.substr(k.rfind('.') + 1);
    if (edit_distance(leaf, name) <= 1) return fmt::format(" (did you mean '{}'?)", k);
  }
  // No keys under prefix: it is a value (run.steps.x), not a section.
  if (siblings.empty()) {
    if (std::find(idx.leaves.begin(), idx.leaves.end(), prefix) != idx.leaves.end())
      return fmt::format("; '{}' is a value, not a section: set it as {}=...", prefix, prefix);
    return "";
  }
  return fmt::format("; valid keys here: {}", fmt::join(siblings, ", "));
}

// ---- YAML reader -------------------------------------------------------------------------------

struct YamlReader {
  YAML::Node node;  // a mapping
  std::string prefix;
  const std::string& file;
  RecipeOrigins& origins;
  std::vector<std::string>& errors;
  std::set<std::string> known{};

  template <class T>
  void field(const char* name, T& value, const char*) {
    known.insert(name);
    YAML::Node child = node[name];
    if (!child.IsDefined()) return;
    std::string path = join_path(prefix, name);
    std::string loc = where(file, child.Mark());
    std::string problem = parse_node(child, value);
    if (!problem.empty()) {
      errors.push_back(fmt::format("{}: {}: {}", loc, path, problem));
      return;
    }
    origins[path] = loc;
  }

  template <class S>
  void section(const char* name, S& s, const char*) {
    known.insert(name);
    YAML::Node child = node[name];
    if (!child.IsDefined() || child.IsNull()) return;
    std::string path = join_path(prefix, name);
    if (!child.IsMap()) {
      errors.push_back(fmt::format("{}: {}: expected a mapping of keys (section '{}'), got '{}'",
                                   where(file, child.Mark()), path, path,
                                   child.IsScalar() ? child.Scalar() : "a list"));
      return;
    }
    YamlReader sub{child, path, file, origins, errors};
    s.visit(sub);
    sub.check_unknown();
  }

  void check_unknown() {
    // yaml-cpp keeps repeated keys and lookups see only the first, so a repeated key would
    // silently drop a value (or a whole section with its typos): refuse it.
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.Scalar();
      auto [first, inserted] = seen.emplace(key, it->first.Mark());
      if (!inserted) {
        errors.push_back(fmt::format("{}: '{}' is given twice (first at line {}); keep one",
                                     where(file, it->first.Mark()), join_path(prefix, key),
                                     first->second.line + 1));
        continue;
      }
      if (known.count(key)) continue;
      errors.push_back(fmt::format("{}: unknown key '{}'{}", where(file, it->first.Mark()),
                                   join_path(prefix, key), suggest_key(prefix, key)));
    }
  }
};

// ---- --set -----------------------------------------------------------------------------------

struct PathSetter {
  std::string prefix;
  const std::string& target;  // full key path
  const YAML::Node& value;
  std::string origin;
  RecipeOrigins& origins;
  bool found = false;
  std::string problem{};

  template <class T>
  void field(const char* name, T& member, const char*) {
    std::string path = join_path(prefix, name);
    if (path != target) return;
    found = true;
    problem = parse_node(value, member);
    if (problem.empty()) origins[path] = origin;
  }
  template <class S>
  void section(const char* name, S& s, const char*) {
    std::string path = join_path(prefix, name);
    if (path == target) {
      found = true;
      problem = fmt::format("'{}' is a section; set one of its keys, e.g. {}.<key>", path, path);
      return;
    }
    if (target.rfind(path + ".", 0) != 0) return;
    PathSetter sub{path, target, value, origin, origins};
    s.visit(sub);
    found = sub.found;
    problem = sub.problem;
  }
};

// ---- YAML writer -------------------------------------------------------------------------------

struct YamlWriter {
  YAML::Emitter& out;
  template <class T>
  void field(const char* name, T& value, const char*) {
    out << YAML::Key << name << YAML::Value;
    if constexpr (std::is_same_v<T, std::string>) {
      out << YAML::DoubleQuoted << value;
    } else if constexpr (is_named_enum_v<T>) {
      out << YAML::DoubleQuoted << name_of(value);
    } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      out << YAML::Flow << YAML::BeginSeq;
      for (int64_t x : value) out << std::to_string(x);
      out << YAML::EndSeq;
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      out << YAML::BeginMap;
      for (const auto& [k, v] : value) out << YAML::Key << k << YAML::Value << YAML::DoubleQuoted << v;
      out << YAML::EndMap;
    } else {
      out << format_scalar(value);
    }
  }
  template <class S>
  void section(const char* name, S& s, const char*) {
    out << YAML::Key << name << YAML::Value << YAML::BeginMap;
    s.visit(*this);
    out << YAML::EndMap;
  }
};

void throw_if_errors(const std::vector<std::string>& errors, const std::string& what) {
  if (errors.empty()) return;
  std::string msg = fmt::format("{} ({} problem{}):", what, errors.size(), errors.size() == 1 ? "" : "s");
  for (const auto& e : errors) msg += "\n  " + e;
  throw Error(msg);
}

}  // namespace

LoadedRecipe parse_recipe_text(const std::string& text, const std::string& display_name) {
  LoadedRecipe loaded;
  loaded.path = display_name;
  // YAML is Unicode text. Other bytes would not survive the run's recipe.yaml: yaml-cpp reads
  // them as they are but writes them back as escapes that load as other characters.
  if (const std::optional<size_t> bad = first_invalid_utf8(text)) {
    const size_t line_start = text.rfind('\n', *bad == 0 ? 0 : *bad - 1);
    const size_t line = static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(*bad), '\n')) + 1;
    const size_t column = *bad - (line_start == std::string::npos || *bad == 0 ? 0 : line_start + 1) + 1;
    throw Error(fmt::format("{}:{}:{}: byte 0x{:02X} is not UTF-8 text; a recipe is a UTF-8 YAML file",
                            display_name, line, column, static_cast<unsigned char>(text[*bad])));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp's message for nesting deeper than it allows is "bad file", which says nothing.
    const std::string why = e.msg == "bad file" ? "nested too deeply (or not YAML text at all)" : e.msg;
    throw Error(fmt::format("{}: invalid YAML: {}", where(display_name, e.mark), why));
  }
  if (root.IsNull()) throw Error(fmt::format("{}: the recipe is empty", display_name));
  if (!root.IsMap())
    throw Error(fmt::format("{}: a recipe is a mapping of sections (run:, model:, data:, ...)",
                            where(display_name, root.Mark())));
  std::vector<std::string> errors;
  YamlReader reader{root, "", display_name, loaded.origins, errors};
  loaded.recipe.visit(reader);
  reader.check_unknown();
  throw_if_errors(errors, fmt::format("invalid recipe {}", display_name));
  return loaded;
}

LoadedRecipe load_recipe(const std::string& path) {
  check_regular_file(path, "recipe");
  constexpr uintmax_t kMaxRecipeBytes = uintmax_t{16} << 20;
  if (const uintmax_t bytes = std::filesystem::file_size(path); bytes > kMaxRecipeBytes)
    throw Error(fmt::format("recipe '{}' is {} bytes; a recipe is a small YAML file (at most 16 MiB)", path, bytes));
  return parse_recipe_text(read_file_bytes(path, "recipe"), path);
}

void apply_overrides(LoadedRecipe& loaded, const std::vector<std::string>& overrides) {
  std::vector<std::string> errors;
  for (const auto& item : overrides) {
    std::string origin = fmt::format("--set {}", item);
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      errors.push_back(fmt::format("{}: expected key.path=value, e.g. --set model.n_layer=6", origin));
      continue;
    }
    std::string key = item.substr(0, eq);
    std::string text = item.substr(eq + 1);
    if (first_invalid_utf8(item)) {
      errors.push_back(fmt::format("--set {}: not UTF-8 text; recipe keys and values are UTF-8",
                                   item.substr(0, std::min<size_t>(item.size(), 60))));
      continue;
    }
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      errors.push_back(fmt::format("{}: cannot parse the value: {}", origin, e.msg));
      continue;
    }
    if (text.empty()) value = YAML::Node(YAML::NodeType::Null);
    PathSetter setter{"", key, value, origin, loaded.origins};
    loaded.recipe.visit(setter);
    if (!setter.found) {
      auto dot = key.rfind('.');
      std::string prefix = dot == std::string::npos ? "" : key.substr(0, dot);
      std::string name = dot == std::string::npos ? key : key.substr(dot + 1);
      errors.push_back(fmt::format("{}: unknown key '{}'{}", origin, key, suggest_key(prefix, name)));
    } else if (!setter.problem.empty()) {
      errors.push_back(fmt::format("{}: {}: {}", origin, key, setter.problem));
    }
  }
  throw_if_errors(errors, "invalid --set override");
}

std::string recipe_to_yaml(const Recipe& recipe) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Recipe copy = recipe;
  YamlWriter writer{out};
  copy.visit(writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

struct FlatWriter {
  std::string prefix;
  std::map<std::string, std::string>* out;
  template <class T>
  void field(const char* name, T& value, const char*) {
    if constexpr (std::is_same_v<T, std::string>) {
      (*out)[join_path(prefix, name)] = "'" + value + "'";
    } else if constexpr (is_named_enum_v<T>) {
      (*out)[join_path(prefix, name)] = fmt::format("'{}'", name_of(value));
    } else {
      (*out)[join_path(prefix, name)] = format_scalar(value);
    }
  }
  template <class S>
  void section(const char* name, S& s, const char*) {
    FlatWriter sub{join_path(prefix, name), out};
    s.visit(sub);
  }
};

std::map<std::string, std::string> flatten(Recipe recipe) {
  std::map<std::string, std::string> flat;
  FlatWriter writer{"", &flat};
  recipe.visit(writer);
  return flat;
}

}  // namespace

std::vector<std::string> recipe_differences(const std::string& before_yaml, const std::string& after_yaml) {
  std::map<std::string, std::string> before, after;
  try {
    before = flatten(parse_recipe_text(before_yaml, "checkpoint recipe").recipe);
    after = flatten(parse_recipe_text(after_yaml, "recipe").recipe);
  } catch (const Error& e) {
    return {fmt::format("(recipes not comparable: {})", e.what())};
  }
  std::vector<std::string> changes;
  for (const auto& [key, value] : after)
    if (before[key] != value) changes.push_back(fmt::format("{}: {} -> {}", key, before[key], value));
  return changes;
}

std::vector<std::pair<std::string, std::string>> recipe_keys() {
  std::vector<std::pair<std::string, std::string>> leaves;
  std::vector<std::string> sections;
  Recipe r;
  KeyLister lister{"", &leaves, &sections};
  r.visit(lister);
  return leaves;
}

}  // namespace lmt
