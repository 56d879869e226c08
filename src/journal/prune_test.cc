#include "src/journal/prune.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/journal/file_io.h"
#include "src/journal/file_journal.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/record_format.h"
#include "src/journal/snapshot.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::PayloadFor;
using testing::RecordFor;
using testing::TempDir;

std::vector<uint64_t> SegmentFirsts(const std::string& dir) {
  std::vector<uint64_t> firsts;
  auto names = internal::ListDirectory(dir);
  EXPECT_TRUE(names.ok());
  for (const std::string& name : *names) {
    if (auto first = ParseSegmentFileName(name)) firsts.push_back(*first);
  }
  std::sort(firsts.begin(), firsts.end());
  return firsts;
}

// A journal of `count` records in many small segments.
void WriteJournal(const std::string& dir, int count) {
  FileJournalOptions options;
  options.dir = dir;
  options.segment_bytes = kMinSegmentBytes;
  auto journal = FileJournal::Open(options);
  ASSERT_TRUE(journal.ok()) << journal.status();
  for (int i = 0; i < count; ++i) {
    const uint64_t sequence = (*journal)->next_sequence();
    const std::string payload = PayloadFor(sequence);
    ASSERT_TRUE((*journal)->Append(RecordFor(sequence, payload)).ok());
    ASSERT_TRUE((*journal)->WaitDurable(sequence).ok());  // One record per batch: many rolls.
  }
  ASSERT_TRUE((*journal)->Close().ok());
}

TEST(PruneTest, SegmentsEntirelyBeforeTheSequenceGoAndTheRestStillReadsAndAppends) {
  TempDir dir;
  WriteJournal(dir.path(), 60);
  const std::vector<uint64_t> before = SegmentFirsts(dir.path());
  ASSERT_GT(before.size(), 5u);
  const uint64_t keep_from = 30;
  const auto report = PruneSegments(dir.path(), keep_from);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<uint64_t> after = SegmentFirsts(dir.path());
  EXPECT_EQ(report->files_deleted, before.size() - after.size());
  EXPECT_GT(report->files_deleted, 0u);
  // Record 30 is still there; the segment holding it is the first one kept.
  ASSERT_FALSE(after.empty());
  EXPECT_LE(after.front(), keep_from);
  auto first = FirstJournalSequence(dir.path());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, after.front());
  auto reader = FileJournalReader::Open(dir.path(), keep_from);
  ASSERT_TRUE(reader.ok()) << reader.status();
  RecordView record;
  uint64_t expected = keep_from;
  for (;;) {
    auto more = (*reader)->Next(&record);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    EXPECT_EQ(record.sequence, expected++);
  }
  EXPECT_EQ(expected, 61u);
  // The journal opens on what is left and goes on.
  FileJournalOptions options;
  options.dir = dir.path();
  options.first_sequence = 61;
  auto journal = FileJournal::Open(options);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ((*journal)->next_sequence(), 61u);
  EXPECT_TRUE((*journal)->Close().ok());
}

TEST(PruneTest, TheNewestSegmentIsNeverDeleted) {
  TempDir dir;
  WriteJournal(dir.path(), 20);
  const auto report = PruneSegments(dir.path(), 1'000'000);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(SegmentFirsts(dir.path()).size(), 1u);
}

TEST(PruneTest, SnapshotsButTheNewestAreDeletedWithLeftoverTemporaries) {
  TempDir dir;
  for (uint64_t sequence : {10, 20, 30, 40}) {
    ASSERT_TRUE(WriteSnapshot(dir.path(), sequence, 1, "body " + std::to_string(sequence)).ok());
  }
  ASSERT_TRUE(internal::WriteFully(
                  internal::OpenFile(dir.path() + "/" + SnapshotFileName(50) + ".tmp",
                                     O_WRONLY | O_CREAT)
                      ->get(),
                  "half", "tmp")
                  .ok());
  PruneReport report;
  // The newest two, and the newest at or below 25 (where a store that is behind would start).
  const auto kept = PruneSnapshots(dir.path(), 2, 25, &report);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, (std::vector<uint64_t>{20, 30, 40}));
  EXPECT_EQ(report.files_deleted, 2u);  // 10 and the temporary file.
  const auto latest = FindLatestSnapshot(dir.path());
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->snapshot.has_value());
  EXPECT_EQ(latest->snapshot->sequence, 40u);
}

}  // namespace
}  // namespace ocx::journal
