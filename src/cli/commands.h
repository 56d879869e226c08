// Subcommand registration for the ocx CLI. Each Register* adds its subcommand to the app
// and a runner to the registry; after parsing, the registry runs the one that was chosen.
// Exit codes: 0 success, 1 the command ran and failed, 2 bad input (usage, unreadable file).
#pragma once

#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"

namespace ocx::cli {

inline constexpr std::string_view kVersion = "0.1.0";

class Registry {
 public:
  void Add(CLI::App* subcommand, std::function<int()> run) {
    entries_.emplace_back(subcommand, std::move(run));
  }
  int Run() const {
    for (const auto& [subcommand, run] : entries_) {
      if (subcommand->parsed()) return run();
    }
    return 2;
  }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> entries_;
};

void RegisterReplay(CLI::App& app, Registry& registry);
void RegisterBench(CLI::App& app, Registry& registry);
void RegisterJournalBench(CLI::App* bench, Registry& registry);
void RegisterSandbox(CLI::App& app, Registry& registry);
void RegisterProvider(CLI::App& app, Registry& registry);
void RegisterExchange(CLI::App& app, Registry& registry);
void RegisterSequencerBench(CLI::App* bench, Registry& registry);
void RegisterApiBench(CLI::App* bench, Registry& registry);
void RegisterDispatchBench(CLI::App* bench, Registry& registry);
void RegisterDiscoveryBench(CLI::App* bench, Registry& registry);
void RegisterDemo(CLI::App& app, Registry& registry);
// `ocx run`, `ocx jobs`, `ocx job`, `ocx logs`, `ocx book`, `ocx order`, `ocx account`,
// `ocx statement`, `ocx offers` (consumer_command.cc).
void RegisterConsumer(CLI::App& app, Registry& registry);

}  // namespace ocx::cli
