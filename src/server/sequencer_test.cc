#include "src/server/sequencer.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <numeric>

#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"
#include "src/core/codec.h"
#include "src/journal/file_journal_reader.h"
#include "src/server/test_commands.h"

namespace ocx::server {
namespace {

class SequencerTest : public ::testing::Test {
 protected:
  SequencerOptions Options(uint64_t snapshot_every = 0) {
    SequencerOptions options;
    options.data_dir = dir_;
    options.clock = &clock_;
    options.snapshot_every = snapshot_every;
    return options;
  }
  std::string Hash(const Sequencer& s) {
    std::string hash;
    s.Read([&hash](const core::Exchange& x) {
      x.CheckInvariants();
      hash = x.StateHash();
    });
    return hash;
  }
  // The state a clean replay of the whole journal gives.
  std::string ReplayHash() {
    core::Exchange x(core::ExchangeConfig::Default());
    auto reader = journal::FileJournalReader::Open(dir_ + "/journal", 0);
    EXPECT_TRUE(reader.ok()) << reader.status();
    journal::RecordView record;
    core::ApplyOutput out;
    while (true) {
      auto more = (*reader)->Next(&record);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      auto command = core::DecodeCommand(record.payload);
      EXPECT_TRUE(command.ok());
      out.events.clear();
      x.Apply(record.sequence, record.timestamp, *command, &out);
    }
    x.CheckInvariants();
    return x.StateHash();
  }

  base::testing::TempDir temp_{"ocx_sequencer_test"};
  const std::string dir_ = temp_.path();
  base::SimClock clock_;
};

TEST_F(SequencerTest, ExecuteAnswersWithTheResultInSequenceOrder) {
  auto s = Sequencer::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  uint64_t last = 0;
  for (const core::CommandBody& command : testing::SetupCommands()) {
    clock_.Advance(1000);
    auto acked = (*s)->Execute(command);
    ASSERT_TRUE(acked.ok()) << acked.status();
    EXPECT_TRUE(acked->output.result.accepted) << acked->output.result.code();
    EXPECT_EQ(acked->sequence, last + 1);
    // By the time the caller hears of it, the command counts as durable and delivered.
    EXPECT_GE((*s)->durable_sequence(), acked->sequence);
    last = acked->sequence;
  }
  auto rejected = (*s)->Execute(core::Deposit{2, 2, 5});  // alice is no operator.
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ(rejected->output.result.code(), "not_authorized");
  EXPECT_TRUE((*s)->Stop().ok());
}

// Blocks the first acknowledgement until released, and records the sequence of every
// acknowledgement delivered, in delivery order.
class BlockedFirstAcknowledgement {
 public:
  ~BlockedFirstAcknowledgement() { Release(); }  // So that a failing test ends, not hangs.
  AckCallback First() {
    return [this, released = released_](const Acked& acked) {
      released.wait();
      Record(acked);
    };
  }
  AckCallback Rest() {
    return [this](const Acked& acked) { Record(acked); };
  }
  void Release() {
    if (!released_set_.exchange(true)) release_.set_value();
  }
  std::vector<uint64_t> delivered() {
    std::lock_guard lock(mu_);
    return delivered_;
  }

