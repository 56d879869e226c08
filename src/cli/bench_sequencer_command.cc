// `ocx bench sequencer`: durable exchange commands per second end to end (see
// docs/benchmarks.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "bench/sequencer_workload.h"
#include "src/cli/commands.h"

namespace ocx::cli {
namespace {

int RunSequencerBench(bench::SequencerBenchOptions options, bool keep) {
  std::string made;
  if (options.data_dir.empty()) {
    char pattern[] = "/tmp/ocx-bench-sequencer-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      std::perror("ocx bench sequencer: cannot create a temporary directory");
      return 1;
    }
    made = options.data_dir = pattern;
  }
  const absl::StatusOr<bench::SequencerBenchResult> result = bench::RunSequencerBench(options);
  if (!made.empty() && !keep) std::filesystem::remove_all(made);
  if (!result.ok()) {
    std::fprintf(stderr, "ocx bench sequencer: %s\n", std::string(result.status().message()).c_str());
    return result.status().code() == absl::StatusCode::kFailedPrecondition ? 2 : 1;
  }
  std::printf(
      "workload: %zu exchange commands (limit buys and sells around one price, ioc and gtc, "
      "cancels) from %d producer threads with up to %zu in flight each, each acknowledged only "
      "once durable\n"
      "  %zu trades, %.1f MiB of journal in %s\n"
      "throughput: %.0f durable commands/s (%.2f s)\n"
      "ack latency (submit to durable acknowledgement): p50 %.2f ms, p99 %.2f ms, "
      "p99.9 %.2f ms, max %.2f ms\n",
      result->commands, options.producers, options.window, result->trades,
      static_cast<double>(result->journal_bytes) / (1 << 20), options.data_dir.c_str(),
      result->commands_per_second, result->seconds, result->p50_ms, result->p99_ms,
      result->p999_ms, result->max_ms);
  return 0;
}

}  // namespace

void RegisterSequencerBench(CLI::App* bench, Registry& registry) {
  auto options = std::make_shared<bench::SequencerBenchOptions>();
  auto keep = std::make_shared<bool>(false);
  CLI::App* command = bench->add_subcommand(
      "sequencer",
      "Durable exchange commands/s end to end: applied, journaled, fsynced, acknowledged");
  command->add_option("--commands", options->commands, "Measured commands")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
  command->add_option("--producers", options->producers, "Submitting threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  command->add_option("--window", options->window,
                      "Unacknowledged commands a producer may have in flight")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1'000'000}));
  command->add_option("--dir", options->data_dir,
                      "An empty directory on the disk to measure (default: a new one in /tmp)");
  command->add_flag("--keep", *keep, "Keep the journal written to the temporary directory");
  command->footer(
      "Examples:\n"
      "  ocx bench sequencer\n"
      "  ocx bench sequencer --commands 1000000 --producers 4 --dir /data/ocx-bench");
  registry.Add(command, [options, keep] { return RunSequencerBench(*options, *keep); });
}

}  // namespace ocx::cli
