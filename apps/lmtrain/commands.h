// Each subcommand registers its flags on the CLI11 app and returns the action to run after
// parsing. Actions return the process exit code and throw lmt::Error for user errors.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace lmt::app {

using Action = std::function<int()>;

Action add_train_command(CLI::App& app);
Action add_plan_command(CLI::App& app);
Action add_doctor_command(CLI::App& app);
Action add_data_command(CLI::App& app);
Action add_tokenizer_command(CLI::App& data);  // `data tokenizer ...`, added to the `data` subcommand
Action add_eval_command(CLI::App& app);
Action add_bench_command(CLI::App& app);
Action add_launch_command(CLI::App& app);
Action add_launch_agent_command(CLI::App& app);

}  // namespace lmt::app
