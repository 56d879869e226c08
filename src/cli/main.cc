// ocx: the one binary. Subcommands are registered here; each lives in its own file.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "src/cli/commands.h"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors are exit code 2, the same as every other bad input to the CLI.
    std::fprintf(stderr, "ocx: %s\nRun 'ocx --help' for usage.\n", e.what());
    return 2;
  }
  return registry.Run();
}
