// Recovery at FileJournal::Open against the damage a crash or a disk can leave: truncation
// at every byte, bit flips in the tail and before it, unsynced bytes dropped or zeroed,
// sequence gaps, torn segment creation.
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "src/journal/file_journal.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/record_format.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::CopyDirectory;
using testing::ExpectRecordsFor;
using testing::FileSize;
using testing::OwnedRecord;
using testing::PayloadFor;
using testing::ReadAll;
using testing::ReadFileBytes;
using testing::RecordFor;
using testing::TempDir;
using testing::WriteFileBytes;

const std::string kFirstSegment = SegmentFileName(1);

// Writes records 1..count into `dir`, each in its own write when `one_per_batch`.
void WriteJournal(const std::string& dir, int count, bool one_per_batch) {
  FileJournalOptions options;
  options.dir = dir;
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(options);
  ASSERT_TRUE(journal.ok()) << journal.status();
  for (int i = 0; i < count; ++i) {
    const uint64_t sequence = (*journal)->next_sequence();
    const std::string payload = PayloadFor(sequence);
    ASSERT_TRUE((*journal)->Append(RecordFor(sequence, payload)).ok());
    if (one_per_batch) {
      ASSERT_TRUE((*journal)->WaitDurable(sequence).ok());
    }
  }
  ASSERT_TRUE((*journal)->Close().ok());
}

// Byte offsets where each record of a clean segment ends.
std::vector<size_t> RecordEnds(const std::string& segment) {
  std::vector<size_t> ends;
  size_t offset = kSegmentHeaderBytes;
  DecodedRecord decoded;
  while (offset < segment.size() &&
         DecodeRecord(std::string_view(segment).substr(offset), &decoded) == DecodeStatus::kOk) {
    offset += decoded.size;
    ends.push_back(offset);
  }
  return ends;
}

absl::StatusOr<std::unique_ptr<FileJournal>> Reopen(const std::string& dir) {
  FileJournalOptions options;
  options.dir = dir;
  return FileJournal::Open(options);
}

// Opens (recovers) `dir`, expects exactly records 1..want_last afterwards, and that the
// journal accepts the next record.
void ExpectRecoversTo(const std::string& dir, uint64_t want_last, const std::string& context) {
  SCOPED_TRACE(context);
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(dir);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ((*journal)->recovery().last_sequence, want_last) << (*journal)->recovery().ToString();
  ASSERT_EQ((*journal)->next_sequence(), want_last + 1);
  const std::string payload = PayloadFor(want_last + 1);
  ASSERT_TRUE((*journal)->Append(RecordFor(want_last + 1, payload)).ok());
  ASSERT_TRUE((*journal)->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), want_last + 1);
  ExpectRecordsFor(*records, 1);
}

TEST(RecoveryTest, TruncationAtEveryByteOffsetKeepsEveryCompleteRecord) {
  TempDir original;
  WriteJournal(original.path(), 8, /*one_per_batch=*/false);
  const std::string bytes = ReadFileBytes(original.File(kFirstSegment));
  const std::vector<size_t> ends = RecordEnds(bytes);
  ASSERT_EQ(ends.size(), 8u);
  ASSERT_EQ(ends.back(), bytes.size());

  TempDir work;
  const std::string segment = work.File(kFirstSegment);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    WriteFileBytes(segment, bytes.substr(0, cut));
    uint64_t complete = 0;
    while (complete < ends.size() && ends[complete] <= cut) ++complete;
    {
      absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(work.path());
      ASSERT_TRUE(journal.ok()) << "cut at " << cut << ": " << journal.status();
      const RecoveryReport& report = (*journal)->recovery();
      ASSERT_EQ(report.last_sequence, complete) << "cut at " << cut;
      const size_t kept = complete == 0 ? kSegmentHeaderBytes : ends[complete - 1];
      if (cut < kSegmentHeaderBytes) {
        EXPECT_TRUE(report.recreated_torn_header) << "cut at " << cut;
      } else {
        EXPECT_EQ(report.truncated.has_value(), cut != kept) << "cut at " << cut;
      }
      ASSERT_TRUE((*journal)->Close().ok());
      ASSERT_EQ(FileSize(segment), kept) << "cut at " << cut;
    }
    absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(work.path());
    ASSERT_TRUE(records.ok()) << "cut at " << cut << ": " << records.status();
    ASSERT_EQ(records->size(), complete) << "cut at " << cut;
    ExpectRecordsFor(*records, 1);
  }
}

