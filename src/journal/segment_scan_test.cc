// The torn-tail-or-corruption rule (segment_scan.h, docs/formats/journal.md) on segments
// built byte by byte, so that each case is exact: which write each record belongs to, and
// which bytes are damaged.
#include "src/journal/segment_scan.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/journal/crc32c.h"
#include "src/journal/record_format.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::PayloadFor;
using testing::RecordFor;

constexpr std::string_view kPath = "/dir/journal-00000000000000000001.log";

// Segment bytes made of writes (group-commit batches) of records with consecutive sequences.
class SegmentBuilder {
 public:
  explicit SegmentBuilder(uint64_t first_sequence = 1)
      : bytes_(EncodeSegmentHeader(first_sequence)), next_(first_sequence) {}

  // Appends one write of `count` records; returns the byte offset where it begins.
  size_t Write(int count) {
    const size_t start = bytes_.size();
    for (int i = 0; i < count; ++i) {
      offsets_.push_back(bytes_.size());
      const std::string payload = PayloadFor(next_);
      EncodeRecord(RecordFor(next_, payload), static_cast<uint32_t>(i), &bytes_);
      ++next_;
    }
    return start;
  }
  // Appends one record exactly as given.
  void Raw(const RecordView& record, uint32_t batch_index) {
    offsets_.push_back(bytes_.size());
    EncodeRecord(record, batch_index, &bytes_);
  }

  std::string& bytes() { return bytes_; }
  size_t OffsetOf(size_t record_index) const { return offsets_[record_index]; }

 private:
  std::string bytes_;
  uint64_t next_;
  std::vector<size_t> offsets_;
};

absl::StatusOr<SegmentScan> ScanNewest(const std::string& bytes, uint64_t first = 1) {
  return ScanSegment(kPath, bytes, first, SegmentRole::kNewest);
}

TEST(SegmentScanTest, CleanSegmentIsReadToTheEnd) {
  SegmentBuilder segment;
  segment.Write(4);
  segment.Write(1);
  segment.Write(7);
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->records, 12u);
  EXPECT_EQ(scan->last_sequence, 12u);
  EXPECT_EQ(scan->valid_bytes, segment.bytes().size());
  EXPECT_FALSE(scan->torn.has_value());
  EXPECT_FALSE(scan->header_torn);
}

TEST(SegmentScanTest, HeaderOnlySegmentHoldsNoRecords) {
  SegmentBuilder segment(500);
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes(), 500);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->records, 0u);
  EXPECT_EQ(scan->last_sequence, 499u);
  EXPECT_EQ(scan->valid_bytes, kSegmentHeaderBytes);
}

TEST(SegmentScanTest, PartialLastRecordIsATornTail) {
  SegmentBuilder segment;
  segment.Write(3);
  segment.Write(2);
  const size_t last = segment.OffsetOf(4);
  segment.bytes().resize(last + 20);
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->torn.has_value());
  EXPECT_EQ(scan->torn->offset, last);
  EXPECT_EQ(scan->torn->bytes, 20u);
  EXPECT_EQ(scan->torn->first_sequence, 5u);
  EXPECT_EQ(scan->last_sequence, 4u);
  EXPECT_EQ(scan->valid_bytes, last);
}

// Blocks allocated but never written read back as zeros after a crash.
TEST(SegmentScanTest, ZeroedLastWriteIsATornTail) {
  SegmentBuilder segment;
  segment.Write(2);
  const size_t start = segment.Write(6);
  std::fill(segment.bytes().begin() + static_cast<std::ptrdiff_t>(start), segment.bytes().end(),
            '\0');
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->torn.has_value());
  EXPECT_EQ(scan->torn->offset, start);
  EXPECT_EQ(scan->torn->intact_records, 0u);
  EXPECT_EQ(scan->last_sequence, 2u);
}

// The page cache may write the pages of one write() in any order: a hole followed by intact
// records of the same write is still a torn write, because none of it was synced.
TEST(SegmentScanTest, DamageFollowedOnlyByItsOwnWriteIsATornTail) {
  SegmentBuilder segment;
  segment.Write(3);
  segment.Write(5);                            // Records 4..8, one write.
  const size_t damaged = segment.OffsetOf(4);  // Record 5.
  segment.bytes()[damaged + 12] ^= 0x40;
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->torn.has_value());
  EXPECT_EQ(scan->torn->offset, damaged);
  EXPECT_EQ(scan->torn->first_sequence, 5u);
  EXPECT_EQ(scan->torn->intact_records, 3u);  // Records 6, 7, 8, dropped with it.
  EXPECT_EQ(scan->last_sequence, 4u);
}

TEST(SegmentScanTest, DamageFollowedByALaterWriteIsCorruption) {
  SegmentBuilder segment;
  segment.Write(3);
  segment.Write(1);  // Record 4: a later write, so record 3 was synced before it.
  const size_t damaged = segment.OffsetOf(2);
  segment.bytes()[damaged + 40] ^= 0x01;
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  const std::string message(scan.status().message());
  EXPECT_NE(message.find(kPath), std::string::npos) << message;
  EXPECT_NE(message.find("byte offset " + std::to_string(damaged)), std::string::npos) << message;
  EXPECT_NE(message.find("sequence 3"), std::string::npos) << message;
  EXPECT_NE(message.find("not a torn tail"), std::string::npos) << message;
}

