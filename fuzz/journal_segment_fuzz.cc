// Fuzz harness: a whole journal segment file (src/journal/segment_scan.h,
// file_journal_reader.h, docs/formats/journal.md), as recovery and replay read it from disk
// after a crash, a torn write or bit rot.
//
// The input is the content of the segment "journal-00000000000000000001.log". Properties
// checked:
//   - ScanSegment, as the sealed and as the newest segment, returns a Status and never
//     crashes; a scan that succeeds describes the data (valid bytes within it, records and
//     sequences consistent; a torn tail only in the newest segment, a sealed one intact);
//   - FileJournalReader over a folder holding that one file returns a Status from Open and
//     Next, never crashes, and when the newest-segment scan succeeded, yields exactly its
//     records in sequence order, then the same torn tail; otherwise fails with that error.
// The folder and file are made once per process and the file is overwritten per input.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/record_format.h"
#include "src/journal/segment_scan.h"

namespace {

using namespace ocx::journal;

constexpr uint64_t kFirstSequence = 1;

void CheckScan(std::string_view data, SegmentRole role, const absl::StatusOr<SegmentScan>& scan) {
  if (!scan.ok()) {
    OCX_ASSERT(scan.status().code() == absl::StatusCode::kDataLoss ||
               scan.status().code() == absl::StatusCode::kFailedPrecondition);
    return;
  }
  OCX_ASSERT(scan->first_sequence == kFirstSequence);
  if (scan->header_torn) {
    OCX_ASSERT(role == SegmentRole::kNewest && data.size() <= kSegmentHeaderBytes);
    OCX_ASSERT(scan->records == 0 && !scan->torn.has_value());
    return;
  }
  OCX_ASSERT(scan->valid_bytes >= kSegmentHeaderBytes && scan->valid_bytes <= data.size());
  OCX_ASSERT(scan->last_sequence == scan->first_sequence + scan->records - 1);
  if (scan->torn.has_value()) {
    OCX_ASSERT(role == SegmentRole::kNewest);
    OCX_ASSERT(scan->torn->offset == scan->valid_bytes);
    OCX_ASSERT(scan->torn->bytes == data.size() - scan->valid_bytes && scan->torn->bytes > 0);
    OCX_ASSERT(scan->torn->first_sequence == scan->last_sequence + 1);
  } else {
    OCX_ASSERT(scan->valid_bytes == data.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = ocx::fuzz::AsText(data, size);
  const std::string& dir = ocx::fuzz::ScratchDir();
  static const std::string path = dir + "/" + SegmentFileName(kFirstSequence);

  const absl::StatusOr<SegmentScan> sealed =
      ScanSegment(path, bytes, kFirstSequence, SegmentRole::kSealed);
  CheckScan(bytes, SegmentRole::kSealed, sealed);
  const absl::StatusOr<SegmentScan> newest =
      ScanSegment(path, bytes, kFirstSequence, SegmentRole::kNewest);
  CheckScan(bytes, SegmentRole::kNewest, newest);
  // Damage a sealed segment accepts, the newest accepts the same way.
  if (sealed.ok()) {
    OCX_ASSERT(newest.ok() && !newest->torn.has_value() && !newest->header_torn);
    OCX_ASSERT(newest->records == sealed->records);
  }

  ocx::fuzz::WriteScratchFile(path, bytes);
  absl::StatusOr<std::unique_ptr<FileJournalReader>> reader = FileJournalReader::Open(dir, 0);
  OCX_ASSERT(reader.ok());  // Open only lists the folder.
  uint64_t records = 0;
  absl::Status failed;
  for (;;) {
    RecordView record;
    const absl::StatusOr<bool> next = (*reader)->Next(&record);
    if (!next.ok()) {
      failed = next.status();
      break;
    }
    if (!*next) break;
    OCX_ASSERT(record.sequence == kFirstSequence + records);
    ++records;
  }
  if (newest.ok()) {
    OCX_ASSERT_MSG(failed.ok(), "the reader refuses a segment the scan accepts");
    OCX_ASSERT(records == newest->records);
    OCX_ASSERT((*reader)->torn_tail().has_value() == newest->torn.has_value());
  } else {
    OCX_ASSERT_MSG(failed == newest.status(), "the reader and the scan disagree");
  }
  return 0;
}