TEST(RecoveryTest, BitFlipsInTheLastRecordAreTruncatedAndReported) {
  TempDir original;
  WriteJournal(original.path(), 6, /*one_per_batch=*/true);
  const std::string bytes = ReadFileBytes(original.File(kFirstSegment));
  const std::vector<size_t> ends = RecordEnds(bytes);
  ASSERT_EQ(ends.size(), 6u);
  const size_t last_start = ends[4];

  TempDir work;
  const std::string segment = work.File(kFirstSegment);
  for (size_t byte = last_start; byte < bytes.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      WriteFileBytes(segment, damaged);
      absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(work.path());
      ASSERT_TRUE(journal.ok()) << "flip " << byte << ":" << bit << ": " << journal.status();
      const RecoveryReport& report = (*journal)->recovery();
      ASSERT_EQ(report.last_sequence, 5u) << "flip " << byte << ":" << bit;
      ASSERT_TRUE(report.truncated.has_value());
      EXPECT_EQ(report.truncated->offset, last_start);
      EXPECT_EQ(report.truncated->first_sequence, 6u);
      EXPECT_NE(report.ToString().find("torn tail truncated at byte offset " +
                                       std::to_string(last_start)),
                std::string::npos)
          << report.ToString();
      ASSERT_TRUE((*journal)->Close().ok());
      ASSERT_EQ(FileSize(segment), last_start);
    }
  }
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(work.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 5u);
  ExpectRecordsFor(*records, 1);
}

TEST(RecoveryTest, BitFlipsInAnEarlierRecordAreRefusedWithFileOffsetAndSequence) {
  TempDir original;
  WriteJournal(original.path(), 6, /*one_per_batch=*/true);
  const std::string bytes = ReadFileBytes(original.File(kFirstSegment));
  const std::vector<size_t> ends = RecordEnds(bytes);
  ASSERT_EQ(ends.size(), 6u);

  TempDir work;
  const std::string segment = work.File(kFirstSegment);
  for (size_t byte = kSegmentHeaderBytes; byte < ends[4]; ++byte) {
    // The record holding `byte`: sequence k starts at offset `start`.
    uint64_t sequence = 1;
    while (ends[sequence - 1] <= byte) ++sequence;
    const size_t start = sequence == 1 ? kSegmentHeaderBytes : ends[sequence - 2];
    const int bit = static_cast<int>(byte % 8);
    std::string damaged = bytes;
    damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
    WriteFileBytes(segment, damaged);
    absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(work.path());
    ASSERT_FALSE(journal.ok()) << "flip " << byte << ":" << bit << " was accepted";
    EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss);
    const std::string message(journal.status().message());
    EXPECT_NE(message.find(segment), std::string::npos) << message;
    EXPECT_NE(message.find("byte offset " + std::to_string(start) + ":"), std::string::npos)
        << message;
    EXPECT_NE(message.find("sequence " + std::to_string(sequence) + " was expected"),
              std::string::npos)
        << message;
    // Refusing changes nothing on disk.
    ASSERT_EQ(ReadFileBytes(segment), damaged);
  }
}

TEST(RecoveryTest, DamagedSegmentHeaderWithRecordsIsRefused) {
  TempDir dir;
  WriteJournal(dir.path(), 3, false);
  testing::FlipBit(dir.File(kFirstSegment), 17, 0);
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(dir.path());
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss) << journal.status();
}

