// The discovery benchmark's workload (docs/formats/query.md, "Performance"): a synthetic
// fleet of machines in a MachineIndex, searched with random queries of three kinds, each
// sorted by price with a limit of 100 as GET /v1/offers does:
//   - selective: indexed conditions that match few machines
//     (gpu.model == "h100-80g" && region == "eu", label.owner == "owner-123", ...);
//   - broad: indexed conditions that match a large share of the fleet
//     (cpu.cores >= 4 && region in ["eu", "us"], ...), so the planner scans;
//   - scan: regular expressions and negations (cpu.model =~ "^amd", !(region == "eu"), ...).
// Measured per kind: search latency percentiles (parse excluded; parse is reported alone),
// matches per query, and how often the index was used; plus the time to build the index,
// to re-price machines (Upsert with a changed price) and the index's memory estimate.
// Machines and queries come from a seeded base::Rng: the same options give the same fleet
// and the same queries (the timings of course vary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/query/value.h"

namespace ocx::bench {

struct DiscoveryBenchOptions {
  size_t machines = 100'000;
  size_t queries = 2'000;  // Split evenly over the three kinds.
  uint64_t seed = 1;
};

struct DiscoveryKindReport {
  std::string kind;     // "selective", "broad", "scan".
  std::string example;  // The first query of the kind.
  size_t queries = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;  // Wall time of MachineIndex::Search.
  double cpu_p50_us = 0, cpu_p99_us = 0;      // The thread's CPU time, same calls.
  double mean_matching = 0;                   // total_matching per query.
  double mean_examined = 0;    // Machines the full query was evaluated on, per query.
  double indexed_percent = 0;  // Queries planned with the index rather than a scan.
};

struct DiscoveryBenchReport {
  size_t machines = 0;
  uint64_t seed = 0;
  double build_ms = 0;        // Upserting every machine into an empty index.
  double reprice_p50_us = 0;  // One Upsert that changes only the price.
  double parse_p50_us = 0;    // Query::Parse, over all the queries.
  size_t memory_bytes = 0;    // MachineIndex::MemoryBytesEstimate() after building.
  std::vector<DiscoveryKindReport> kinds;
};

// One synthetic machine (its attributes), a pure function of seed and index: regions eu, us,
// asia, ...; cpu.cores 2..128; memory; mostly no GPU; GPU models; labels; a price.
query::Attributes SyntheticMachine(uint64_t seed, uint64_t index);

// `count` random query texts of a kind ("selective", "broad" or "scan"); they all parse.
std::vector<std::string> SyntheticQueries(const std::string& kind, size_t count, uint64_t seed);

DiscoveryBenchReport RunDiscoveryBench(const DiscoveryBenchOptions& options);
std::string FormatDiscoveryReport(const DiscoveryBenchReport& report);

}  // namespace ocx::bench
