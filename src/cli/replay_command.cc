// `ocx replay FILE`: runs a replay file through one market's engine (RULEBOOK section 2).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "src/base/decimal.h"
#include "src/cli/commands.h"
#include "src/cli/replay_format.h"

namespace ocx::cli {
namespace {

struct ReplayOptions {
  std::string file;
  std::string tick = "0.0001";
  bool quiet_summary = true;
};

int RunReplay(const ReplayOptions& options) {
  const base::ParsedMicros tick = base::ParseMicros(options.tick);
  if (!tick.ok() || tick.micros <= 0) {
    std::fprintf(stderr, "ocx replay: --tick must be a positive decimal such as 0.0001, not '%s'\n",
                 options.tick.c_str());
    return 2;
  }
  std::istream* in = &std::cin;
  std::ifstream file;
  if (options.file != "-") {
    file.open(options.file, std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "ocx replay: cannot read '%s': %s\n", options.file.c_str(),
                   std::strerror(errno));
      return 2;
    }
    in = &file;
  }
  std::ios::sync_with_stdio(false);
  const ReplayStats stats = Replay(*in, tick.micros, std::cout, std::cerr);
  if (in->bad()) {
    std::fprintf(stderr, "ocx replay: read error on '%s'\n", options.file.c_str());
    return 2;
  }
  if (!options.quiet_summary) {
    std::fprintf(stderr, "ocx replay: %llu lines, %llu commands, %llu malformed, %llu trades\n",
                 static_cast<unsigned long long>(stats.lines),
                 static_cast<unsigned long long>(stats.commands),
                 static_cast<unsigned long long>(stats.malformed),
                 static_cast<unsigned long long>(stats.trades));
  }
  return 0;
}

}  // namespace

void RegisterReplay(CLI::App& app, Registry& registry) {
  auto options = std::make_shared<ReplayOptions>();
  CLI::App* command = app.add_subcommand(
      "replay", "Replay a file of order commands through one market's matching engine");
  command->add_option("file", options->file, "Replay file, one JSON command a line ('-': stdin)")
      ->required();
  command->add_option("--tick", options->tick, "The market's tick size")
      ->capture_default_str();
  command->add_flag("!--summary", options->quiet_summary,
                    "Print a line of counts to stderr at the end");
  command->footer(
      "Input, one command a line (see docs/formats/replay.md):\n"
      "  {\"op\":\"new\",\"id\":1,\"account\":\"a1\",\"side\":\"buy\",\"type\":\"limit\","
      "\"tif\":\"gtc\",\"price\":\"0.055\",\"qty\":100}\n"
      "  {\"op\":\"cancel\",\"id\":1}\n"
      "Output, one event a line, e.g.\n"
      "  {\"type\":\"trade\",\"taker\":2,\"maker\":1,\"price\":\"0.055\",\"qty\":5}\n"
      "Malformed lines are reported on stderr with their line number and skipped.\n"
      "Examples:\n"
      "  ocx replay examples/replay/basic.jsonl\n"
      "  ocx replay --tick 0.01 orders.jsonl > events.jsonl");
  registry.Add(command, [options] { return RunReplay(*options); });
}

}  // namespace ocx::cli
