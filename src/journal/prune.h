// Pruning: what the exchange no longer needs of its history on disk. Journal segments whose
// every record is older than a sequence, and snapshots older than the newest few, are deleted.
// The caller chooses the sequence (src/server: the older of the snapshots kept, and the
// query store's position, whichever is lower), so that recovery (a kept snapshot plus the
// records after it) and the store's catch-up (ProjectJournal) always find what they need.
// Thread-safe for different directories; the journal's writer only ever writes the newest
// segment, which is never deleted, so pruning may run beside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ocx::journal {

struct PruneReport {
  uint64_t files_deleted = 0;
  uint64_t bytes_deleted = 0;
};

// Deletes the journal segments in `dir` whose records all have sequences below
// `keep_from_sequence` (a segment's records end where the next segment begins); the newest
// segment is never deleted. The directory is synced after.
absl::StatusOr<PruneReport> PruneSegments(const std::string& dir, uint64_t keep_from_sequence);

// Deletes every snapshot in `dir` but the newest `keep` (by sequence) and the newest one at or
// below `also_keep_at_or_below` (the query store's position: its catch-up starts there), and
// temporary files left by interrupted writes. Returns the sequences kept, oldest first.
absl::StatusOr<std::vector<uint64_t>> PruneSnapshots(const std::string& dir, size_t keep,
                                                     uint64_t also_keep_at_or_below,
                                                     PruneReport* report);

// The sequence of the first record the journal in `dir` still holds (0 when it has no
// segment): records before it were pruned.
absl::StatusOr<uint64_t> FirstJournalSequence(const std::string& dir);

}  // namespace ocx::journal
