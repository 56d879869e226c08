// Rebuilds the query store from the journal, the source of truth: replays every journal
// record through a fresh core (events come only from applying commands, so the replay starts
// at the first record) and projects the commands the store has not seen yet. For a store
// that was lost, is behind, or was Rebuild()-ed empty.
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

// `data_dir` as given to the Sequencer. Fails with OutOfRange when the journal no longer
// starts at sequence 1 (segments discarded after a snapshot). Projects in batches.
absl::StatusOr<JournalProjection> ProjectJournal(const std::string& data_dir,
                                                 const core::ExchangeConfig& config,
                                                 store::Store& store);

}  // namespace ocx::server
