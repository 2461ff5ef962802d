// lmtrain: one binary that trains GPT language models. main() parses the command line, runs
// one subcommand and turns user errors into one message and exit code 2.
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <new>

#include "apps/lmtrain/commands.h"
#include "core/error.h"
#include "lmt_build_info.h"
#include "parallel/elastic_error_file.h"

int main(int argc, char** argv) {
  // A write past the file-size limit (ulimit -f) then fails with EFBIG, which every writer
  // reports naming its file, instead of killing the process mid-save without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"lmtrain " LMTRAIN_VERSION ": train GPT language models from a YAML recipe"};
  app.set_version_flag("--version", "lmtrain " LMTRAIN_VERSION " (" LMTRAIN_GIT_SHA ")");
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<std::pair<CLI::App*, lmt::app::Action>> commands;
  auto add = [&](lmt::app::Action action) { commands.emplace_back(app.get_subcommands({}).back(), action); };
  add(lmt::app::add_train_command(app));
  add(lmt::app::add_plan_command(app));
  add(lmt::app::add_doctor_command(app));
  add(lmt::app::add_eval_command(app));
  add(lmt::app::add_generate_command(app));
  add(lmt::app::add_export_command(app));
  add(lmt::app::add_bench_command(app));
  add(lmt::app::add_data_command(app));
  add(lmt::app::add_launch_command(app));
  add(lmt::app::add_launch_agent_command(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : lmt::kUserErrorExitCode;
  }
  try {
    for (auto& [sub, action] : commands)
      if (sub->parsed()) return action();
    return lmt::kUserErrorExitCode;
  } catch (const lmt::PeerLostError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    lmt::write_torchelastic_error_file(e.what(), lmt::kPeerLostExitCode);
    return lmt::kPeerLostExitCode;
  } catch (const lmt::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    lmt::write_torchelastic_error_file(e.what(), lmt::kUserErrorExitCode);
    return lmt::kUserErrorExitCode;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    fmt::print(stderr, "error: out of memory; lower the sizes of the recipe (`lmtrain plan RECIPE` shows what a "
                       "run needs)\n");
    return lmt::kUserErrorExitCode;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "fatal: {}\n", e.what());
    lmt::write_torchelastic_error_file(e.what(), 1);
    return 1;
  }
}
