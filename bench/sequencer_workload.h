// `ocx bench sequencer`: durable exchange commands per second end to end — stamped, applied
// to the core, journaled with group commit, fsynced and acknowledged — and the latency from
// Submit to acknowledgement. See docs/benchmarks.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ocx::bench {

struct SequencerBenchOptions {
  std::string data_dir;        // A fresh directory on the disk to measure.
  size_t commands = 300'000;   // Measured commands, after a setup of accounts and a machine.
  int producers = 2;           // Threads submitting concurrently.
  // Commands a producer may have submitted and not yet seen acknowledged, as a client with
  // that many requests in flight. Bounds the queueing part of the latency.
  size_t window = 256;
  uint64_t seed = 1;
};

struct SequencerBenchResult {
  size_t commands = 0;
  double seconds = 0;
  double commands_per_second = 0;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  size_t trades = 0;
  uint64_t journal_bytes = 0;
};

absl::StatusOr<SequencerBenchResult> RunSequencerBench(const SequencerBenchOptions& options);

}  // namespace ocx::bench
