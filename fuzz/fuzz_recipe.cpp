// Recipe YAML as `lmtrain train|plan RECIPE --set ...` reads it: parse_recipe_text, then
// apply_overrides, then validate_recipe. Leading lines "--set key.path=value" are the overrides;
// the rest is the recipe. A recipe that validates must survive the round trip through
// recipe_to_yaml (what a run saves as recipe.yaml and a resume reads back).
#include <string>
#include <vector>

#include "core/error.h"
#include "core/recipe.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = lmt::fuzz::as_text(data, size);
  std::vector<std::string> overrides;
  while (input.starts_with("--set ")) {
    const auto [line, rest] = lmt::fuzz::split_first_line(input);
    overrides.emplace_back(line.empty() ? input.substr(6) : line.substr(6));
    input = line.empty() ? std::string_view() : rest;
  }
  std::string resolved;
  try {
    lmt::LoadedRecipe loaded = lmt::parse_recipe_text(std::string(input), "fuzz.yaml");
    lmt::apply_overrides(loaded, overrides);
    lmt::validate_recipe(loaded, 1);
    resolved = lmt::recipe_to_yaml(loaded.recipe);
  } catch (const lmt::Error&) {
    return 0;
  }
  try {
    lmt::LoadedRecipe again = lmt::parse_recipe_text(resolved, "recipe.yaml");
    lmt::validate_recipe(again, 1);
    lmt::fuzz::require(lmt::recipe_to_yaml(again.recipe) == resolved, "recipe_to_yaml round trip");
  } catch (const lmt::Error& e) {
    std::fprintf(stderr, "a valid recipe's recipe_to_yaml does not load back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
