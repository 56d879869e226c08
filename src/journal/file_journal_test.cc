#include "src/journal/file_journal.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <thread>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::ExpectRecordsFor;
using testing::OwnedRecord;
using testing::PayloadFor;
using testing::ReadAll;
using testing::RecordFor;
using testing::TempDir;

std::unique_ptr<FileJournal> OpenOrDie(FileJournalOptions options) {
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(std::move(options));
  EXPECT_TRUE(journal.ok()) << journal.status();
  return journal.ok() ? std::move(*journal) : nullptr;
}

FileJournalOptions OptionsFor(const TempDir& dir) {
  FileJournalOptions options;
  options.dir = dir.path();
  return options;
}

// Appends `count` records after the journal's last one; waits for each to be durable when
// `one_per_batch`, which makes every record its own write.
void AppendRecords(Journal& journal, int count, bool one_per_batch) {
  for (int i = 0; i < count; ++i) {
    const uint64_t sequence = journal.next_sequence();
    const std::string payload = PayloadFor(sequence);
    ASSERT_TRUE(journal.Append(RecordFor(sequence, payload)).ok());
    if (one_per_batch) {
      ASSERT_TRUE(journal.WaitDurable(sequence).ok());
    }
  }
}

TEST(FileJournalTest, AppendedRecordsReadBackIdentically) {
  TempDir dir;
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(journal->next_sequence(), 1u);
  EXPECT_EQ(journal->durable_sequence(), 0u);
  AppendRecords(*journal, 500, /*one_per_batch=*/false);
  ASSERT_TRUE(journal->WaitDurable(500).ok());
  EXPECT_EQ(journal->durable_sequence(), 500u);
  ASSERT_TRUE(journal->Close().ok());

  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 500u);
  ExpectRecordsFor(*records, 1);
}

TEST(FileJournalTest, DurableCallbackReportsIncreasingWatermarksUpToTheLastRecord) {
  TempDir dir;
  std::mutex mu;
  std::vector<uint64_t> watermarks;  // Guarded by mu.
  FileJournalOptions options = OptionsFor(dir);
  options.on_durable = [&](uint64_t durable) {
    std::lock_guard<std::mutex> lock(mu);
    watermarks.push_back(durable);
  };
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 2000, /*one_per_batch=*/false);
  ASSERT_TRUE(journal->Close().ok());
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(watermarks.empty());
  for (size_t i = 1; i < watermarks.size(); ++i) EXPECT_LT(watermarks[i - 1], watermarks[i]);
  EXPECT_EQ(watermarks.back(), 2000u);
  EXPECT_EQ(journal->batches_written(), watermarks.size());
}

TEST(FileJournalTest, CloseMakesEverythingAppendedDurable) {
  TempDir dir;
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 100, /*one_per_batch=*/false);
  ASSERT_TRUE(journal->Close().ok());
  EXPECT_EQ(journal->durable_sequence(), 100u);
  EXPECT_TRUE(journal->Close().ok());  // Idempotent.
}

TEST(FileJournalTest, ReopeningContinuesTheSequence) {
  TempDir dir;
  {
    std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
    ASSERT_NE(journal, nullptr);
    AppendRecords(*journal, 10, false);
  }
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  EXPECT_TRUE(journal->recovery().clean()) << journal->recovery().ToString();
  EXPECT_EQ(journal->recovery().last_sequence, 10u);
  EXPECT_EQ(journal->next_sequence(), 11u);
  EXPECT_EQ(journal->durable_sequence(), 10u);
  AppendRecords(*journal, 5, false);
  ASSERT_TRUE(journal->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 15u);
  ExpectRecordsFor(*records, 1);
}

