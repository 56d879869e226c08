// Rebuilds the query store from the journal, the source of truth: replays journal records
// through a core (events come only from applying commands) and projects the commands the
// store has not seen yet. For a store that was lost, is behind, or was Rebuild()-ed empty.
// The replay starts at record 1 while the journal holds it, else from the newest snapshot the
// store has already passed (the exchange prunes history only below both; prune.h).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "src/core/types.h"
#include "src/store/store.h"

namespace ocx::server {

struct JournalProjection {
  uint64_t replayed = 0;   // Records applied to the core.
  uint64_t projected = 0;  // Commands handed to the store.
};

// `data_dir` as given to the Sequencer. FailedPrecondition when the journal was pruned past
// the store's position and no snapshot bridges the gap (a store restored from an old backup,
// or wiped: history that old is gone). Projects in batches.
absl::StatusOr<JournalProjection> ProjectJournal(const std::string& data_dir,
                                                 const core::ExchangeConfig& config,
                                                 store::Store& store);

}  // namespace ocx::server
