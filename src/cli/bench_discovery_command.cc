// `ocx bench discovery`: discovery queries over a synthetic fleet in the exchange's machine
// index (src/query/index.h; docs/benchmarks.md, "Discovery").
#include <cstdio>
#include <memory>

#include "CLI/CLI.hpp"
#include "bench/discovery_workload.h"
#include "src/cli/commands.h"

namespace ocx::cli {

void RegisterDiscoveryBench(CLI::App* bench, Registry& registry) {
  auto options = std::make_shared<bench::DiscoveryBenchOptions>();
  CLI::App* command = bench->add_subcommand(
      "discovery", "Discovery queries (p50/p99) over a synthetic fleet of machines");
  command->footer(
      "Example:\n"
      "  ocx bench discovery --machines 100000 --queries 2000");
  command->add_option("--machines", options->machines, "Registered machines in the index")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  command->add_option("--queries", options->queries, "Measured queries per kind")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  command->add_option("--seed", options->seed, "Seed of the fleet and the queries")
      ->capture_default_str();
  registry.Add(command, [options] {
    const bench::DiscoveryBenchReport report = bench::RunDiscoveryBench(*options);
    std::fputs(bench::FormatDiscoveryReport(report).c_str(), stdout);
    return 0;
  });
}

}  // namespace ocx::cli