TEST(FileJournalTest, EmptyJournalStartsAtTheConfiguredSequence) {
  TempDir dir;
  FileJournalOptions options = OptionsFor(dir);
  options.first_sequence = 1001;  // E.g. the journal after a snapshot at 1000.
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(journal->next_sequence(), 1001u);
  EXPECT_EQ(journal->durable_sequence(), 1000u);
  AppendRecords(*journal, 3, false);
  ASSERT_TRUE(journal->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  ExpectRecordsFor(*records, 1001);
}

TEST(FileJournalTest, SegmentsRollAndAreReadAcross) {
  TempDir dir;
  FileJournalOptions options = OptionsFor(dir);
  options.segment_bytes = 1024;
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 200, /*one_per_batch=*/true);
  ASSERT_TRUE(journal->Close().ok());
  const std::vector<uint64_t> segments = journal->segments();
  ASSERT_GT(segments.size(), 5u);
  EXPECT_EQ(segments.front(), 1u);
  for (uint64_t first : segments) {
    EXPECT_GT(testing::FileSize(dir.File(SegmentFileName(first))), 0u) << first;
  }

  absl::StatusOr<std::vector<OwnedRecord>> all = ReadAll(dir.path());
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 200u);
  ExpectRecordsFor(*all, 1);

  // From a sequence in the middle of a segment, and from the first of one.
  for (uint64_t from : {uint64_t{77}, segments[3], segments.back(), uint64_t{200}}) {
    absl::StatusOr<std::vector<OwnedRecord>> tail = ReadAll(dir.path(), from);
    ASSERT_TRUE(tail.ok()) << tail.status();
    ASSERT_EQ(tail->size(), 201 - from) << from;
    ExpectRecordsFor(*tail, from);
  }
  absl::StatusOr<std::vector<OwnedRecord>> none = ReadAll(dir.path(), 201);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(ReadAll(dir.path(), 202).status().code(), absl::StatusCode::kOutOfRange);

  // The reopened journal continues in the newest segment.
  std::unique_ptr<FileJournal> reopened = OpenOrDie(options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->next_sequence(), 201u);
  EXPECT_EQ(reopened->recovery().segments, segments.size());
}

TEST(FileJournalTest, DiscardThroughDeletesOnlySegmentsCoveredEntirely) {
  TempDir dir;
  FileJournalOptions options = OptionsFor(dir);
  options.segment_bytes = 1024;
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 200, /*one_per_batch=*/true);
  const std::vector<uint64_t> before = journal->segments();
  ASSERT_GT(before.size(), 4u);
  // A snapshot covering up to the middle of segment 3 frees segments 0..2.
  const uint64_t snapshot_sequence = before[3] + 1;
  ASSERT_TRUE(journal->DiscardThrough(snapshot_sequence).ok());
  const std::vector<uint64_t> after = journal->segments();
  ASSERT_EQ(after.size(), before.size() - 3);
  EXPECT_EQ(after.front(), before[3]);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(testing::FileSize(dir.File(SegmentFileName(before[i]))), 0u) << "still there";
  }
  // Replay from just after the snapshot still works; before what is left, it is refused.
  absl::StatusOr<std::vector<OwnedRecord>> tail = ReadAll(dir.path(), snapshot_sequence + 1);
  ASSERT_TRUE(tail.ok()) << tail.status();
  ExpectRecordsFor(*tail, snapshot_sequence + 1);
  EXPECT_EQ(ReadAll(dir.path(), 1).status().code(), absl::StatusCode::kOutOfRange);
  // The newest segment is never discarded, and the journal keeps going.
  ASSERT_TRUE(journal->DiscardThrough(1'000'000).ok());
  EXPECT_EQ(journal->segments().size(), 1u);
  AppendRecords(*journal, 3, false);
  ASSERT_TRUE(journal->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> rest = ReadAll(dir.path());
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_FALSE(rest->empty());
  EXPECT_EQ(rest->back().sequence, 203u);
}

TEST(FileJournalTest, OversizedPayloadIsRefused) {
  TempDir dir;
  FileJournalOptions options = OptionsFor(dir);
  options.batch_bytes_max = 4096;
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  const std::string big(4096, 'x');
  const absl::Status status = journal->Append(RecordFor(1, big));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(journal->next_sequence(), 1u);
  const std::string fits(4096 - kRecordHeaderBytes, 'x');
  EXPECT_TRUE(journal->Append(RecordFor(1, fits)).ok());
  EXPECT_TRUE(journal->Close().ok());
}

