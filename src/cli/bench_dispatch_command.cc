// `ocx bench dispatch`: time from a trade to the leased job starting in the sandbox on a
// local provider agent (docs/benchmarks.md, "`ocx bench dispatch`").
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "CLI/CLI.hpp"
#include "bench/dispatch_workload.h"
#include "src/cli/commands.h"

namespace ocx::cli {
namespace {

int RunDispatchBenchCommand(bench::DispatchBenchOptions options) {
  char pattern[] = "/tmp/ocx-bench-dispatch-XXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    std::perror("ocx bench dispatch: cannot create a temporary directory");
    return 1;
  }
  options.data_dir = pattern;
  const auto result = bench::RunDispatchBench(options);
  std::filesystem::remove_all(pattern);
  if (!result.ok()) {
    std::fprintf(stderr, "ocx bench dispatch: %s\n", result.status().ToString().c_str());
    return result.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf(
      "workload: %d leases of 1 slot, each on an idle agent (after the last ended), each with the "
      "task "
      "{\"command\":[\"echo\",\"running\"]}; `ocx exchange` in its own process (journal fsync, "
      "SQLite store), a local agent with %d slots and the bubblewrap sandbox, buyer over "
      "loopback HTTP; %s\n"
      "trade -> the job running (its first output at the agent): p50 %.2f ms, p90 %.2f ms, "
      "p99 %.2f ms, max %.2f ms\n"
      "trade -> the agent launching the sandbox: p50 %.2f ms, p99 %.2f ms\n"
      "of which the buyer's task POST (durable) p50 %.2f ms; buys that found no offer yet: %d; "
      "%.1f s in all\n"
      "leases whose job ran in a prepared sandbox: %d of %d\n",
      result->leases, options.slots,
      options.warm_sandboxes > 0 ? "the agent keeps a sandbox prepared"
                                 : "every job's sandbox starts afresh (--cold)",
      result->p50_ms, result->p90_ms, result->p99_ms, result->max_ms, result->launch_p50_ms,
      result->launch_p99_ms, result->task_post_p50_ms, result->retries, result->seconds,
      result->prewarmed, result->leases);
  return 0;
}

}  // namespace

void RegisterDispatchBench(CLI::App* bench, Registry& registry) {
  auto options = std::make_shared<bench::DispatchBenchOptions>();
  CLI::App* command = bench->add_subcommand(
      "dispatch", "Trade -> leased job starting in the sandbox on a local agent (root)");
  command->footer(
      "Example:\n"
      "  ocx bench dispatch --leases 200    # p50/p99; `ocx sandbox bench` gives the sandbox "
      "alone");
  command->add_option("--leases", options->leases, "Measured leases")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  command->add_option("--slots", options->slots, "The agent machine's cpu slots")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  command->add_flag_callback(
      "--cold", [options] { options->warm_sandboxes = 0; },
      "Start every job's sandbox afresh (no sandbox prepared ahead), for comparison");
  registry.Add(command, [options] { return RunDispatchBenchCommand(*options); });
}

}  // namespace ocx::cli
