// ocx: the one binary. Subcommands are registered here; each lives in its own file.
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "src/cli/commands.h"
#include "src/cli/suggest.h"

namespace {

// "ocx provider": the words that lead to `command`.
std::string CommandPath(const CLI::App& command) {
  std::string path = command.get_name();
  for (const CLI::App* parent = command.get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  return path;
}

// The commands one level below `command` that a user can type, in the order they were
// registered (option groups are nameless subcommands to CLI11: left out).
std::vector<const CLI::App*> Subcommands(const CLI::App& command) {
  return command.get_subcommands(
      [](const CLI::App* sub) { return !sub->get_name().empty() && !sub->get_disabled(); });
}

// The names of those shown in help (a subcommand in no group is hidden: never suggested).
std::vector<std::string> ShownSubcommandNames(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::App* sub : Subcommands(command)) {
    if (!sub->get_group().empty()) names.push_back(sub->get_name());
  }
  return names;
}

const CLI::App* FindSubcommand(const CLI::App& command, std::string_view word) {
  for (const CLI::App* sub : Subcommands(command)) {
    if (sub->check_name(std::string(word))) return sub;
  }
  return nullptr;
}

struct UnknownCommand {
  const CLI::App* level = nullptr;  // Where a command was expected.
  std::string word;                 // What stood there instead.
};

// Walks argv down the subcommand tree the way CLI11 will parse it, and returns the first word
// that stands where only a subcommand can (a command with subcommands, no positionals of its
// own and no extras allowed) but names none. CLI11 alone would not say which word it was: it
// reports "A subcommand is required" first, or prints help if --help follows the word.
// Options are stepped over with the value they take. The walk gives up (nullopt, CLI11 decides)
// at "--", at a command without subcommands (its own words are its business), and where it
// cannot tell what CLI11 will do: an option taking a list or an optional value.
std::optional<UnknownCommand> FindUnknownCommand(const CLI::App& app, int argc,
                                                 const char* const* argv) {
  const CLI::App* level = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--" || Subcommands(*level).empty()) return std::nullopt;
    if (arg.size() > 1 && arg[0] == '-') {
      // "--name=value" and "-nVALUE" carry their value; an unknown option takes none in
      // CLI11 (which names it later).
      const bool value_attached =
          arg.starts_with("--") ? arg.find('=') != std::string_view::npos : arg.size() > 2;
      if (value_attached) continue;
      const CLI::Option* option = level->get_option_no_throw(std::string(arg));
      if (option == nullptr) continue;
      const int values_max = option->get_items_expected_max();
      if (values_max > 1 || option->get_allow_extra_args() ||
          option->get_items_expected_min() != values_max) {
        return std::nullopt;
      }
      i += values_max;
      continue;
    }
    if (const CLI::App* sub = FindSubcommand(*level, arg); sub != nullptr) {
      level = sub;
      continue;
    }
    const bool takes_words =
        level->get_allow_extras() || level->get_prefix_command() ||
        !level->get_options([](const CLI::Option* option) { return option->get_positional(); })
             .empty();
    if (takes_words) return std::nullopt;
    return UnknownCommand{level, std::string(arg)};
  }
  return std::nullopt;
}

// "ocx: unknown command 'offer'. Did you mean 'offers'?"; exit code 2 (bad input).
int ReportUnknownCommand(const UnknownCommand& unknown) {
  const std::string path = CommandPath(*unknown.level);
  const std::optional<std::string> nearest =
      ocx::cli::NearestName(unknown.word, ShownSubcommandNames(*unknown.level));
  if (nearest.has_value()) {
    std::fprintf(stderr, "%s: unknown command '%s'. Did you mean '%s'?\n", path.c_str(),
                 unknown.word.c_str(), nearest->c_str());
  } else {
    std::fprintf(stderr, "%s: unknown command '%s'.\nRun '%s --help' for the list of commands.\n",
                 path.c_str(), unknown.word.c_str(), path.c_str());
  }
  return 2;
}

// The last command the parse reached: "ocx provider" for `ocx provider --json`.
const CLI::App& DeepestParsed(const CLI::App& app) {
  const CLI::App* level = &app;
  while (!level->get_subcommands().empty()) level = level->get_subcommands().front();
  return *level;
}

// After CLI11's RequiredError: when the command reached wants a subcommand and got none, says
// so with the names to choose from (or names the unexpected arguments, which CLI11 would have
// reported next). Returns false when the error was something else.
bool ReportMissingCommand(const CLI::App& app) {
  const CLI::App& level = DeepestParsed(app);
  if (level.get_require_subcommand_min() == 0 || !level.get_subcommands().empty()) return false;
  const std::string path = CommandPath(level);
  if (const std::vector<std::string> extras = app.remaining(/*recurse=*/true); !extras.empty()) {
    std::fprintf(stderr, "ocx: %s\nRun '%s --help' for usage.\n", CLI::ExtrasError(extras).what(),
                 path.c_str());
    return true;
  }
  std::string names;
  for (const std::string& name : ShownSubcommandNames(level)) {
    names += (names.empty() ? "" : ", ") + name;
  }
  std::fprintf(stderr, "%s: missing command, one of: %s.\nRun '%s --help' for what each does.\n",
               path.c_str(), names.c_str(), path.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ocx, the Open Compute Exchange", "ocx"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(ocx::cli::kVersion));
  app.footer(
      "Examples:\n"
      "  ocx replay examples/replay/basic.jsonl\n"
      "  ocx bench engine\n"
      "  ocx run --max-price 0.05 -- echo hello     # a job on the exchange (docs/cli.md)\n"
      "Run 'ocx COMMAND --help' for a command's options.");

  ocx::cli::Registry registry;
  ocx::cli::RegisterDemo(app, registry);
  ocx::cli::RegisterReplay(app, registry);
  ocx::cli::RegisterBench(app, registry);
  ocx::cli::RegisterSandbox(app, registry);
  ocx::cli::RegisterProvider(app, registry);
  ocx::cli::RegisterExchange(app, registry);
  ocx::cli::RegisterConsumer(app, registry);

  // Before CLI11 parses, so that `ocx home --help` is an error rather than the main help.
  if (const auto unknown = FindUnknownCommand(app, argc, argv); unknown.has_value()) {
    return ReportUnknownCommand(*unknown);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && ReportMissingCommand(app)) {
      return 2;
    }
    // Usage errors are exit code 2, the same as every other bad input to the CLI.
    std::fprintf(stderr, "ocx: %s\nRun 'ocx --help' for usage.\n", e.what());
    return 2;
  }
  return registry.Run();
}