TEST(FileJournalTest, AppendAfterCloseFails) {
  TempDir dir;
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->Close().ok());
  EXPECT_EQ(journal->Append(RecordFor(1, "x")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FileJournalTest, InvalidOptionsAreRefused) {
  TempDir dir;
  FileJournalOptions options = OptionsFor(dir);
  options.segment_bytes = 10;
  EXPECT_EQ(FileJournal::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = OptionsFor(dir);
  options.batch_bytes_max = kMaxUnsyncedBytes + 1;
  EXPECT_EQ(FileJournal::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = OptionsFor(dir);
  options.first_sequence = 0;
  EXPECT_EQ(FileJournal::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileJournalDeathTest, AppendingTheWrongSequenceIsAProgrammerError) {
  TempDir dir;
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 2, false);
  // The sequence is checked before anything else, closed or not. Closing first joins the
  // writer thread, so the death test forks a single-threaded process (and the child, which
  // dies without running destructors, shares the parent's temporary directory).
  ASSERT_TRUE(journal->Close().ok());
  EXPECT_DEATH(journal->Append(RecordFor(5, "x")).IgnoreError(), "next_sequence");
  EXPECT_DEATH(journal->Append(RecordFor(2, "x")).IgnoreError(), "next_sequence");
}

// The process's file size limit makes a write fail part way (EFBIG), as a full disk would.
// Runs in a child process so that the limit does not touch the test runner. The child
// reports on a pipe the last sequence it saw acknowledged, then exits 0 only if the journal
// behaved: the failure is reported by every later call, and no later Append is accepted.
TEST(FileJournalTest, FailedWriteStopsTheJournalForGood) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{8192, 8192};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
    FileJournalOptions options;
    options.dir = dir.path();
    absl::StatusOr<std::unique_ptr<FileJournal>> opened = FileJournal::Open(options);
    if (!opened.ok()) ::_exit(11);
    FileJournal& journal = **opened;
    uint64_t acknowledged = 0;
    for (;;) {
      const uint64_t sequence = journal.next_sequence();
      const std::string payload = PayloadFor(sequence);
      if (!journal.Append(RecordFor(sequence, payload)).ok()) break;
      // Several records per write, so that the failing write is a partial batch.
      if (sequence % 4 != 0) continue;
      if (!journal.WaitDurable(sequence).ok()) break;
      acknowledged = sequence;
    }
    if (::write(fds[1], &acknowledged, sizeof(acknowledged)) != sizeof(acknowledged)) {
      ::_exit(12);
    }
    const absl::Status first = journal.status();
    if (first.ok() || first.message().find("durability lost") == std::string::npos) ::_exit(13);
    const uint64_t next = journal.next_sequence();
    const std::string payload = PayloadFor(next);
    for (int i = 0; i < 3; ++i) {
      if (journal.Append(RecordFor(next, payload)) != first) ::_exit(14);
    }
    if (journal.WaitDurable(next - 1) != first) ::_exit(15);
    if (journal.durable_sequence() < acknowledged) ::_exit(16);
    if (journal.Close() != first || journal.status() != first) ::_exit(17);
    ::_exit(0);
  }
  ::close(fds[1]);
  uint64_t acknowledged = 0;
  const ssize_t n = ::read(fds[0], &acknowledged, sizeof(acknowledged));
  ::close(fds[0]);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  ASSERT_TRUE(WIFEXITED(wait_status));
  ASSERT_EQ(WEXITSTATUS(wait_status), 0) << "see the _exit codes in the child";
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(acknowledged)));
  ASSERT_GT(acknowledged, 0u);

  // Without the limit, recovery keeps every acknowledged record and cuts the partial write.
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  EXPECT_GE(journal->recovery().last_sequence, acknowledged);
  AppendRecords(*journal, 2, true);
  ASSERT_TRUE(journal->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ExpectRecordsFor(*records, 1);
  EXPECT_GE(records->size(), acknowledged + 2);
}

// Lets a test hold the writer thread inside its durable callback.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;  // Guarded by mu_.
};

// The batch indexes of the records in a segment file, in order.
std::vector<uint32_t> BatchIndexes(const std::string& path) {
  const std::string bytes = testing::ReadFileBytes(path);
  std::vector<uint32_t> indexes;
  DecodedRecord decoded;
  for (size_t offset = kSegmentHeaderBytes;
       offset < bytes.size() &&
       DecodeRecord(std::string_view(bytes).substr(offset), &decoded) == DecodeStatus::kOk;
       offset += decoded.size) {
    indexes.push_back(decoded.batch_index);
  }
  return indexes;
}

