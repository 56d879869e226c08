// kill -9 test of the group-commit writer. A child process appends records through
// FileJournal as fast as it can and writes every durable watermark it is told about to a
// pipe; the parent kills it with SIGKILL at a random point, then checks that every record
// acknowledged before the kill is present, intact and in contiguous sequence. Twenty rounds
// reuse one directory, so each child also recovers what the previous one left (including
// torn tails: a write interrupted by SIGKILL can be partial) and rolls segments.
//
// Seeded: set OCX_TEST_SEED to repeat a run's kill points (the timing of the child still
// varies). The seed is printed when the test fails.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/journal/file_journal.h"
#include "src/journal/test_util.h"

namespace ocx::journal {
namespace {

using testing::ExpectRecordsFor;
using testing::OwnedRecord;
using testing::PayloadFor;
using testing::ReadAll;
using testing::RecordFor;
using testing::TempDir;

constexpr int kRounds = 20;
constexpr uint64_t kMaxAcksBeforeKill = 40;

uint64_t TestSeed() {
  if (const char* text = std::getenv("OCX_TEST_SEED")) return std::strtoull(text, nullptr, 10);
  return std::random_device{}();
}

// The child: never returns.
[[noreturn]] void AppendUntilKilled(const std::string& dir, int ack_fd) {
  FileJournalOptions options;
  options.dir = dir;
  options.segment_bytes = 256 * 1024;  // Roll now and then, so kills land near rolls too.
  options.batch_bytes_max = 16 * 1024;
  options.on_durable = [ack_fd](uint64_t durable) {
    // An acknowledgement: only now may anyone be told that `durable` is safe.
    if (::write(ack_fd, &durable, sizeof(durable)) != sizeof(durable)) ::_exit(3);
  };
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(options);
  if (!journal.ok()) {
    std::fprintf(stderr, "child: open failed: %s\n", journal.status().ToString().c_str());
    ::_exit(2);
  }
  for (;;) {
    const uint64_t sequence = (*journal)->next_sequence();
    const std::string payload = PayloadFor(sequence);
    const absl::Status status = (*journal)->Append(RecordFor(sequence, payload));
    if (!status.ok()) {
      std::fprintf(stderr, "child: append failed: %s\n", status.ToString().c_str());
      ::_exit(4);
    }
  }
}

bool ReadAck(int fd, uint64_t* ack) {
  size_t done = 0;
  auto* p = reinterpret_cast<char*>(ack);
  while (done < sizeof(*ack)) {
    const ssize_t n = ::read(fd, p + done, sizeof(*ack) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

TEST(CrashTest, AcknowledgedRecordsSurviveKill9) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (rerun with OCX_TEST_SEED=" + std::to_string(seed) + ")");
  base::Rng rng(seed);
  TempDir dir;
  uint64_t acknowledged_max = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      AppendUntilKilled(dir.path(), fds[1]);
    }
    ::close(fds[1]);

    // Kill after a random number of acknowledgements, plus a random spin (not a sleep: it
    // only moves the kill point, nothing waits on it).
    const uint64_t acks_before_kill = 1 + rng.Below(kMaxAcksBeforeKill);
    uint64_t ack = 0;
    uint64_t previous = acknowledged_max;
    bool child_alive = true;
    for (uint64_t i = 0; i < acks_before_kill; ++i) {
      if (!ReadAck(fds[0], &ack)) {
        child_alive = false;
        break;
      }
      ASSERT_GT(ack, previous) << "watermarks must increase";
      previous = ack;
    }
    const uint64_t spin = rng.Below(200'000);
    for (uint64_t i = 0; i < spin; ++i) asm volatile("" ::: "memory");
    ::kill(pid, SIGKILL);
    int wait_status = 0;
    ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
    ASSERT_TRUE(child_alive && WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "the child died before it was killed (exit status "
        << (WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1) << ")";
    // Acknowledgements sent before the kill are still in the pipe.
    while (ReadAck(fds[0], &ack)) {
      ASSERT_GT(ack, previous);
      previous = ack;
    }
    ::close(fds[0]);
    acknowledged_max = previous;

    absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_GE(records->size(), acknowledged_max) << "an acknowledged record is missing";
    ExpectRecordsFor(*records, 1);
  }
  ASSERT_GT(acknowledged_max, 0u);

  // The last child's tail is recovered like any other.
  FileJournalOptions options;
  options.dir = dir.path();
  absl::StatusOr<std::unique_ptr<FileJournal>> journal = FileJournal::Open(options);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_GE((*journal)->recovery().last_sequence, acknowledged_max);
  ASSERT_TRUE((*journal)->Close().ok());
  absl::StatusOr<std::vector<OwnedRecord>> records = ReadAll(dir.path());
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_GE(records->size(), acknowledged_max);
  ExpectRecordsFor(*records, 1);
}

}  // namespace
}  // namespace ocx::journal