// Whatever was written after the last sync may be missing (cut) or read back as zeros: the
// journal must come back with at least everything acknowledged and nothing damaged.
TEST(RecoveryTest, DroppedUnsyncedBytesLoseOnlyUnacknowledgedRecords) {
  TempDir original;
  std::mutex mu;
  // (durable sequence, synced file size) at each acknowledgement. Guarded by mu.
  std::vector<std::pair<uint64_t, uint64_t>> syncs;
  const std::string segment_name = kFirstSegment;
  {
    FileJournalOptions options;
    options.dir = original.path();
    options.batch_bytes_max = kMinBatchBytesMax;  // Many writes of several records.
    options.on_durable = [&](uint64_t durable) {
      // On the writer thread, after the sync and before the next write: the file's size now
      // is exactly what is synced.
      const uint64_t size = FileSize(original.File(segment_name));
      std::lock_guard<std::mutex> lock(mu);
      syncs.emplace_back(durable, size);
    };
    absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(options);
    ASSERT_TRUE(journal.ok()) << journal.status();
    for (int i = 0; i < 3000; ++i) {
      const uint64_t sequence = (*journal)->next_sequence();
      const std::string payload = PayloadFor(sequence);
      ASSERT_TRUE((*journal)->Append(RecordFor(sequence, payload)).ok());
    }
    ASSERT_TRUE((*journal)->Close().ok());
  }
  const std::string bytes = ReadFileBytes(original.File(kFirstSegment));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(syncs.size(), 2u);
  ASSERT_EQ(syncs.back().second, bytes.size());

  TempDir work;
  const std::string segment = work.File(kFirstSegment);
  const size_t step = std::max<size_t>(1, syncs.size() / 12);
  for (size_t i = 0; i + 1 < syncs.size(); i += step) {
    const auto [acknowledged, synced_size] = syncs[i];
    const uint64_t next_size = syncs[i + 1].second;  // End of the write in flight.
    const std::string context = "crash after the sync of " + std::to_string(acknowledged);

    // The write in flight never reached the disk.
    WriteFileBytes(segment, bytes.substr(0, synced_size));
    ExpectRecoversTo(work.path(), acknowledged, context + ", next write lost");

    // Part of it did: complete records of it may survive, the partial one is cut.
    const size_t partial = synced_size + (next_size - synced_size) / 2 + 3;
    WriteFileBytes(segment, bytes.substr(0, std::min<size_t>(partial, next_size)));
    {
      absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(work.path());
      ASSERT_TRUE(journal.ok()) << journal.status();
      EXPECT_GE((*journal)->recovery().last_sequence, acknowledged) << context;
      EXPECT_LT((*journal)->recovery().last_sequence, syncs[i + 1].first) << context;
    }
    absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(work.path());
    ASSERT_TRUE(records.ok()) << records.status();
    ExpectRecordsFor(*records, 1);

    // The file grew but the blocks were never written: zeros.
    std::string zeroed = bytes.substr(0, next_size);
    std::fill(zeroed.begin() + static_cast<std::ptrdiff_t>(synced_size), zeroed.end(), '\0');
    WriteFileBytes(segment, zeroed);
    ExpectRecoversTo(work.path(), acknowledged, context + ", next write zeroed");

    // Only its first bytes are zeros; later pages of the same write made it to disk.
    if (next_size - synced_size > 64) {
      std::string holed = bytes.substr(0, next_size);
      std::fill(holed.begin() + static_cast<std::ptrdiff_t>(synced_size),
                holed.begin() + static_cast<std::ptrdiff_t>(synced_size + 40), '\0');
      WriteFileBytes(segment, holed);
      ExpectRecoversTo(work.path(), acknowledged, context + ", hole at the start of the write");
    }
  }
}

