// Validation of one segment file's bytes, shared by recovery (FileJournal::Open) and the
// reader: where the intact records end, whether what follows is a torn tail that recovery may
// cut, or corruption that must stop the exchange. The rule, with the reasoning behind it, is
// in docs/formats/journal.md ("Torn tail or corruption"); in short:
//
//   Scan records from the header. At the first record that does not decode (short, bad
//   length, CRC mismatch) at byte offset X, where sequence S was expected:
//   - in a sealed segment (not the newest) it is corruption: every byte of it was synced
//     before the next segment was created;
//   - in the newest segment it is a torn tail, cut at X, when both hold:
//       (a) the damaged tail is no longer than one write (kMaxUnsyncedBytes), and
//       (b) every intact record found after X belongs to a write that began at or before
//           sequence S (its sequence minus its batch index <= S), i.e. to the same write
//           as the damaged record: only the last write can be unsynced;
//     and corruption otherwise.
//   A record that decodes (its CRC holds) but carries the wrong sequence, unknown flags or an
//   impossible batch index is corruption wherever it is: it was written whole, so no crash
//   explains it.
//
// Thread-safe: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ocx::journal {

enum class SegmentRole {
  kSealed,  // A later segment exists: every byte was synced; any damage is corruption.
  kNewest,  // The last segment: its final write may be torn.
};

// A torn tail found at the end of the newest segment.
struct TornTail {
  uint64_t offset = 0;          // Byte offset where the intact records end (cut here).
  uint64_t bytes = 0;           // Bytes from there to the end of the file.
  uint64_t first_sequence = 0;  // The sequence the first lost record would have carried.
  uint64_t intact_records = 0;  // Whole records of the same torn write found past the damage.
  std::string reason;           // What was wrong at `offset`.
};

struct SegmentScan {
  uint64_t first_sequence = 0;  // From the header (equal to the file name's).
  uint64_t records = 0;         // Intact records.
  uint64_t last_sequence = 0;   // Of the last intact record; first_sequence - 1 if none.
  uint64_t valid_bytes = 0;     // Header plus intact records.
  // Newest segment only: its header never completed (the file is at most a header long and
  // the header does not verify). Segment creation syncs the header before any record is
  // written, so such a file holds nothing; recovery recreates it.
  bool header_torn = false;
  std::optional<TornTail> torn;  // Newest segment only.
};

// Validates `data`, the whole content of the segment file at `path` (used in messages),
// whose name says its first sequence is `name_first_sequence`. Errors: DataLoss for
// corruption (the message names the file, the byte offset and the sequence),
// FailedPrecondition for an unsupported format version.
absl::StatusOr<SegmentScan> ScanSegment(std::string_view path, std::string_view data,
                                        uint64_t name_first_sequence, SegmentRole role);

}  // namespace ocx::journal
