// The engine benchmark's workload: a documented synthetic mixed stream of spot-market
// commands (see docs/benchmarks.md), and the runners that time the engine over it.
// Generation, and parsing of a replay file given with --input, happen before any clock
// starts: only matching is timed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/engine/command.h"

namespace ocx::bench {

struct MixedStreamOptions {
  uint64_t seed = 1;
  size_t commands = 2'000'000;        // Measured commands, after the prefill.
  size_t levels_per_side = 500;       // Prefill: a book of about 2 x 500 levels.
  size_t target_resting_orders = 4'000;
  uint32_t accounts = 1'000;
  engine::PriceMicros tick_micros = 100;
  engine::PriceMicros mid_micros = 1'000'000;  // 1.0000 credits per slot-hour.
};

struct Workload {
  std::vector<engine::Command> prefill;   // Applied before timing starts.
  std::vector<engine::Command> measured;  // The timed stream.
  // What the measured stream contains, for the report.
  size_t new_passive = 0, new_crossing = 0, new_market = 0, new_fok = 0, cancels = 0,
         replaces = 0;
};

Workload GenerateMixedStream(const MixedStreamOptions& options);

// Wraps a parsed replay file: all of it is measured.
Workload WorkloadFromCommands(std::vector<engine::Command> commands);

struct RunResult {
  double seconds = 0;
  double commands_per_second = 0;
  uint64_t events = 0;
  uint64_t trades = 0;
  double mean_levels = 0;          // Book levels (both sides), sampled along the run.
  double mean_resting_orders = 0;
};

// Applies the prefill, then times the whole measured stream with two clock reads.
RunResult RunThroughput(const Workload& workload, const engine::BookConfig& config);

struct LatencyResult {
  double p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0, mean_ns = 0;
  double clock_overhead_ns = 0;  // Cost of one back-to-back pair of clock reads, included above.
};

// Applies the prefill, then times every measured command on its own.
LatencyResult RunLatency(const Workload& workload, const engine::BookConfig& config);

}  // namespace ocx::bench
