#include "src/journal/record_format.h"

#include <string>

#include "gtest/gtest.h"
#include "src/journal/crc32c.h"

namespace ocx::journal {
namespace {

TEST(RecordFormatTest, RecordBytesFollowTheDocumentedLayout) {
  RecordView record;
  record.sequence = 0x0102030405060708;
  record.timestamp = -2;
  record.payload_version = 0x0A0B;
  record.payload = "xyz";
  std::string bytes;
  EncodeRecord(record, 5, &bytes);
  ASSERT_EQ(bytes.size(), 35u);
  const std::string expected_header(
      "\x03\x00\x00\x00"                  // payload length 3
      "\x00\x00\x00\x00"                  // CRC, checked below
      "\x08\x07\x06\x05\x04\x03\x02\x01"  // sequence
      "\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF"  // timestamp -2
      "\x0B\x0A"                          // payload version
      "\x00\x00"                          // flags
      "\x05\x00\x00\x00",                 // batch index 5
      32);
  EXPECT_EQ(bytes.substr(0, 4), expected_header.substr(0, 4));
  EXPECT_EQ(bytes.substr(8, 24), expected_header.substr(8, 24));
  EXPECT_EQ(bytes.substr(32), "xyz");
  const uint32_t crc = Crc32c(bytes.data() + 8, bytes.size() - 8);
  EXPECT_EQ(bytes.substr(4, 4), std::string(reinterpret_cast<const char*>(&crc), 4));
}

// The example in docs/formats/journal.md, byte for byte.
TEST(RecordFormatTest, DocumentedExampleRecordIsExact) {
  RecordView record;
  record.sequence = 1;
  record.timestamp = 1000;
  record.payload_version = 1;
  record.payload = "hi";
  std::string bytes;
  EncodeRecord(record, 0, &bytes);
  const std::string expected(
      "\x02\x00\x00\x00\x80\x8A\x4B\x38"
      "\x01\x00\x00\x00\x00\x00\x00\x00\xE8\x03\x00\x00\x00\x00\x00\x00"
      "\x01\x00\x00\x00\x00\x00\x00\x00hi",
      34);
  EXPECT_EQ(bytes, expected);
}

TEST(RecordFormatTest, DecodeReturnsWhatWasEncoded) {
  RecordView record;
  record.sequence = 42;
  record.timestamp = 1'700'000'000'000'000;
  record.payload_version = 3;
  record.payload = "payload bytes";
  std::string bytes;
  EncodeRecord(record, 0, &bytes);
  bytes += "trailing bytes of the next record";
  DecodedRecord decoded;
  ASSERT_EQ(DecodeRecord(bytes, &decoded), DecodeStatus::kOk);
  EXPECT_EQ(decoded.record.sequence, 42u);
  EXPECT_EQ(decoded.record.timestamp, 1'700'000'000'000'000);
  EXPECT_EQ(decoded.record.payload_version, 3);
  EXPECT_EQ(decoded.record.payload, "payload bytes");
  EXPECT_EQ(decoded.batch_index, 0u);
  EXPECT_EQ(decoded.flags, 0);
  EXPECT_EQ(decoded.size, 32u + 13u);
}

TEST(RecordFormatTest, EmptyPayloadRoundTrips) {
  RecordView record;
  record.sequence = 1;
  std::string bytes;
  EncodeRecord(record, 0, &bytes);
  DecodedRecord decoded;
  ASSERT_EQ(DecodeRecord(bytes, &decoded), DecodeStatus::kOk);
  EXPECT_TRUE(decoded.record.payload.empty());
  EXPECT_EQ(decoded.size, kRecordHeaderBytes);
}

TEST(RecordFormatTest, DecodeReportsEachKindOfDamage) {
  RecordView record;
  record.sequence = 9;
  record.payload = "0123456789";
  std::string bytes;
  EncodeRecord(record, 0, &bytes);
  DecodedRecord decoded;
  EXPECT_EQ(DecodeRecord(std::string_view(bytes).substr(0, 31), &decoded),
            DecodeStatus::kShortHeader);
  EXPECT_EQ(DecodeRecord(std::string_view(bytes).substr(0, bytes.size() - 1), &decoded),
            DecodeStatus::kPastEnd);
  std::string flipped = bytes;
  flipped[40] ^= 0x10;
  EXPECT_EQ(DecodeRecord(flipped, &decoded), DecodeStatus::kBadChecksum);
  std::string huge = bytes;
  huge[3] = 0x7F;  // Length far above kMaxPayloadBytes.
  EXPECT_EQ(DecodeRecord(huge, &decoded), DecodeStatus::kBadLength);
}

TEST(RecordFormatTest, SegmentHeaderFollowsTheDocumentedLayout) {
  const std::string header = EncodeSegmentHeader(77);
  ASSERT_EQ(header.size(), kSegmentHeaderBytes);
  EXPECT_EQ(header.substr(0, 8), "OCXJRNL\n");
  EXPECT_EQ(header.substr(8, 2), std::string("\x01\x00", 2));
  EXPECT_EQ(header.substr(10, 2), std::string("\x20\x00", 2));
  EXPECT_EQ(header.substr(12, 4), std::string(4, '\0'));
  EXPECT_EQ(header.substr(16, 8), std::string("\x4D\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(header.substr(24, 4), std::string(4, '\0'));
  const uint32_t crc = Crc32c(header.data(), 28);
  EXPECT_EQ(header.substr(28, 4), std::string(reinterpret_cast<const char*>(&crc), 4));
}

TEST(RecordFormatTest, SegmentFileNamesSortAndParse) {
  EXPECT_EQ(SegmentFileName(1), "journal-00000000000000000001.log");
  EXPECT_EQ(SegmentFileName(UINT64_MAX), "journal-18446744073709551615.log");
  EXPECT_EQ(ParseSegmentFileName("journal-00000000000000000001.log"), 1u);
  EXPECT_EQ(ParseSegmentFileName(SegmentFileName(UINT64_MAX)), UINT64_MAX);
  EXPECT_LT(SegmentFileName(9), SegmentFileName(10));
}

TEST(RecordFormatTest, OtherFileNamesAreNotSegments) {
  EXPECT_FALSE(ParseSegmentFileName("journal-1.log").has_value());
  EXPECT_FALSE(ParseSegmentFileName("journal-0000000000000000000x.log").has_value());
  EXPECT_FALSE(ParseSegmentFileName("journal-00000000000000000001.log.tmp").has_value());
  EXPECT_FALSE(ParseSegmentFileName("snapshot-00000000000000000001.snap").has_value());
  EXPECT_FALSE(ParseSegmentFileName("journal-99999999999999999999.log").has_value());
}

}  // namespace
}  // namespace ocx::journal
