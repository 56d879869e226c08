#include "src/journal/file_journal_reader.h"

#include <algorithm>
#include <utility>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/journal/file_io.h"
#include "src/journal/strings.h"

namespace ocx::journal {

absl::StatusOr<std::unique_ptr<FileJournalReader>> FileJournalReader::Open(const std::string& dir,
                                                                           uint64_t from_sequence) {
  OCX_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDirectory(dir));
  std::vector<uint64_t> segments;
  for (const std::string& name : names) {
    if (std::optional<uint64_t> first = ParseSegmentFileName(name)) segments.push_back(*first);
  }
  std::sort(segments.begin(), segments.end());
  size_t first_segment = 0;
  if (!segments.empty()) {
    if (from_sequence == 0) {
      from_sequence = segments.front();
    } else if (from_sequence < segments.front()) {
      return absl::OutOfRangeError(internal::Cat(
          "journal ", dir, " starts at sequence ", segments.front(), "; records from ",
          from_sequence, " were discarded (they are covered by a snapshot)"));
    }
    // The last segment whose first sequence is <= from_sequence.
    first_segment = static_cast<size_t>(
        std::upper_bound(segments.begin(), segments.end(), from_sequence) - segments.begin() - 1);
  } else if (from_sequence == 0) {
    from_sequence = 1;
  }
  return std::unique_ptr<FileJournalReader>(
      new FileJournalReader(dir, std::move(segments), first_segment, from_sequence));
}

FileJournalReader::FileJournalReader(std::string dir, std::vector<uint64_t> segments,
                                     size_t first_segment, uint64_t from_sequence)
    : dir_(std::move(dir)),
      segments_(std::move(segments)),
      from_sequence_(from_sequence),
      next_segment_(first_segment),
      expected_(segments_.empty() ? from_sequence : segments_[first_segment]) {}

absl::Status FileJournalReader::LoadSegment(size_t index) {
  const uint64_t first = segments_[index];
  path_ = internal::JoinPath(dir_, SegmentFileName(first));
  if (loaded_any_ && first != expected_) {
    return absl::DataLossError(internal::Cat("journal segment ", path_, ": starts at sequence ",
                                             first, " but the previous segment ended at ",
                                             expected_ - 1, " (a gap or overlap)"));
  }
  OCX_ASSIGN_OR_RETURN(data_, internal::ReadWholeFile(path_, kMaxSegmentFileBytes));
  const SegmentRole role =
      index + 1 == segments_.size() ? SegmentRole::kNewest : SegmentRole::kSealed;
  OCX_ASSIGN_OR_RETURN(SegmentScan scan, ScanSegment(path_, data_, first, role));
  loaded_any_ = true;
  expected_ = first;
  offset_ = scan.header_torn ? 0 : kSegmentHeaderBytes;
  end_ = scan.header_torn ? 0 : scan.valid_bytes;
  if (scan.torn.has_value()) torn_tail_ = scan.torn;
  return absl::OkStatus();
}

absl::StatusOr<bool> FileJournalReader::Next(RecordView* record) {
  for (;;) {
    if (offset_ < end_) {
      DecodedRecord decoded;
      // Already validated by ScanSegment: decoding cannot fail now.
      OCX_ASSERT(DecodeRecord(std::string_view(data_).substr(offset_, end_ - offset_), &decoded) ==
                 DecodeStatus::kOk);
      OCX_ASSERT(decoded.record.sequence == expected_);
      offset_ += decoded.size;
      ++expected_;
      if (decoded.record.sequence < from_sequence_) continue;
      *record = decoded.record;
      return true;
    }
    if (next_segment_ >= segments_.size()) break;
    OCX_RETURN_IF_ERROR(LoadSegment(next_segment_++));
  }
  if (expected_ < from_sequence_) {
    return absl::OutOfRangeError(internal::Cat("journal ", dir_, " ends at sequence ",
                                               expected_ - 1, ", before the requested ",
                                               from_sequence_));
  }
  return false;
}

}  // namespace ocx::journal
