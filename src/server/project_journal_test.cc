#include "src/server/project_journal.h"

#include <algorithm>
#include <filesystem>

#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"
#include "src/journal/prune.h"
#include "src/server/sequencer.h"
#include "src/server/test_commands.h"
#include "src/store/sqlite/sqlite_store.h"

namespace ocx::server {
namespace {

TEST(ProjectJournalTest, RebuildsTheStoreFromTheJournalAndMatchesTheCore) {
  base::testing::TempDir temp("ocx_project_test");
  const std::string dir = temp.path();
  base::SimClock clock;
  SequencerOptions options;
  options.data_dir = dir;
  options.clock = &clock;
  options.snapshot_every = 0;
  std::map<core::BalanceRef, core::Micros> balances;
  // Runs the exchange for a while; the store catches up after each run.
  auto run = [&](uint64_t seed, bool setup) {
    auto s = Sequencer::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    if (setup) {
      for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
    }
    testing::CommandStream stream(seed);
    for (int i = 0; i < 1500; ++i) {
      clock.Advance(200'000);
      ASSERT_TRUE((*s)->Submit(stream.Next(), nullptr).ok());
    }
    ASSERT_TRUE((*s)->Stop().ok());
    (*s)->Read([&balances](const core::Exchange& x) { balances = x.balances(); });
  };
  auto store = store::SqliteStore::Open({.path = dir + "/store.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  run(11, true);
  auto first = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->projected, 1507u);
  run(12, false);  // The store is behind now.
  auto second = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->replayed, 3007u);  // Replayed from the first record...
  EXPECT_EQ(second->projected, 1500u);  // ...projected only what the store lacked.
  auto again = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->projected, 0u);
  EXPECT_EQ((*store)->last_projected_sequence(), 3007u);
  // Wiped, the store is rebuilt whole from the journal.
  ASSERT_TRUE((*store)->Rebuild().ok());
  auto rebuilt = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(rebuilt->projected, 3007u);
  size_t checked = 0;
  for (const auto& [ref, amount] : balances) {
    if (ref.owner == 0) continue;
    auto rows = (*store)->Balances(ref.owner);
    ASSERT_TRUE(rows.ok()) << rows.status();
    bool found = amount == 0;
    for (const auto& row : *rows) {
      if (row.kind == ref.kind) {
        EXPECT_EQ(row.amount, amount) << "account " << ref.owner;
        found = true;
      }
    }
    EXPECT_TRUE(found) << "account " << ref.owner;
    ++checked;
  }
  EXPECT_GT(checked, 3u);
  ASSERT_TRUE((*store)->Close().ok());
}

// Once old segments are pruned (below the older kept snapshot and the store), a store that is
// behind catches up from the newest snapshot it has passed, and ends equal to one that saw
// everything; a wiped store cannot be rebuilt from history that is gone, and says so.
TEST(ProjectJournalTest, CatchesUpFromASnapshotOnceTheJournalWasPruned) {
  base::testing::TempDir temp("ocx_project_pruned");
  const std::string dir = temp.path();
  base::SimClock clock;
  SequencerOptions options;
  options.data_dir = dir;
  options.clock = &clock;
  options.snapshot_every = 400;
  options.journal_segment_bytes = 4096;  // Many segments, so there is something to prune.
  auto store = store::SqliteStore::Open({.path = dir + "/store.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  auto run = [&](uint64_t seed, bool setup) {
    auto s = Sequencer::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    if (setup) {
      for (const auto& c : testing::SetupCommands()) ASSERT_TRUE((*s)->Submit(c, nullptr).ok());
    }
    testing::CommandStream stream(seed);
    for (int i = 0; i < 1500; ++i) {
      clock.Advance(200'000);
      ASSERT_TRUE((*s)->Submit(stream.Next(), nullptr).ok());
    }
    ASSERT_TRUE((*s)->Stop().ok());
  };
  run(21, true);
  ASSERT_TRUE(ProjectJournal(dir, core::ExchangeConfig::Default(), **store).ok());
  const uint64_t store_at = (*store)->last_projected_sequence();
  run(22, false);  // The store is behind by 1,500 commands now.
  journal::PruneReport report;
  // As `ocx exchange` prunes (ExchangeServer::PruneHistory): the newest two snapshots and
  // the newest the store has passed; the journal from the oldest kept on.
  auto kept = journal::PruneSnapshots(dir + "/snapshots", 2, store_at, &report);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->size(), 3u);
  ASSERT_LE(kept->front(), store_at);
  const uint64_t floor = kept->front();
  auto pruned = journal::PruneSegments(dir + "/journal", floor + 1);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ASSERT_GT(pruned->files_deleted, 0u);
  auto first = journal::FirstJournalSequence(dir + "/journal");
  ASSERT_TRUE(first.ok());
  ASSERT_GT(*first, 1u);

  auto caught_up = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  ASSERT_TRUE(caught_up.ok()) << caught_up.status();
  EXPECT_EQ((*store)->last_projected_sequence(), 3007u);
  EXPECT_LT(caught_up->replayed, 3007u);  // From a snapshot, not from record 1.

  // The same history into a second store that saw everything from the start of the pruning
  // run: the balances agree.
  auto reference = Sequencer::Open(options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::map<core::BalanceRef, core::Micros> balances;
  (*reference)->Read([&](const core::Exchange& x) { balances = x.balances(); });
  ASSERT_TRUE((*reference)->Stop().ok());
  for (const auto& [ref, amount] : balances) {
    if (ref.owner == 0 || amount == 0) continue;
    auto rows = (*store)->Balances(ref.owner);
    ASSERT_TRUE(rows.ok()) << rows.status();
    bool found = false;
    for (const auto& row : *rows) {
      if (row.kind == ref.kind) {
        EXPECT_EQ(row.amount, amount) << "account " << ref.owner;
        found = true;
      }
    }
    EXPECT_TRUE(found) << "account " << ref.owner;
  }

  // Wiped, the store cannot get back history the journal no longer holds.
  ASSERT_TRUE((*store)->Rebuild().ok());
  auto rebuilt = ProjectJournal(dir, core::ExchangeConfig::Default(), **store);
  EXPECT_EQ(rebuilt.status().code(), absl::StatusCode::kFailedPrecondition) << rebuilt.status();
  ASSERT_TRUE((*store)->Close().ok());
}

TEST(ProjectJournalTest, MissingJournalIsAnError) {
  auto store = store::SqliteStore::Open({.path = "/tmp/ocx-project-missing.db"});
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(ProjectJournal("/tmp/no-such-ocx-dir", core::ExchangeConfig::Default(), **store).ok());
  ASSERT_TRUE((*store)->Close().ok());
  std::filesystem::remove("/tmp/ocx-project-missing.db");
}

}  // namespace
}  // namespace ocx::server