TEST(SegmentScanTest, DamagedLengthFieldBeforeALaterWriteIsCorruption) {
  SegmentBuilder segment;
  segment.Write(2);
  segment.Write(2);
  segment.bytes()[segment.OffsetOf(1) + 2] = 0x7F;  // Record 2 claims an impossible length.
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss) << scan.status();
}

TEST(SegmentScanTest, DamageInASealedSegmentIsCorruption) {
  SegmentBuilder segment;
  segment.Write(3);
  segment.bytes().resize(segment.bytes().size() - 1);
  absl::StatusOr<SegmentScan> scan = ScanSegment(kPath, segment.bytes(), 1, SegmentRole::kSealed);
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(scan.status().message().find("sealed segment"), std::string::npos) << scan.status();
}

TEST(SegmentScanTest, DamagedTailLongerThanOneWriteIsCorruption) {
  SegmentBuilder segment;
  segment.Write(2);
  segment.bytes().append(kMaxUnsyncedBytes + 1, '\0');
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(scan.status().message().find("longer than the largest unsynced write"),
            std::string::npos)
      << scan.status();
}

TEST(SegmentScanTest, SequenceGapBetweenIntactRecordsIsCorruption) {
  SegmentBuilder segment;
  const std::string payload = "p";
  segment.Raw(RecordFor(1, payload), 0);
  segment.Raw(RecordFor(2, payload), 0);
  segment.Raw(RecordFor(4, payload), 0);
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(scan.status().message().find("expected 3, found 4"), std::string::npos)
      << scan.status();
}

TEST(SegmentScanTest, RepeatedSequenceIsCorruption) {
  SegmentBuilder segment;
  const std::string payload = "p";
  segment.Raw(RecordFor(1, payload), 0);
  segment.Raw(RecordFor(1, payload), 0);
  EXPECT_EQ(ScanNewest(segment.bytes()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SegmentScanTest, FirstRecordNotStartingAWriteIsCorruption) {
  SegmentBuilder segment;
  const std::string payload = "p";
  segment.Raw(RecordFor(1, payload), 1);
  EXPECT_EQ(ScanNewest(segment.bytes()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SegmentScanTest, SkippedBatchIndexIsCorruption) {
  SegmentBuilder segment;
  const std::string payload = "p";
  segment.Raw(RecordFor(1, payload), 0);
  segment.Raw(RecordFor(2, payload), 2);
  EXPECT_EQ(ScanNewest(segment.bytes()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SegmentScanTest, UnknownFlagsAreCorruption) {
  SegmentBuilder segment;
  segment.Write(1);
  std::string& bytes = segment.bytes();
  const size_t record = segment.OffsetOf(0);
  bytes[record + 26] = 1;
  const uint32_t crc = Crc32c(bytes.data() + record + 8, bytes.size() - record - 8);
  internal::PutU32(bytes.data() + record + 4, crc);
  absl::StatusOr<SegmentScan> scan = ScanNewest(bytes);
  ASSERT_FALSE(scan.ok());
  EXPECT_NE(scan.status().message().find("unknown flags"), std::string::npos) << scan.status();
}

TEST(SegmentScanTest, HeaderDisagreeingWithTheFileNameIsCorruption) {
  SegmentBuilder segment(7);
  segment.Write(1);
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes(), 8);
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(scan.status().message().find("does not match the file name"), std::string::npos);
}

TEST(SegmentScanTest, NewerFormatVersionIsRefusedAsUnsupported) {
  SegmentBuilder segment;
  segment.Write(1);
  std::string& bytes = segment.bytes();
  internal::PutU16(bytes.data() + 8, 2);
  internal::PutU32(bytes.data() + 28, Crc32c(bytes.data(), 28));
  absl::StatusOr<SegmentScan> scan = ScanNewest(bytes);
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(scan.status().message().find("version 2"), std::string::npos);
}

TEST(SegmentScanTest, IncompleteHeaderOfTheNewestSegmentIsATornCreation) {
  const std::string header = EncodeSegmentHeader(1);
  for (size_t size : {size_t{0}, size_t{5}, size_t{31}}) {
    absl::StatusOr<SegmentScan> scan = ScanNewest(header.substr(0, size));
    ASSERT_TRUE(scan.ok()) << size << ": " << scan.status();
    EXPECT_TRUE(scan->header_torn) << size;
  }
  absl::StatusOr<SegmentScan> zeros = ScanNewest(std::string(kSegmentHeaderBytes, '\0'));
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  EXPECT_TRUE(zeros->header_torn);
}

TEST(SegmentScanTest, IncompleteHeaderOfASealedSegmentIsCorruption) {
  absl::StatusOr<SegmentScan> scan =
      ScanSegment(kPath, EncodeSegmentHeader(1).substr(0, 10), 1, SegmentRole::kSealed);
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
}

// Records are written only after the header is synced: a bad header with records after it
// is not a crash artefact.
TEST(SegmentScanTest, DamagedHeaderWithRecordsAfterItIsCorruption) {
  SegmentBuilder segment;
  segment.Write(2);
  segment.bytes()[20] ^= 0x04;
  absl::StatusOr<SegmentScan> scan = ScanNewest(segment.bytes());
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(scan.status().message().find("header"), std::string::npos) << scan.status();
}

}  // namespace
}  // namespace ocx::journal
