// Kill -9 under load: a child process runs the sequencer over a stream of commands and
// reports each acknowledged (durable) command through a pipe; the parent kills it with
// SIGKILL at a random point, recovers, and checks that every acknowledged command is in
// the journal byte for byte, that the recovered state (snapshot + tail) keeps every
// invariant (the ledger balances), and that its hash equals a clean replay of the whole
// journal. 24 rounds over one data directory, each child continuing from the last.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/core/codec.h"
#include "src/journal/crc32c.h"
#include "src/journal/file_journal_reader.h"
#include "src/server/sequencer.h"
#include "src/server/test_commands.h"

namespace ocx::server {
namespace {

// Runs in the child: never returns.
[[noreturn]] void RunChild(const std::string& dir, uint64_t seed, int ack_fd) {
  base::SystemClock clock;
  SequencerOptions options;
  options.data_dir = dir;
  options.clock = &clock;
  options.snapshot_every = 300;
  auto sequencer = Sequencer::Open(options);
  if (!sequencer.ok()) {
    const std::string line = "E " + std::string(sequencer.status().message()) + "\n";
    (void)!write(ack_fd, line.data(), line.size());
    _exit(3);
  }
  auto report = [ack_fd](const core::CommandBody& command) {
    const uint32_t crc = journal::Crc32c(core::EncodeCommand(command));
    return [ack_fd, crc](const Acked& acked) {
      char line[64];
      const int n = std::snprintf(line, sizeof line, "%llu %u\n",
                                  static_cast<unsigned long long>(acked.sequence), crc);
      (void)!write(ack_fd, line, static_cast<size_t>(n));  // Atomic: shorter than PIPE_BUF.
    };
  };
  for (const core::CommandBody& command : testing::SetupCommands()) {
    (void)(*sequencer)->Submit(command, report(command));
  }
  testing::CommandStream stream(seed);
  for (;;) {
    const core::CommandBody command = stream.Next();
    if (!(*sequencer)->Submit(command, report(command)).ok()) _exit(4);
  }
}

struct RecoveredJournal {
  std::map<uint64_t, uint32_t> crc_by_sequence;
  std::string replay_hash;
};

RecoveredJournal ReadJournal(const std::string& dir) {
  RecoveredJournal out;
  core::Exchange x(core::ExchangeConfig::Default());
  auto reader = journal::FileJournalReader::Open(dir + "/journal", 0);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return out;
  journal::RecordView record;
  core::ApplyOutput scratch;
  for (;;) {
    auto more = (*reader)->Next(&record);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    out.crc_by_sequence[record.sequence] = journal::Crc32c(record.payload);
    auto command = core::DecodeCommand(record.payload);
    EXPECT_TRUE(command.ok()) << command.status();
    scratch.events.clear();
    x.Apply(record.sequence, record.timestamp, *command, &scratch);
  }
  x.CheckInvariants();
  out.replay_hash = x.StateHash();
  return out;
}

TEST(SequencerCrashTest, EveryAcknowledgedCommandSurvivesKillMinus9) {
  const uint64_t seed = 20261121;
  base::Rng rng(seed);
  char pattern[] = "/tmp/ocx-crash-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  constexpr int kRounds = 24;
  size_t total_acked = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunChild(dir, seed + static_cast<uint64_t>(round), fds[1]);
    }
    close(fds[1]);
    FILE* acks = fdopen(fds[0], "r");
    ASSERT_NE(acks, nullptr);
    // Half the rounds die after a number of acknowledgements, half after a random delay
    // (which may fall inside recovery or a snapshot write).
    const bool by_count = rng.Percent(50);
    const uint64_t kill_after = static_cast<uint64_t>(rng.Between(1, 2000));
    std::map<uint64_t, uint32_t> acked;
    char line[256];
    bool killed = false;
    if (!by_count) {
      usleep(static_cast<useconds_t>(rng.Between(0, 30'000)));
      kill(pid, SIGKILL);
      killed = true;
    }
    while (std::fgets(line, sizeof line, acks) != nullptr) {
      ASSERT_NE(line[0], 'E') << "the child could not recover: " << line;
      unsigned long long sequence = 0;
      unsigned crc = 0;
      ASSERT_EQ(std::sscanf(line, "%llu %u", &sequence, &crc), 2) << line;
      acked[sequence] = crc;
      if (!killed && acked.size() >= kill_after) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    fclose(acks);
    if (!killed) kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited by itself with "
                                     << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    total_acked += acked.size();

    // Every acknowledged command is in the journal, exactly as it was sent.
    const RecoveredJournal journal = ReadJournal(dir);
    for (const auto& [sequence, crc] : acked) {
      const auto it = journal.crc_by_sequence.find(sequence);
      ASSERT_NE(it, journal.crc_by_sequence.end()) << "acknowledged sequence " << sequence
                                                   << " is missing after the crash";
      ASSERT_EQ(it->second, crc) << "sequence " << sequence << " differs from what was sent";
    }
    // Recovery (latest snapshot + tail) balances and equals the clean replay.
    base::SimClock clock;
    SequencerOptions options;
    options.data_dir = dir;
    options.clock = &clock;
    options.snapshot_every = 0;
    auto recovered = Sequencer::Open(options);
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    std::string hash;
    (*recovered)->Read([&hash](const core::Exchange& x) {
      x.CheckInvariants();
      hash = x.StateHash();
    });
    EXPECT_EQ(hash, journal.replay_hash);
    ASSERT_TRUE((*recovered)->Stop().ok());
  }
  // The kills must have landed under real load, or the test proves little.
  EXPECT_GT(total_acked, 1000u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ocx::server
