#include "src/server/project_journal.h"

#include <vector>

#include "src/core/codec.h"
#include "src/core/exchange.h"
#include "src/journal/file_journal_reader.h"

namespace ocx::server {

absl::StatusOr<JournalProjection> ProjectJournal(const std::string& data_dir,
                                                 const core::ExchangeConfig& config,
                                                 store::Store& store) {
  constexpr size_t kBatchCommands = 1024;  // Commands per store transaction.
  absl::StatusOr<std::unique_ptr<journal::FileJournalReader>> reader =
      journal::FileJournalReader::Open(data_dir + "/journal", 1);
  if (!reader.ok()) return reader.status();
  core::Exchange exchange(config);
  const uint64_t skip_through = store.last_projected_sequence();
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