// Group commit: while the writer is busy with one batch, the producer keeps appending, and
// everything it appended goes out in the next single write.
TEST(FileJournalTest, RecordsAppendedDuringABatchShareTheNextWrite) {
  TempDir dir;
  Gate gate;
  std::mutex mu;
  std::vector<uint64_t> watermarks;  // Guarded by mu.
  FileJournalOptions options = OptionsFor(dir);
  options.on_durable = [&](uint64_t durable) {
    {
      std::lock_guard<std::mutex> lock(mu);
      watermarks.push_back(durable);
    }
    if (durable == 1) gate.Wait();  // Hold the writer after the first batch.
  };
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 1, /*one_per_batch=*/true);
  AppendRecords(*journal, 100, /*one_per_batch=*/false);  // Appends do not wait for the disk.
  EXPECT_EQ(journal->durable_sequence(), 1u);
  gate.Open();
  ASSERT_TRUE(journal->WaitDurable(101).ok());
  ASSERT_TRUE(journal->Close().ok());
  EXPECT_EQ(journal->batches_written(), 2u);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(watermarks, (std::vector<uint64_t>{1, 101}));
  }
  const std::vector<uint32_t> indexes = BatchIndexes(dir.File(SegmentFileName(1)));
  ASSERT_EQ(indexes.size(), 101u);
  EXPECT_EQ(indexes[0], 0u);
  for (uint32_t i = 0; i < 100; ++i) EXPECT_EQ(indexes[1 + i], i);
}

// Backpressure: with the writer held, a producer fills the bounded queue and then waits;
// no write ever exceeds the bound.
TEST(FileJournalTest, TheQueueIsBoundedAndAppendWaitsForRoom) {
  TempDir dir;
  Gate gate;
  FileJournalOptions options = OptionsFor(dir);
  options.batch_bytes_max = kMinBatchBytesMax;
  options.on_durable = [&](uint64_t durable) {
    if (durable == 1) gate.Wait();
  };
  std::unique_ptr<FileJournal> journal = OpenOrDie(options);
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 1, /*one_per_batch=*/true);
  constexpr int kRecords = 400;  // About 28 KiB: seven times the bound.
  std::thread producer([&] { AppendRecords(*journal, kRecords, false); });
  gate.Open();
  producer.join();
  ASSERT_TRUE(journal->Close().ok());
  EXPECT_EQ(journal->durable_sequence(), 1u + kRecords);

  const std::string bytes = testing::ReadFileBytes(dir.File(SegmentFileName(1)));
  const std::vector<uint32_t> indexes = BatchIndexes(dir.File(SegmentFileName(1)));
  ASSERT_EQ(indexes.size(), 1u + kRecords);
  // Sum the bytes of each write (a run of indexes starting at 0) and check the bound.
  size_t offset = kSegmentHeaderBytes, write_bytes = 0, writes = 0;
  DecodedRecord decoded;
  for (uint32_t index : indexes) {
    ASSERT_EQ(DecodeRecord(std::string_view(bytes).substr(offset), &decoded), DecodeStatus::kOk);
    if (index == 0) {
      write_bytes = 0;
      ++writes;
    }
    write_bytes += decoded.size;
    ASSERT_LE(write_bytes, kMinBatchBytesMax);
    offset += decoded.size;
  }
  EXPECT_GE(writes, 1u + bytes.size() / kMinBatchBytesMax);
  EXPECT_EQ(writes, journal->batches_written());
}

TEST(FileJournalTest, WaitDurableFromAnotherThreadSeesTheWatermark) {
  TempDir dir;
  std::unique_ptr<FileJournal> journal = OpenOrDie(OptionsFor(dir));
  ASSERT_NE(journal, nullptr);
  AppendRecords(*journal, 50, false);
  absl::Status waited;
  std::thread waiter([&] { waited = journal->WaitDurable(50); });
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited;
  EXPECT_GE(journal->durable_sequence(), 50u);
}

}  // namespace
}  // namespace ocx::journal
