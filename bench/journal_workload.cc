#include "bench/journal_workload.h"

#include <stdlib.h>
#include <sys/vfs.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "src/base/assert.h"
#include "src/journal/record_format.h"

namespace ocx::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Removes the benchmark's journal directory however the run ends.
class ScratchDir {
 public:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

double Percentile(const std::vector<int64_t>& sorted, double fraction) {
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(fraction * sorted.size()));
  return static_cast<double>(sorted[index]);
}

}  // namespace

std::string FilesystemName(const std::string& dir) {
  struct statfs info;
  if (::statfs(dir.c_str(), &info) != 0) return "unknown";
  switch (static_cast<uint64_t>(info.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs (fsync does nothing: figures are not durable ones)";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "zfs";
    case 0xF2F52010:
      return "f2fs";
    case 0x6969:
      return "nfs";
    default: {
      char text[48];
      std::snprintf(text, sizeof(text), "unknown (0x%llx)",
                    static_cast<unsigned long long>(info.f_type));
      return text;
    }
  }
}

absl::StatusOr<JournalRunResult> RunJournalWorkload(const JournalWorkloadOptions& options) {
  OCX_ASSERT(options.commands > 0);
  std::string pattern = options.dir + "/ocx-bench-journal.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, "mkdtemp " + pattern);
  }
  ScratchDir scratch(pattern);

  // Index i holds command i + 1 (sequences start at 1).
  std::vector<int64_t> start_ns(options.commands);
  std::vector<int64_t> latency_ns(options.commands);
  // Paced mode only: when Append was actually called, which is later than scheduled when
  // the producer lags; the difference separates the journal's delay from the producer's.
  const bool paced = options.rate_per_second > 0;
  std::vector<int64_t> call_ns(paced ? options.commands : 0);
  std::vector<int64_t> from_call_ns(paced ? options.commands : 0);
  uint64_t acknowledged = 0;  // Written by the writer thread (the callback) only.
  int64_t last_ack_ns = 0;    // Likewise.

  journal::FileJournalOptions journal_options;
  journal_options.dir = scratch.path();
  journal_options.batch_bytes_max = options.batch_bytes_max;
  journal_options.segment_bytes = options.segment_bytes;
  journal_options.on_durable = [&](uint64_t durable) {
    const int64_t now = NowNs();
    for (uint64_t sequence = acknowledged + 1; sequence <= durable; ++sequence) {
      latency_ns[sequence - 1] = now - start_ns[sequence - 1];
      if (paced) from_call_ns[sequence - 1] = now - call_ns[sequence - 1];
    }
    acknowledged = durable;
    last_ack_ns = now;
  };
  absl::StatusOr<std::unique_ptr<journal::FileJournal>> opened =
      journal::FileJournal::Open(journal_options);
  if (!opened.ok()) return opened.status();
  journal::FileJournal& journal = **opened;

  std::string payload(options.payload_bytes, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 13 + 1);
  journal::RecordView record;
  record.payload_version = 1;
  record.payload = payload;

  JournalRunResult result;
  const double interval_ns = options.rate_per_second > 0 ? 1e9 / options.rate_per_second : 0;
  const int64_t t0 = NowNs();
  for (size_t i = 0; i < options.commands; ++i) {
    int64_t start;
    if (interval_ns > 0) {
      start = t0 + static_cast<int64_t>(static_cast<double>(i) * interval_ns);
      const int64_t now = NowNs();
      if (now < start) {
        // Sleep rather than spin, leaving the CPU to the writer: the wake-up is late by the
        // timer slack (~50 us), and the commands due by then go out back to back.
        const timespec until{static_cast<time_t>(start / 1'000'000'000),
                             static_cast<long>(start % 1'000'000'000)};
        ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr);
      } else {
        result.producer_lag_max_us =
            std::max(result.producer_lag_max_us, static_cast<double>(now - start) / 1e3);
      }
    } else {
      start = NowNs();
    }
    start_ns[i] = start;
    if (paced) call_ns[i] = NowNs();
    record.sequence = i + 1;
    record.timestamp = start;
    // The payload would be the serialized command; stamp it so that records differ.
    std::memcpy(payload.data(), &record.sequence, std::min<size_t>(8, payload.size()));
    absl::Status appended = journal.Append(record);
    if (!appended.ok()) return appended;
  }
  absl::Status closed = journal.Close();  // Waits for the writer to acknowledge everything.
  if (!closed.ok()) return closed;
  OCX_ASSERT(acknowledged == options.commands);

  result.seconds = static_cast<double>(last_ack_ns - t0) / 1e9;
  result.durable_commands_per_second = static_cast<double>(options.commands) / result.seconds;
  result.megabytes_per_second = static_cast<double>(options.commands) *
                                static_cast<double>(journal::EncodedRecordBytes(payload.size())) /
                                result.seconds / 1e6;
  result.batches = journal.batches_written();
  result.mean_batch_records =
      static_cast<double>(options.commands) / static_cast<double>(result.batches);
  result.mean_sync_interval_us = result.seconds * 1e6 / static_cast<double>(result.batches);
  std::sort(latency_ns.begin(), latency_ns.end());
  double sum = 0;
  for (int64_t ns : latency_ns) sum += static_cast<double>(ns);
  result.ack_p50_us = Percentile(latency_ns, 0.50) / 1e3;
  result.ack_p99_us = Percentile(latency_ns, 0.99) / 1e3;
  result.ack_p999_us = Percentile(latency_ns, 0.999) / 1e3;
  result.ack_max_us = static_cast<double>(latency_ns.back()) / 1e3;
  result.ack_mean_us = sum / static_cast<double>(latency_ns.size()) / 1e3;
  if (paced) {
    std::sort(from_call_ns.begin(), from_call_ns.end());
    result.ack_from_call_p50_us = Percentile(from_call_ns, 0.50) / 1e3;
    result.ack_from_call_p99_us = Percentile(from_call_ns, 0.99) / 1e3;
  }
  return result;
}

}  // namespace ocx::bench