 private:
  void Record(const Acked& acked) {
    std::lock_guard lock(mu_);
    delivered_.push_back(acked.sequence);
  }
  std::promise<void> release_;
  std::shared_future<void> released_ = release_.get_future().share();
  std::atomic<bool> released_set_{false};
  std::mutex mu_;
  std::vector<uint64_t> delivered_;
};

// On every way out of a test: release the blocked acknowledgement, then stop the sequencer
// (joining its threads) before the callbacks' state goes.
struct StopOnExit {
  BlockedFirstAcknowledgement* acks;
  Sequencer* sequencer;
  ~StopOnExit() {
    acks->Release();
    (void)sequencer->Stop();
  }
};

// Acknowledgements are delivered off the journal's thread: while one is slow (here: blocked),
// later commands still become durable, batch after batch, and are delivered after it, in order.
TEST_F(SequencerTest, ASlowAcknowledgementDoesNotHoldBackTheJournal) {
  BlockedFirstAcknowledgement acks;  // Outlives the sequencer, whose threads call into it.
  std::atomic<int> batches_synced{0};
  SequencerOptions options = Options();
  options.on_journal_sync = [&batches_synced](int64_t, size_t) { batches_synced.fetch_add(1); };
  auto s = Sequencer::Open(options);
  ASSERT_TRUE(s.ok()) << s.status();
  StopOnExit stop_on_exit{&acks, s->get()};
  const std::vector<core::CommandBody> commands = testing::SetupCommands();
  ASSERT_GE(commands.size(), 3u);
  ASSERT_TRUE((*s)->Submit(commands[0], acks.First()).ok());
  // Wait for the first batch, then submit the rest one by one: each needs a sync of its own.
  for (int i = 0; i < 500 && batches_synced.load() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (size_t i = 1; i < commands.size(); ++i) {
    const int before = batches_synced.load();
    ASSERT_TRUE((*s)->Submit(commands[i], acks.Rest()).ok());
    for (int wait = 0; wait < 500 && batches_synced.load() == before; ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GT(batches_synced.load(), before) << "command " << i << " was never synced";
  }
  EXPECT_TRUE(acks.delivered().empty()) << "delivered past the blocked acknowledgement";
  acks.Release();
  EXPECT_TRUE((*s)->Stop().ok());
  std::vector<uint64_t> expected(commands.size());
  std::iota(expected.begin(), expected.end(), uint64_t{1});
  EXPECT_EQ(acks.delivered(), expected);
}

// What is applied but not delivered is bounded: behind a blocked acknowledgement the
// sequencer keeps at most `undelivered_max` commands applied and undelivered (the blocked
// one included), then waits; released, it goes on and every command is delivered once, in
// order.
TEST_F(SequencerTest, ApplyingWaitsWhenDeliveryFallsBehind) {
  BlockedFirstAcknowledgement acks;
  SequencerOptions options = Options();
  options.undelivered_max = 2;
  auto s = Sequencer::Open(options);
  ASSERT_TRUE(s.ok()) << s.status();
  StopOnExit stop_on_exit{&acks, s->get()};
  const std::vector<core::CommandBody> commands = testing::SetupCommands();
  ASSERT_GE(commands.size(), 5u);
  ASSERT_TRUE((*s)->Submit(commands[0], acks.First()).ok());
  for (size_t i = 1; i < commands.size(); ++i) {
    ASSERT_TRUE((*s)->Submit(commands[i], acks.Rest()).ok());
  }
  auto applied = [&s] {
    uint64_t last = 0;
    (*s)->Read([&last](const core::Exchange& x) { last = x.last_sequence(); });
    return last;
  };
  // The first is being delivered (blocked), with at most one more: two applied, no more.
  for (int i = 0; i < 500 && applied() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(applied(), 2u);
  acks.Release();
  EXPECT_TRUE((*s)->Stop().ok());
  EXPECT_EQ(applied(), commands.size());
  std::vector<uint64_t> expected(commands.size());
  std::iota(expected.begin(), expected.end(), uint64_t{1});
  EXPECT_EQ(acks.delivered(), expected);
}

TEST_F(SequencerTest, AcknowledgementsArriveOnceEachInOrder) {
  auto s = Sequencer::Open(Options());
  ASSERT_TRUE(s.ok());
  std::mutex mu;
  std::vector<uint64_t> acked;
  testing::CommandStream stream(5);
  for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE((*s)->Submit(stream.Next(), [&](const Acked& a) {
                   std::lock_guard<std::mutex> lock(mu);
                   acked.push_back(a.sequence);
                 }).ok());
  }
  ASSERT_TRUE((*s)->Stop().ok());  // Stop drains and makes everything durable.
  ASSERT_EQ(acked.size(), 5000u);
  for (size_t i = 1; i < acked.size(); ++i) ASSERT_EQ(acked[i], acked[i - 1] + 1);
}

TEST_F(SequencerTest, JournalSyncHookSeesEveryBatchAndRestartKeepsTheDurableSequence) {
  std::atomic<uint64_t> synced_bytes{0};
  SequencerOptions options = Options();
  options.on_journal_sync = [&](int64_t nanos, size_t bytes) {
    EXPECT_GE(nanos, 0);
    synced_bytes += bytes;
  };
  uint64_t last = 0;
  {
    auto s = Sequencer::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    for (const core::CommandBody& command : testing::SetupCommands()) {
      auto acked = (*s)->Execute(command);
      ASSERT_TRUE(acked.ok());
      last = acked->sequence;
    }
    EXPECT_GT(synced_bytes.load(), 0u);
    ASSERT_TRUE((*s)->Stop().ok());
  }
  auto reopened = Sequencer::Open(Options());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->durable_sequence(), last);
}

TEST_F(SequencerTest, RestartRecoversTheSameStateFromTheJournal) {
  std::string before;
  {
    auto s = Sequencer::Open(Options());
    ASSERT_TRUE(s.ok());
    testing::CommandStream stream(7);
    for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
    for (int i = 0; i < 3000; ++i) {
      clock_.Advance(100'000);
      ASSERT_TRUE((*s)->Submit(stream.Next(), nullptr).ok());
    }
    ASSERT_TRUE((*s)->Stop().ok());
    before = Hash(**s);
  }
  auto again = Sequencer::Open(Options());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->recovery().replayed, 3007u);
  EXPECT_EQ(Hash(**again), before);
  EXPECT_EQ(ReplayHash(), before);
}

TEST_F(SequencerTest, SnapshotPlusTailEqualsAFullReplay) {
  std::string before;
  {
    auto s = Sequencer::Open(Options(/*snapshot_every=*/500));
    ASSERT_TRUE(s.ok());
    testing::CommandStream stream(9);
    for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
    for (int i = 0; i < 2222; ++i) {
      clock_.Advance(50'000);
      ASSERT_TRUE((*s)->Submit(stream.Next(), nullptr).ok());
    }
    ASSERT_TRUE((*s)->Stop().ok());
    before = Hash(**s);
  }
  auto again = Sequencer::Open(Options(500));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->recovery().snapshot_sequence, 2000u);
  EXPECT_EQ((*again)->recovery().replayed, 229u);
  EXPECT_EQ(Hash(**again), before);
  EXPECT_EQ(ReplayHash(), before);
}

// Snapshots are written by a thread of their own; asked for faster than it writes, the
// newest waiting one replaces the older, and Stop writes the last one asked for.
TEST_F(SequencerTest, SnapshotAfterEveryCommandEndsWithTheLastOneWritten) {
  std::string before;
  uint64_t last = 0;
  {
    auto s = Sequencer::Open(Options(/*snapshot_every=*/1));
    ASSERT_TRUE(s.ok());
    testing::CommandStream stream(11);
    for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
    for (int i = 0; i < 300; ++i) {
      clock_.Advance(50'000);
      ASSERT_TRUE((*s)->Submit(stream.Next(), nullptr).ok());
    }
    ASSERT_TRUE((*s)->Stop().ok());
    before = Hash(**s);
    (*s)->Read([&](const core::Exchange& x) { last = x.last_sequence(); });
  }
  auto again = Sequencer::Open(Options());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->recovery().snapshot_sequence, last);
  EXPECT_EQ((*again)->recovery().replayed, 0u);
  EXPECT_EQ(Hash(**again), before);
  EXPECT_EQ(ReplayHash(), before);
}

TEST_F(SequencerTest, TimeNeverGoesBackwardsEvenIfTheClockDoes) {
  auto s = Sequencer::Open(Options());
  ASSERT_TRUE(s.ok());
  auto first = (*s)->Execute(core::Tick{});
  clock_.Set(clock_.NowMicros() - 10'000'000);
  auto second = (*s)->Execute(core::Tick{});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(second->time, first->time);
}

TEST_F(SequencerTest, RefusesToStartOnCorruptionBeforeTheTail) {
  {
    auto s = Sequencer::Open(Options());
    ASSERT_TRUE(s.ok());
    testing::CommandStream stream(3);
    for (const auto& c : testing::SetupCommands()) (*s)->Execute(c).IgnoreError();
    for (int i = 0; i < 200; ++i) (*s)->Execute(stream.Next()).IgnoreError();
    ASSERT_TRUE((*s)->Stop().ok());
  }
  std::string segment;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/journal")) {
    segment = entry.path();
  }
  ASSERT_FALSE(segment.empty());
  {
    std::fstream file(segment, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(std::filesystem::file_size(segment) / 3));
    file.put('\x5a');
  }
  auto broken = Sequencer::Open(Options());
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss) << broken.status();
  EXPECT_NE(broken.status().message().find(segment), std::string::npos) << broken.status();
}

TEST_F(SequencerTest, TextThatIsNotUtf8IsRefusedBeforeItIsApplied) {
  auto s = Sequencer::Open(Options());
  ASSERT_TRUE(s.ok());
  const absl::Status refused = (*s)->Submit(core::CreateAccount{0, "bad\xff", core::Role::kConsumer, {}}, nullptr);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  auto next = (*s)->Execute(core::Tick{});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->sequence, 1u);  // Nothing was sequenced for the refused command.
}

TEST_F(SequencerTest, SubmitAfterStopFails) {
  auto s = Sequencer::Open(Options());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Stop().ok());
  EXPECT_FALSE((*s)->Submit(core::Tick{}, nullptr).ok());
}

TEST_F(SequencerTest, BadOptionsAreRefused) {
  SequencerOptions options = Options();
  options.clock = nullptr;
  EXPECT_FALSE(Sequencer::Open(options).ok());
  options = Options();
  options.data_dir = "/proc/no-such-place/ocx";
  EXPECT_FALSE(Sequencer::Open(options).ok());
}

}  // namespace
}  // namespace ocx::server
