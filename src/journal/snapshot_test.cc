#include "src/journal/snapshot.h"

#include <string>

#include "gtest/gtest.h"
#include "src/journal/crc32c.h"
#include "src/journal/record_format.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::FileSize;
using testing::FlipBit;
using testing::ReadFileBytes;
using testing::TempDir;
using testing::WriteFileBytes;

std::string BodyFor(uint64_t sequence) {
  std::string body(1000 + sequence % 100, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * sequence + 3);
  return body;
}

TEST(SnapshotTest, WrittenSnapshotReadsBackIdentically) {
  TempDir dir;
  absl::StatusOr<std::string> path = WriteSnapshot(dir.path(), 1234, 7, BodyFor(1234));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir.File("snapshot-00000000000000001234.snap"));
  EXPECT_EQ(FileSize(*path), kSnapshotHeaderBytes + BodyFor(1234).size());
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(*path);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->sequence, 1234u);
  EXPECT_EQ(snapshot->body_version, 7);
  EXPECT_EQ(snapshot->body, BodyFor(1234));
  // No temporary file is left behind.
  EXPECT_EQ(FileSize(*path + ".tmp"), 0u);
}

TEST(SnapshotTest, EmptyBodyRoundTrips) {
  TempDir dir;
  absl::StatusOr<std::string> path = WriteSnapshot(dir.path(), 0, 1, "");
  ASSERT_TRUE(path.ok()) << path.status();
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(*path);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_TRUE(snapshot->body.empty());
}

TEST(SnapshotTest, HeaderFollowsTheDocumentedLayout) {
  const std::string bytes = EncodeSnapshot(0x0102030405060708, 0x0A0B, "body");
  ASSERT_EQ(bytes.size(), kSnapshotHeaderBytes + 4);
  EXPECT_EQ(bytes.substr(0, 8), "OCXSNAP\n");
  EXPECT_EQ(bytes.substr(8, 2), std::string("\x01\x00", 2));
  EXPECT_EQ(bytes.substr(10, 2), std::string("\x28\x00", 2));
  EXPECT_EQ(bytes.substr(12, 2), std::string("\x0B\x0A", 2));
  EXPECT_EQ(bytes.substr(14, 2), std::string("\x00\x00", 2));
  EXPECT_EQ(bytes.substr(16, 8), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  EXPECT_EQ(bytes.substr(24, 8), std::string("\x04\0\0\0\0\0\0\0", 8));
  const uint32_t body_crc = Crc32c("body");
  EXPECT_EQ(bytes.substr(32, 4), std::string(reinterpret_cast<const char*>(&body_crc), 4));
  const uint32_t header_crc = Crc32c(bytes.data(), 36);
  EXPECT_EQ(bytes.substr(36, 4), std::string(reinterpret_cast<const char*>(&header_crc), 4));
  EXPECT_EQ(bytes.substr(40), "body");
}

TEST(SnapshotTest, EveryFlippedBitIsRejected) {
  TempDir dir;
  absl::StatusOr<std::string> path = WriteSnapshot(dir.path(), 5, 1, "a small state body");
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string original = ReadFileBytes(*path);
  for (size_t byte = 0; byte < original.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = original;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      WriteFileBytes(*path, damaged);
      absl::StatusOr<Snapshot> snapshot = ReadSnapshot(*path);
      ASSERT_FALSE(snapshot.ok()) << "flip " << byte << ":" << bit << " accepted";
      EXPECT_NE(snapshot.status().message().find(*path), std::string::npos);
    }
  }
}

TEST(SnapshotTest, TruncatedOrExtendedSnapshotIsRejected) {
  TempDir dir;
  absl::StatusOr<std::string> path = WriteSnapshot(dir.path(), 5, 1, BodyFor(5));
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string original = ReadFileBytes(*path);
  for (size_t size : {size_t{0}, size_t{10}, kSnapshotHeaderBytes, original.size() - 1}) {
    WriteFileBytes(*path, original.substr(0, size));
    absl::StatusOr<Snapshot> snapshot = ReadSnapshot(*path);
    EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kDataLoss) << size;
  }
  WriteFileBytes(*path, original + "x");
  EXPECT_EQ(ReadSnapshot(*path).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SnapshotTest, SnapshotRenamedToAnotherSequenceIsRejected) {
  TempDir dir;
  absl::StatusOr<std::string> path = WriteSnapshot(dir.path(), 5, 1, "body");
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string renamed = dir.File(SnapshotFileName(6));
  ASSERT_EQ(std::rename(path->c_str(), renamed.c_str()), 0);
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(renamed);
  ASSERT_FALSE(snapshot.ok());
  EXPECT_NE(snapshot.status().message().find("does not match the file name"), std::string::npos);
}

TEST(SnapshotTest, LatestValidSnapshotIsChosen) {
  TempDir dir;
  for (uint64_t sequence : {100, 300, 200}) {
    ASSERT_TRUE(WriteSnapshot(dir.path(), sequence, 1, BodyFor(sequence)).ok());
  }
  absl::StatusOr<LatestSnapshot> latest = FindLatestSnapshot(dir.path());
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_TRUE(latest->snapshot.has_value());
  EXPECT_EQ(latest->snapshot->sequence, 300u);
  EXPECT_EQ(latest->snapshot->body, BodyFor(300));
  EXPECT_TRUE(latest->rejected.empty());

  // The newest one rots: the one before it is chosen, and the rejection is reported.
  FlipBit(dir.File(SnapshotFileName(300)), kSnapshotHeaderBytes + 17, 2);
  latest = FindLatestSnapshot(dir.path());
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_TRUE(latest->snapshot.has_value());
  EXPECT_EQ(latest->snapshot->sequence, 200u);
  EXPECT_EQ(latest->path, dir.File(SnapshotFileName(200)));
  ASSERT_EQ(latest->rejected.size(), 1u);
  EXPECT_NE(latest->rejected[0].find("body CRC32C mismatch"), std::string::npos)
      << latest->rejected[0];
}

TEST(SnapshotTest, LeftoverTemporaryFilesAreIgnored) {
  TempDir dir;
  ASSERT_TRUE(WriteSnapshot(dir.path(), 10, 1, BodyFor(10)).ok());
  // A crash between writing the temporary file and the rename leaves this behind.
  WriteFileBytes(dir.File(SnapshotFileName(20) + ".tmp"), "half a snapsh");
  absl::StatusOr<LatestSnapshot> latest = FindLatestSnapshot(dir.path());
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_TRUE(latest->snapshot.has_value());
  EXPECT_EQ(latest->snapshot->sequence, 10u);
  EXPECT_TRUE(latest->rejected.empty());
}

TEST(SnapshotTest, NoSnapshotInAnEmptyOrMissingDirectory) {
  TempDir dir;
  absl::StatusOr<LatestSnapshot> latest = FindLatestSnapshot(dir.path());
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_FALSE(latest->snapshot.has_value());
  latest = FindLatestSnapshot(dir.File("missing"));
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_FALSE(latest->snapshot.has_value());
}

TEST(SnapshotTest, RewritingTheSameSequenceReplacesIt) {
  TempDir dir;
  ASSERT_TRUE(WriteSnapshot(dir.path(), 10, 1, "first").ok());
  ASSERT_TRUE(WriteSnapshot(dir.path(), 10, 2, "second").ok());
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(dir.File(SnapshotFileName(10)));
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->body, "second");
  EXPECT_EQ(snapshot->body_version, 2);
}

}  // namespace
}  // namespace ocx::journal
