// FileJournalReader: iterates the records of a FileJournal directory in sequence order,
// from a given sequence, across segment files: the replay half of "state = latest snapshot +
// replay of the journal tail".
//
// Every segment is validated as it is loaded (segment_scan.h): sealed segments must be
// whole, consecutive segments must continue each other's sequences, and the newest segment
// may end in a torn tail, which ends the iteration and is reported by torn_tail() (recovery
// in FileJournal::Open cuts it; the reader never writes). Anything else is DataLoss, with
// the file, byte offset and sequence in the message.
//
// Reads one whole segment into memory at a time (a segment is bounded by
// kMaxSegmentFileBytes). Meant for a journal that no process is appending to; a reader that
// races a writer may stop early at a record still being written.
// Not thread-safe: one thread drives a reader.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/journal/record_format.h"
#include "src/journal/segment_scan.h"

namespace ocx::journal {

class FileJournalReader {
 public:
  // Reads the journal in `dir` from `from_sequence` (0: from the oldest record present).
  // OutOfRange when records before from_sequence were discarded, or, from Next, when the
  // journal ends before from_sequence - 1.
  static absl::StatusOr<std::unique_ptr<FileJournalReader>> Open(const std::string& dir,
                                                                 uint64_t from_sequence);

  // Fills *record with the next record and returns true, or returns false at the end of the
  // journal. record->payload points into the reader's buffer and stays valid until the next
  // call.
  absl::StatusOr<bool> Next(RecordView* record);

  // The torn tail at the end of the newest segment, once the iteration has reached it.
  const std::optional<TornTail>& torn_tail() const { return torn_tail_; }
  // Sequence of the last record returned or skipped (from_sequence - 1 at first).
  uint64_t last_sequence() const { return expected_ - 1; }

 private:
  FileJournalReader(std::string dir, std::vector<uint64_t> segments, size_t first_segment,
                    uint64_t from_sequence);
  absl::Status LoadSegment(size_t index);

  const std::string dir_;
  const std::vector<uint64_t> segments_;  // First sequences, oldest first.
  const uint64_t from_sequence_;
  size_t next_segment_;  // Index of the segment to load when this one is done.
  bool loaded_any_ = false;
  std::string data_;  // The loaded segment.
  std::string path_;
  size_t offset_ = 0;  // Next record in data_.
  size_t end_ = 0;     // End of the intact records in data_.
  uint64_t expected_;  // Sequence of the next record.
  std::optional<TornTail> torn_tail_;
};

}  // namespace ocx::journal
