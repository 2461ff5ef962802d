// docs/recipes.md documents every recipe key, by its full path in backticks ("`model.n_layer`").
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "tests/test_util.h"

TEST_CASE("docs/recipes.md names every recipe key as `section.key`", "[docs][recipe]") {
  const std::filesystem::path doc = lmt::testing::source_dir() / "docs" / "recipes.md";
  if (!std::filesystem::is_regular_file(doc))
    FAIL("docs/recipes.md does not exist (looked for " << doc.string()
                                                       << "); it must document every key of lmt::recipe_keys()");
  const std::string text = lmt::testing::read_file(doc);
  REQUIRE_FALSE(text.empty());

  const auto keys = lmt::recipe_keys();
  REQUIRE_FALSE(keys.empty());
  std::vector<std::string> missing;
  for (const auto& [key, help] : keys)
    if (text.find("`" + key + "`") == std::string::npos) missing.push_back(key);
  std::string list;
  for (const auto& key : missing) list += "\n  `" + key + "`";
  INFO("keys of lmt::recipe_keys() not found in backticks in docs/recipes.md:" << list);
  CHECK(missing.empty());
}
