// Each subcommand registers its flags on the CLI11 app and returns the action to run after
// parsing. Actions return the process exit code and throw lmt::Error for user errors.
#pragma once
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "parallel/dist_env.h"
#include "parallel/worker.h"

namespace lmt::app {

using Action = std::function<int()>;

// --device, one of run.device's names (auto, cpu, cuda); `target` is a DeviceKind or a
// std::optional<DeviceKind> (unset: the recipe's run.device).
template <class Target>
CLI::Option* add_device_option(CLI::App* cmd, Target& target, const std::string& help) {
  return cmd
      ->add_option_function<std::string>(
          "--device", [&target](const std::string& name) { target = *enum_from_name<DeviceKind>(name); },
          fmt::format("{}: {}", enum_choices<DeviceKind>(", "), help))
      ->check(CLI::IsMember(enum_name_list<DeviceKind>()));
}

// An integer flag of at least `minimum`, with a short message ("must be at least 1 (got 0)")
// instead of CLI11's range text, which spells out the largest double.
inline CLI::Validator at_least(int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        int64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size()) return fmt::format("'{}' is not an integer", text);
        if (value < minimum) return fmt::format("must be at least {} (got {})", minimum, text);
        return {};
      },
      fmt::format(">= {}", minimum));
}

Action add_train_command(CLI::App& app);
// Several ranks (env.world_size > 1): joins the job's store and process group, with the
// recipe's run.heartbeat_timeout (connect_worker). Alone: nullptr.
std::unique_ptr<WorkerConnection> join_job(const DistEnv& env, const Recipe& recipe);
// `lmtrain launch --max-restarts`: throws lmt::Error unless `command` is `train RECIPE ...` whose
// recipe (with its --set overrides) saves checkpoints while it trains.
void check_restartable_train_command(const std::vector<std::string>& command);
Action add_plan_command(CLI::App& app);
Action add_doctor_command(CLI::App& app);
Action add_data_command(CLI::App& app);
Action add_tokenizer_command(CLI::App& data);  // `data tokenizer ...`, added to the `data` subcommand
Action add_eval_command(CLI::App& app);
Action add_generate_command(CLI::App& app);
Action add_export_command(CLI::App& app);
Action add_bench_command(CLI::App& app);
Action add_launch_command(CLI::App& app);
Action add_launch_agent_command(CLI::App& app);

}  // namespace lmt::app
