// lmtrain plan RECIPE [--world-size N] [--print-config] [--set key=value]...
#include <fmt/format.h>

#include <cmath>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "core/recipe.h"
#include "core/strings.h"
#include "model/gpt_config.h"
#include "parallel/dist_env.h"
#include "train/train_data.h"
#include "train/trainer.h"

namespace lmt::app {

Action add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan", "show what a recipe will do: sizes, FLOPs, memory, steps");
  struct Args {
    std::string recipe;
    std::vector<std::string> sets;
    int64_t world_size = 0;
    bool print_config = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("recipe", args->recipe, "YAML recipe")->required();
  cmd->add_option("--set", args->sets, "override a recipe key: --set model.n_layer=6 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--world-size", args->world_size, "ranks to plan for (default: WORLD_SIZE or 1)")
      ->check(at_least(1));
  cmd->add_flag("--print-config", args->print_config,
                "print the resolved recipe as YAML (it parses back to the same recipe)");
  return [args] {
    int64_t world = args->world_size > 0 ? args->world_size : read_dist_env().world_size;
    LoadedRecipe loaded = load_recipe(args->recipe);
    apply_overrides(loaded, args->sets);
    validate_recipe(loaded, world);
    const Recipe& r = loaded.recipe;
    if (args->print_config) {
      fmt::print("{}", recipe_to_yaml(r));
      return 0;
    }
    auto data_vocab = peek_vocab_size(r.data);
    if (r.model.vocab_size == 0 && !data_vocab)
      throw Error(fmt::format("{}: model.vocab_size is 0 (take it from the data) but data.train "
                              "'{}' does not exist yet; prepare the data or set model.vocab_size",
                              loaded.path, r.data.train));
    const std::string vocab_note = r.model.vocab_size == 0 ? ", from the data" : "";
    GPTConfig cfg = resolve_model_config(r, data_vocab.value_or(r.model.vocab_size), loaded.path);
    const int B = static_cast<int>(r.run.micro_batch_size);
    const int T = static_cast<int>(r.run.seq_len);
    const int64_t tokens_per_step = r.run.global_batch_size * T;
    const double fpt = flops_per_token(cfg, T);
    MemoryEstimate mem = estimate_memory(cfg, B, T, r.precision.dtype);

    fmt::print("recipe      {} (world size {})\n", loaded.path, world);
    fmt::print("model       GPT-2: {} layers, {} heads, {} channels, max_seq_len {}, vocab {} "
               "(padded to {}{})\n",
               cfg.num_layers, cfg.num_heads, cfg.channels, cfg.max_seq_len, cfg.vocab_size,
               cfg.padded_vocab_size, vocab_note);
    fmt::print("parameters  {} ({} stored, with the vocab padding)\n",
               with_commas(parameter_count(cfg)), with_commas(static_cast<int64_t>(parameter_storage_count(cfg))));
    fmt::print("FLOPs/token {} (6N + 6*L*C*T at T={})\n", human_count(fpt), T);
    fmt::print("batch       {} micro x {} accum x {} ranks = {} sequences x {} tokens = {} tokens/step\n",
               r.run.micro_batch_size, r.run.grad_accum_steps, world, r.run.global_batch_size, T,
               with_commas(tokens_per_step));
    fmt::print("steps       {} ({} tokens, {}FLOP)\n", with_commas(r.run.steps),
               human_count(static_cast<double>(tokens_per_step) * r.run.steps),
               human_count(fpt * tokens_per_step * r.run.steps));
    // ZeRO-1 splits the fp32 master weights and the AdamW moments over the ranks.
    const double sharded_state = mem.master_weights + mem.optimizer_state;
    const double stage1_total = mem.total() - sharded_state + sharded_state / static_cast<double>(world);
    fmt::print("memory per rank at {} (distributed.zero_stage {}):\n", name_of(r.precision.dtype), r.distributed.zero_stage);
    fmt::print("  parameters       {:>12}\n", human_bytes(mem.parameters));
    if (mem.master_weights > 0) fmt::print("  master weights   {:>12}  (fp32)\n", human_bytes(mem.master_weights));
    fmt::print("  gradients        {:>12}\n", human_bytes(mem.gradients));
    fmt::print("  optimizer state  {:>12}  (AdamW m, v in fp32)\n", human_bytes(mem.optimizer_state));
    fmt::print("  activations      {:>12}  (micro batch {} x {}, model.recompute {})\n", human_bytes(mem.activations), B,
               T, name_of(cfg.recompute));
    fmt::print("  total            {:>12}  (zero_stage 0)\n", human_bytes(mem.total()));
    fmt::print("  total            {:>12}  (zero_stage 1 over {} rank{}: master weights and optimizer state / {})\n",
               human_bytes(stage1_total), world, world == 1 ? "" : "s", world);
    // Every model.recompute: the same losses and gradients, less memory for more work.
    fmt::print("by model.recompute (the same losses and gradients; total at zero_stage {}):\n", r.distributed.zero_stage);
    for (const auto& [choice, name] : kRecomputeNames) {
      GPTConfig alt = cfg;
      alt.recompute = choice;
      const MemoryEstimate m = estimate_memory(alt, B, T, r.precision.dtype);
      const double total = m.total() - (r.distributed.zero_stage == 0 ? 0.0 : sharded_state - sharded_state / static_cast<double>(world));
      fmt::print("  {:<6} activations {:>12}  total {:>12}  (activations {} bytes){}\n", name, human_bytes(m.activations),
                 human_bytes(total), with_commas(static_cast<int64_t>(std::llround(m.activations))),
                 choice == cfg.recompute ? "  <- this recipe" : "");
    }
    return 0;
  };
}

}  // namespace lmt::app