TEST(RecoveryTest, SequenceGapInTheNewestSegmentIsRefused) {
  TempDir dir;
  std::string bytes = EncodeSegmentHeader(1);
  for (uint64_t sequence : {1, 2, 4}) {
    const std::string payload = PayloadFor(sequence);
    EncodeRecord(RecordFor(sequence, payload), 0, &bytes);
  }
  WriteFileBytes(dir.File(kFirstSegment), bytes);
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(dir.path());
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(journal.status().message().find("expected 3, found 4"), std::string::npos)
      << journal.status();
  EXPECT_EQ(ReadAll(dir.path()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(RecoveryTest, SequenceGapBetweenSegmentsIsRefusedByTheReader) {
  TempDir dir;
  std::string first = EncodeSegmentHeader(1);
  for (uint64_t sequence = 1; sequence <= 3; ++sequence) {
    const std::string payload = PayloadFor(sequence);
    EncodeRecord(RecordFor(sequence, payload), 0, &first);
  }
  std::string second = EncodeSegmentHeader(5);
  for (uint64_t sequence = 5; sequence <= 6; ++sequence) {
    const std::string payload = PayloadFor(sequence);
    EncodeRecord(RecordFor(sequence, payload), 0, &second);
  }
  WriteFileBytes(dir.File(SegmentFileName(1)), first);
  WriteFileBytes(dir.File(SegmentFileName(5)), second);
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(records.status().message().find("previous segment ended at 3"), std::string::npos)
      << records.status();
}

TEST(RecoveryTest, DamageInASealedSegmentIsRefusedByTheReader) {
  TempDir dir;
  FileJournalOptions options;
  options.dir = dir.path();
  options.segment_bytes = 512;
  {
    absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(options);
    ASSERT_TRUE(journal.ok()) << journal.status();
    for (int i = 0; i < 40; ++i) {
      const uint64_t sequence = (*journal)->next_sequence();
      const std::string payload = PayloadFor(sequence);
      ASSERT_TRUE((*journal)->Append(RecordFor(sequence, payload)).ok());
      ASSERT_TRUE((*journal)->WaitDurable(sequence).ok());
    }
    ASSERT_GT((*journal)->segments().size(), 2u);
  }
  const std::string sealed = dir.File(kFirstSegment);
  testing::TruncateFileTo(sealed, FileSize(sealed) - 1);
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(records.status().message().find(sealed), std::string::npos) << records.status();
}

// A crash while a new segment's header was being written leaves a short file; it holds no
// record (records follow only a synced header), so recovery recreates it.
TEST(RecoveryTest, TornSegmentCreationIsRecreated) {
  TempDir dir;
  WriteJournal(dir.path(), 5, false);
  const std::string torn = dir.File(SegmentFileName(6));
  WriteFileBytes(torn, EncodeSegmentHeader(6).substr(0, 11));
  {
    absl::StatusOr<std::unique_ptr<FileJournal>> journal = Reopen(dir.path());
    ASSERT_TRUE(journal.ok()) << journal.status();
    EXPECT_TRUE((*journal)->recovery().recreated_torn_header);
    EXPECT_EQ((*journal)->next_sequence(), 6u);
    for (uint64_t sequence = 6; sequence <= 8; ++sequence) {
      const std::string payload = PayloadFor(sequence);
      ASSERT_TRUE((*journal)->Append(RecordFor(sequence, payload)).ok());
    }
    ASSERT_TRUE((*journal)->Close().ok());
  }
  EXPECT_GT(FileSize(torn), kSegmentHeaderBytes);
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 8u);
  ExpectRecordsFor(*records, 1);
}

TEST(RecoveryTest, UnrelatedFilesInTheDirectoryAreIgnored) {
  TempDir dir;
  WriteJournal(dir.path(), 4, false);
  WriteFileBytes(dir.File("notes.txt"), "hello");
  WriteFileBytes(dir.File("journal-1.log"), "not a segment name");
  ExpectRecoversTo(dir.path(), 4, "with unrelated files");
}

}  // namespace
}  // namespace ocx::journal
