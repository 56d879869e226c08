// `ocx bench journal`: durable commands per second and acknowledgement latency of the
// group-commit journal on this machine's disk (see docs/benchmarks.md for the workload and
// how to read the figures).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/journal_workload.h"
#include "src/cli/commands.h"
#include "src/journal/file_journal.h"
#include "src/journal/record_format.h"

namespace ocx::cli {
namespace {

// Target from the exchange's plan: the journal must not be what limits the sequencer.
constexpr double kTargetCommandsPerSecond = 200'000;
constexpr double kTargetAckP99Us = 10'000;

struct JournalBenchOptions {
  size_t commands = 1'000'000;
  size_t payload_bytes = 64;
  double rate = kTargetCommandsPerSecond;
  int repeat = 3;
  std::string dir = ".";
  size_t batch_kib = journal::kDefaultBatchBytesMax / 1024;
  uint64_t segment_mib = journal::kDefaultSegmentBytes >> 20;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct Summary {
  double rate = 0, mb_per_second = 0, p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  double batch_records = 0, sync_interval_us = 0, producer_lag_max_us = 0;
  double from_call_p50_us = 0, from_call_p99_us = 0;
  double rate_min = 0, rate_max = 0, p99_min = 0, p99_max = 0;
};

// Runs the workload `repeat` times and takes the median of each figure separately.
bool RunMode(const JournalBenchOptions& options, double rate, Summary* summary) {
  bench::JournalWorkloadOptions workload;
  workload.dir = options.dir;
  workload.commands = options.commands;
  workload.payload_bytes = options.payload_bytes;
  workload.rate_per_second = rate;
  workload.batch_bytes_max = options.batch_kib * 1024;
  workload.segment_bytes = options.segment_mib << 20;
  std::vector<double> rates, mbs, p50, p99, p999, max, batch, interval, lag, call50, call99;
  for (int i = 0; i < options.repeat; ++i) {
    absl::StatusOr<bench::JournalRunResult> run = bench::RunJournalWorkload(workload);
    if (!run.ok()) {
      std::fprintf(stderr, "ocx bench journal: %s\n", run.status().ToString().c_str());
      return false;
    }
    rates.push_back(run->durable_commands_per_second);
    mbs.push_back(run->megabytes_per_second);
    p50.push_back(run->ack_p50_us);
    p99.push_back(run->ack_p99_us);
    p999.push_back(run->ack_p999_us);
    max.push_back(run->ack_max_us);
    batch.push_back(run->mean_batch_records);
    interval.push_back(run->mean_sync_interval_us);
    lag.push_back(run->producer_lag_max_us);
    call50.push_back(run->ack_from_call_p50_us);
    call99.push_back(run->ack_from_call_p99_us);
  }
  summary->rate = Median(rates);
  summary->mb_per_second = Median(mbs);
  summary->p50_us = Median(p50);
  summary->p99_us = Median(p99);
  summary->p999_us = Median(p999);
  summary->max_us = Median(max);
  summary->batch_records = Median(batch);
  summary->sync_interval_us = Median(interval);
  summary->producer_lag_max_us = Median(lag);
  summary->from_call_p50_us = Median(call50);
  summary->from_call_p99_us = Median(call99);
  summary->rate_min = *std::min_element(rates.begin(), rates.end());
  summary->rate_max = *std::max_element(rates.begin(), rates.end());
  summary->p99_min = *std::min_element(p99.begin(), p99.end());
  summary->p99_max = *std::max_element(p99.begin(), p99.end());
  return true;
}

void PrintSummary(const Summary& s, int repeat, bool paced) {
  std::printf(
      "  durable throughput: %.0f commands/s (median of %d; min %.0f, max %.0f), %.1f MB/s\n",
      s.rate, repeat, s.rate_min, s.rate_max, s.mb_per_second);
  std::printf(
      "  ack latency: p50 %.2f ms, p99 %.2f ms (min %.2f, max %.2f), p99.9 %.2f ms, max %.2f ms\n",
      s.p50_us / 1e3, s.p99_us / 1e3, s.p99_min / 1e3, s.p99_max / 1e3, s.p999_us / 1e3,
      s.max_us / 1e3);
  std::printf("  group commit: %.0f records per write+fdatasync, one every %.0f us\n",
              s.batch_records, s.sync_interval_us);
  if (paced) {
    std::printf(
        "  producer behind its schedule at worst: %.2f ms (included above); measured from the\n"
        "  Append call instead of the schedule: ack p50 %.2f ms, p99 %.2f ms\n",
        s.producer_lag_max_us / 1e3, s.from_call_p50_us / 1e3, s.from_call_p99_us / 1e3);
  }
}

int RunJournalBench(const JournalBenchOptions& options) {
  if (options.payload_bytes + journal::kRecordHeaderBytes > options.batch_kib * 1024) {
    std::fprintf(stderr, "ocx bench journal: a record must fit in one batch (--batch-kib)\n");
    return 2;
  }
  std::printf(
      "workload: %zu commands of %zu-byte payloads (%zu bytes per record), 1 producer thread "
      "(the sequencer) appending, group commit with one write + fdatasync per batch\n"
      "  batch bound %zu KiB, segments of %llu MiB, journal in %s (%s), removed after each run\n",
      options.commands, options.payload_bytes, journal::EncodedRecordBytes(options.payload_bytes),
      options.batch_kib, static_cast<unsigned long long>(options.segment_mib), options.dir.c_str(),
      bench::FilesystemName(options.dir).c_str());

  Summary saturated;
  std::printf("saturated: the producer appends as fast as the bounded queue lets it\n");
  std::fflush(stdout);
  if (!RunMode(options, 0, &saturated)) return 1;
  PrintSummary(saturated, options.repeat, false);

  if (options.rate > 0) {
    Summary paced;
    std::printf("paced: open loop at %.0f commands/s; latency from each command's scheduled time\n",
                options.rate);
    std::fflush(stdout);
    if (!RunMode(options, options.rate, &paced)) return 1;
    PrintSummary(paced, options.repeat, true);
    const bool met = options.rate >= kTargetCommandsPerSecond &&
                     paced.rate >= 0.99 * options.rate && paced.p99_us <= kTargetAckP99Us;
    std::printf("target (>= %.0f durable commands/s with ack p99 <= %.0f ms): %s\n",
                kTargetCommandsPerSecond, kTargetAckP99Us / 1e3, met ? "met" : "NOT met");
  }
  return 0;
}

}  // namespace

void RegisterJournalBench(CLI::App* bench, Registry& registry) {
  auto options = std::make_shared<JournalBenchOptions>();
  CLI::App* command = bench->add_subcommand(
      "journal", "Time the group-commit journal on this disk: durable commands/s and ack latency");
  command->add_option("--commands", options->commands, "Commands appended per run")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
  command->add_option("--payload-bytes", options->payload_bytes, "Payload bytes per command")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, journal::kMaxPayloadBytes));
  command
      ->add_option("--rate", options->rate, "Commands/s of the paced runs (0: saturated runs only)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100'000'000.0));
  command->add_option("--repeat", options->repeat, "Runs per mode (medians are reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  command
      ->add_option("--dir", options->dir,
                   "Directory on the disk to measure (a scratch subdirectory is used)")
      ->capture_default_str()
      ->check(CLI::ExistingDirectory);
  command
      ->add_option("--batch-kib", options->batch_kib,
                   "Bound on one group-commit batch (the journal's queue), KiB")
      ->capture_default_str()
      ->check(CLI::Range(journal::kMinBatchBytesMax / 1024, journal::kMaxUnsyncedBytes / 1024));
  command->add_option("--segment-mib", options->segment_mib, "Segment roll size, MiB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, journal::kMaxSegmentRollBytes >> 20));
  command->footer(
      "Examples:\n"
      "  ocx bench journal\n"
      "  ocx bench journal --dir /var/lib/ocx --repeat 5\n"
      "  ocx bench journal --rate 0 --payload-bytes 256");
  registry.Add(command, [options] { return RunJournalBench(*options); });
}

}  // namespace ocx::cli
