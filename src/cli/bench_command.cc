// `ocx bench ...`: benchmarks that ship in the binary. `ocx bench engine` times the matching
// engine alone (see docs/benchmarks.md for the workload and how to read the figures).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/engine_workload.h"
#include "src/base/decimal.h"
#include "src/cli/commands.h"
#include "src/cli/replay_format.h"

namespace ocx::cli {
namespace {

struct EngineBenchOptions {
  size_t commands = 2'000'000;
  uint64_t seed = 1;
  int repeat = 5;
  std::string input;
  std::string tick = "0.0001";
};

bool LoadReplayFile(const std::string& path, std::vector<engine::Command>* commands) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ocx bench engine: cannot read '%s': %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  ReplayParser parser;
  std::string line, error;
  engine::Command command;
  uint64_t line_number = 0, malformed = 0;
  while (std::getline(in, line)) {
    ++line_number;
    switch (parser.Parse(line, &command, &error)) {
      case ReplayParser::Outcome::kCommand:
        commands->push_back(command);
        break;
      case ReplayParser::Outcome::kBlank:
        break;
      case ReplayParser::Outcome::kMalformed:
        if (++malformed <= 10) {
          std::fprintf(stderr, "line %llu: %s\n", static_cast<unsigned long long>(line_number),
                       error.c_str());
        }
        break;
    }
  }
  if (malformed > 10) {
    std::fprintf(stderr, "... %llu malformed lines in all, skipped\n",
                 static_cast<unsigned long long>(malformed));
  }
  return true;
}

int RunEngineBench(const EngineBenchOptions& options) {
  const base::ParsedMicros tick = base::ParseMicros(options.tick);
  if (!tick.ok() || tick.micros <= 0) {
    std::fprintf(stderr, "ocx bench engine: --tick must be a positive decimal, not '%s'\n",
                 options.tick.c_str());
    return 2;
  }
  engine::BookConfig config;
  config.tick_micros = tick.micros;

  bench::Workload workload;
  if (!options.input.empty()) {
    std::vector<engine::Command> commands;
    if (!LoadReplayFile(options.input, &commands)) return 2;
    workload = bench::WorkloadFromCommands(std::move(commands));
    std::printf("workload: replay file %s, %zu commands (parsed before timing)\n",
                options.input.c_str(), workload.measured.size());
  } else {
    bench::MixedStreamOptions stream;
    stream.seed = options.seed;
    stream.commands = options.commands;
    stream.tick_micros = tick.micros;
    workload = bench::GenerateMixedStream(stream);
    const double n = static_cast<double>(workload.measured.size());
    std::printf(
        "workload: synthetic mixed stream, seed %llu, %zu commands after a prefill of %zu "
        "orders\n"
        "  mix: passive limit %.1f%%, cancel %.1f%%, replace %.1f%%, crossing limit %.1f%%, "
        "market %.1f%%, fok %.1f%%\n",
        static_cast<unsigned long long>(options.seed), workload.measured.size(),
        workload.prefill.size(), 100.0 * workload.new_passive / n, 100.0 * workload.cancels / n,
        100.0 * workload.replaces / n, 100.0 * workload.new_crossing / n,
        100.0 * workload.new_market / n, 100.0 * workload.new_fok / n);
  }
  if (workload.measured.empty()) {
    std::fprintf(stderr, "ocx bench engine: nothing to measure (no commands)\n");
    return 2;
  }

  std::vector<double> rates;
  bench::RunResult last;
  for (int i = 0; i < options.repeat; ++i) {
    last = bench::RunThroughput(workload, config);
    rates.push_back(last.commands_per_second);
  }
  std::sort(rates.begin(), rates.end());
  const double median = rates[rates.size() / 2];
  std::printf("  book: mean %.0f price levels, %.0f resting orders; %llu trades, %llu events\n",
              last.mean_levels, last.mean_resting_orders,
              static_cast<unsigned long long>(last.trades),
              static_cast<unsigned long long>(last.events));
  std::printf("throughput: %.2f M commands/s (median of %d runs; min %.2f, max %.2f)\n",
              median / 1e6, options.repeat, rates.front() / 1e6, rates.back() / 1e6);

  const bench::LatencyResult latency = bench::RunLatency(workload, config);
  std::printf(
      "latency per command: p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns, mean %.0f ns\n"
      "  (each figure includes one pair of clock reads, %.0f ns on its own)\n",
      latency.p50_ns, latency.p99_ns, latency.p999_ns, latency.max_ns, latency.mean_ns,
      latency.clock_overhead_ns);
  const bool met = median >= 5e6 && latency.p99_ns <= 1000;
  std::printf("target (>= 5 M commands/s, p99 <= 1 us): %s\n", met ? "met" : "NOT met");
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, Registry& registry) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  RegisterJournalBench(bench, registry);
  RegisterSequencerBench(bench, registry);
  RegisterApiBench(bench, registry);
  RegisterDispatchBench(bench, registry);
  RegisterDiscoveryBench(bench, registry);
  auto options = std::make_shared<EngineBenchOptions>();
  CLI::App* engine = bench->add_subcommand(
      "engine", "Time the matching engine alone: commands/s and per-command latency");
  engine->add_option("--commands", options->commands, "Measured commands in the synthetic stream")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
  engine->add_option("--seed", options->seed, "Seed of the synthetic stream")
      ->capture_default_str();
  engine->add_option("--repeat", options->repeat, "Throughput runs (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  engine->add_option("--input", options->input,
                     "Time a replay file instead (parsed into memory before the clock starts)");
  engine->add_option("--tick", options->tick, "Tick size of the market")->capture_default_str();
  engine->footer(
      "Examples:\n"
      "  ocx bench engine\n"
      "  ocx bench engine --commands 5000000 --seed 7\n"
      "  ocx bench engine --input examples/replay/basic.jsonl");
  registry.Add(engine, [options] { return RunEngineBench(*options); });
}

}  // namespace ocx::cli
