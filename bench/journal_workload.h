// The journal benchmark's workload (`ocx bench journal`, docs/benchmarks.md): one producer
// thread, standing in for the sequencer, appends fixed-size records to a FileJournal on a
// real disk; the group-commit writer makes them durable and acknowledges them. Measured:
// durable commands per second (first append to last acknowledgement) and, per record, the
// acknowledgement latency from its append to the durable callback that covers it.
//
// Two modes. Saturated (rate 0): the producer appends as fast as it can and is held back
// only by the journal's bounded queue; this finds the ceiling, and its latency is mostly
// queueing. Paced (rate > 0): the producer appends on an open-loop schedule, command i at
// t0 + i / rate, and latency is measured from the scheduled time, so that a producer held
// up by backpressure cannot hide the delay (no coordinated omission).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "src/journal/file_journal.h"

namespace ocx::bench {

struct JournalWorkloadOptions {
  std::string dir = ".";  // A fresh subdirectory is made here and removed afterwards.
  size_t commands = 1'000'000;
  size_t payload_bytes = 64;   // About one serialized order command.
  double rate_per_second = 0;  // 0: saturated.
  size_t batch_bytes_max = journal::kDefaultBatchBytesMax;
  uint64_t segment_bytes = journal::kDefaultSegmentBytes;
};

struct JournalRunResult {
  double seconds = 0;  // First append to the last acknowledgement.
  double durable_commands_per_second = 0;
  double megabytes_per_second = 0;  // Record bytes made durable (10^6 bytes).
  double ack_p50_us = 0, ack_p99_us = 0, ack_p999_us = 0, ack_max_us = 0, ack_mean_us = 0;
  uint64_t batches = 0;  // Writes, each followed by one fdatasync.
  double mean_batch_records = 0;
  double mean_sync_interval_us = 0;  // Run time divided by batches.
  // Paced mode: how far the producer fell behind its schedule at worst (CPU contention, or
  // Append blocked by a full queue). Included in the latencies.
  double producer_lag_max_us = 0;
  // Paced mode: latency from the moment Append was called rather than scheduled.
  double ack_from_call_p50_us = 0, ack_from_call_p99_us = 0;
};

absl::StatusOr<JournalRunResult> RunJournalWorkload(const JournalWorkloadOptions& options);

// The file system type of `dir` ("ext4", "xfs", "tmpfs", ...), or "unknown (0x...)".
std::string FilesystemName(const std::string& dir);

}  // namespace ocx::bench
