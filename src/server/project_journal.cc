#include "src/server/project_journal.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "src/base/status.h"
#include "src/core/codec.h"
#include "src/core/exchange.h"
#include "src/journal/file_io.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/prune.h"
#include "src/journal/snapshot.h"

namespace ocx::server {

namespace {

// The core to replay from, and the first record it needs: a fresh core from record 1 while
// the journal is whole; once segments were pruned, the newest snapshot the store has passed
// (the exchange prunes only below both its older snapshot and the store: prune.h).
absl::StatusOr<std::pair<std::unique_ptr<core::Exchange>, uint64_t>> StartingPoint(
    const std::string& data_dir, const core::ExchangeConfig& config, uint64_t projected) {
  OCX_ASSIGN_OR_RETURN(const uint64_t first, journal::FirstJournalSequence(data_dir + "/journal"));
  if (first <= 1) return std::make_pair(std::make_unique<core::Exchange>(config), uint64_t{1});
  OCX_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                       journal::internal::ListDirectory(data_dir + "/snapshots"));
  std::vector<uint64_t> sequences;
  for (const std::string& name : names) {
    if (const auto sequence = journal::ParseSnapshotFileName(name)) sequences.push_back(*sequence);
  }
  std::sort(sequences.rbegin(), sequences.rend());
  for (const uint64_t sequence : sequences) {
    if (sequence > projected || sequence + 1 < first) continue;
    const auto snapshot = journal::ReadSnapshot(data_dir + "/snapshots/" +
                                                journal::SnapshotFileName(sequence));
    if (!snapshot.ok() || snapshot->body_version != core::kSnapshotVersion) continue;
    auto restored = core::Exchange::Restore(config, snapshot->body);
    if (!restored.ok()) continue;
    return std::make_pair(std::move(*restored), sequence + 1);
  }
  return absl::FailedPreconditionError(
      "the query store is at sequence " + std::to_string(projected) +
      " but the journal now starts at " + std::to_string(first) +
      " and no snapshot bridges the two: the history in between is gone (restore the store "
      "from a backup, or move it away to start a new one from the current state)");
}

}  // namespace

absl::StatusOr<JournalProjection> ProjectJournal(const std::string& data_dir,
                                                 const core::ExchangeConfig& config,
                                                 store::Store& store) {
  constexpr size_t kBatchCommands = 1024;  // Commands per store transaction.
  const uint64_t skip_through = store.last_projected_sequence();
  OCX_ASSIGN_OR_RETURN(auto start, StartingPoint(data_dir, config, skip_through));
  std::unique_ptr<core::Exchange> replaying = std::move(start.first);
  core::Exchange& exchange = *replaying;
  absl::StatusOr<std::unique_ptr<journal::FileJournalReader>> reader =
      journal::FileJournalReader::Open(data_dir + "/journal", start.second);
  if (!reader.ok()) return reader.status();
  JournalProjection projection;
  std::vector<store::AppliedCommand> batch;
  journal::RecordView record;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok()) return more.status();
    if (!*more) break;
    absl::StatusOr<core::CommandBody> command = core::DecodeCommand(record.payload);
    if (!command.ok()) {
      return absl::DataLossError("journal record " + std::to_string(record.sequence) + ": " +
                                 std::string(command.status().message()));
    }
    core::ApplyOutput out;
    exchange.Apply(record.sequence, record.timestamp, *command, &out);
    ++projection.replayed;
    if (record.sequence <= skip_through) continue;
    batch.push_back(store::AppliedCommand{record.sequence, record.timestamp, std::move(out.events)});
    if (batch.size() == kBatchCommands) {
      if (absl::Status s = store.Project(batch); !s.ok()) return s;
      projection.projected += batch.size();
      batch.clear();
    }
  }
  if (!batch.empty()) {
    if (absl::Status s = store.Project(batch); !s.ok()) return s;
    projection.projected += batch.size();
  }
  return projection;
}

}  // namespace ocx::server
