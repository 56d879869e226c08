// Seeded random command streams through a real core::Exchange, projected batch by batch
// (randomly through the synchronous path or the background writer) into a real SQLite file.
// After every batch the store's balances and live jobs equal the core's; at the end its
// open orders, active leases, machines, jobs, ledger sums and statements agree with the
// core, every order row equals a simple model's, and a rebuild and a reopen give identical
// query results. Set OCX_TEST_SEED=n to rerun one seed.
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::store {
namespace {

using core::BalanceKind;
using core::Micros;
using testing::ReadAllPages;

const std::vector<std::string> kMarkets = {"cpu", "gpu.h100"};

void ExpectOpenOrdersEqualCore(Store& store, const core::Exchange& x) {
  for (const core::AccountId owner : testing::AllOwners(x)) {
    const std::vector<OrderRow> open = ReadAllPages<OrderRow>(
        [&](uint64_t after, size_t n) {
          return store.ListOrders(owner, OrderStatus::kOpen, static_cast<core::OrderId>(after), n);
        },
        [](const OrderRow& r) { return r.id; }, 50);
    std::map<core::OrderId, const OrderRow*> by_id;
    for (const OrderRow& row : open) by_id[row.id] = &row;
    size_t expected = 0;
    for (const auto& [id, order] : x.orders()) {
      if (order.account != owner) continue;
      ++expected;
      ASSERT_TRUE(by_id.contains(id)) << "open order " << id << " missing";
      const OrderRow& row = *by_id[id];
      EXPECT_EQ(row.remaining, order.remaining) << "order " << id;
      EXPECT_EQ(row.side, order.side) << "order " << id;
      EXPECT_EQ(row.market, x.config().markets[order.market].name) << "order " << id;
      engine::OrderView view;
      ASSERT_TRUE(x.book(order.market).Find(id, &view));
      EXPECT_EQ(row.price, view.price) << "order " << id;
    }
    EXPECT_EQ(open.size(), expected) << "owner " << owner;
  }
}

// A reference model of the orders table, written independently of the projector: every
// order as its events, one by one, leave it.
class OrderRowsModel {
 public:
  void Apply(const AppliedCommand& command) {
    const uint64_t seq = command.sequence;
    const core::Timestamp time = command.time_micros;
    for (const core::CoreEvent& event : command.events) {
      const auto* order_event = std::get_if<core::OrderEvent>(&event);
      if (order_event == nullptr) continue;
      const engine::Event& e = order_event->event;
      auto touch = [&](OrderRow& row) {
        row.updated_sequence = seq;
        row.updated_time = time;
      };
      switch (e.type) {
        case engine::EventType::kAccepted:
          rows_[e.id] = OrderRow{
              e.id, order_event->market, e.side, e.account, e.price, e.quantity, e.quantity,
              0,    OrderStatus::kOpen,  "",     seq,       time,    seq,        time};
          break;
        case engine::EventType::kTrade:
          for (const core::OrderId id : {e.id, e.maker_id}) {
            OrderRow& row = rows_.at(id);
            row.remaining -= e.quantity;
            row.filled += e.quantity;
            if (row.remaining == 0) row.status = OrderStatus::kFilled;
            touch(row);
          }
          break;
        case engine::EventType::kCancelled:
        case engine::EventType::kExpired: {
          OrderRow& row = rows_.at(e.id);
          row.remaining -= e.quantity;
          const bool cancelled = e.type == engine::EventType::kCancelled;
          row.status = cancelled ? OrderStatus::kCancelled : OrderStatus::kExpired;
          if (cancelled) row.cancel_reason = std::string(engine::ReasonCode(e.cancel));
          touch(row);
          break;
        }
        case engine::EventType::kReplaced: {
          OrderRow& row = rows_.at(e.id);
          row.price = e.price;
          row.remaining = e.quantity;
          touch(row);
          break;
        }
        case engine::EventType::kRejected:
          break;
      }
    }
  }
  const std::map<core::OrderId, OrderRow>& rows() const { return rows_; }

 private:
  std::map<core::OrderId, OrderRow> rows_;
};

// Every order the stream placed, open or not, is listed under its account exactly as the
// model has it (fills, status, cancel reason, sequences and times).
void ExpectEveryOrderEqualsModel(Store& store, const core::Exchange& x,
                                 const OrderRowsModel& model) {
  size_t listed = 0;
  std::map<OrderStatus, size_t> by_status;
  for (const core::AccountId owner : testing::AllOwners(x)) {
    const std::vector<OrderRow> rows = ReadAllPages<OrderRow>(
        [&](uint64_t after, size_t n) {
          return store.ListOrders(owner, std::nullopt, static_cast<core::OrderId>(after), n);
        },
        [](const OrderRow& r) { return r.id; }, kListLimitMax);
    for (const OrderRow& row : rows) {
      ++listed;
      ++by_status[row.status];
      const auto expected = model.rows().find(row.id);
      ASSERT_NE(expected, model.rows().end()) << "order " << row.id << " was never placed";
      EXPECT_EQ(row, expected->second) << "order " << row.id;
    }
  }
  EXPECT_EQ(listed, model.rows().size());
  // Every way an order ends must occur, or the comparison proves little.
  for (const OrderStatus status :
       {OrderStatus::kFilled, OrderStatus::kCancelled, OrderStatus::kExpired}) {
    EXPECT_GT(by_status[status], 0u) << OrderStatusName(status);
  }
}

void ExpectLeasesAndMachinesEqualCore(Store& store, const core::Exchange& x,
                                      size_t leases_started) {
  std::set<core::LeaseId> active;
  std::set<core::LeaseId> all;
  for (const core::AccountId owner : testing::AllOwners(x)) {
    const std::vector<LeaseRow> leases = ReadAllPages<LeaseRow>(
        [&](uint64_t after, size_t n) { return store.ListLeases(owner, after, n); },
        [](const LeaseRow& r) { return r.id; }, 50);
    for (const LeaseRow& lease : leases) {
      EXPECT_TRUE(lease.buyer == owner || lease.seller == owner);
      all.insert(lease.id);
      if (lease.status == LeaseStatus::kActive) active.insert(lease.id);
    }
  }
  EXPECT_EQ(all.size(), leases_started);
  EXPECT_EQ(active.size(), x.leases().size());
  for (const auto& [id, lease] : x.leases()) {
    absl::StatusOr<LeaseRow> row = store.GetLease(id);
    ASSERT_TRUE(row.ok()) << row.status();
    EXPECT_EQ(row->status, LeaseStatus::kActive) << "lease " << id;
    EXPECT_EQ(row->billed_total, lease.billed) << "lease " << id;
    EXPECT_EQ(row->billed_seconds, lease.billed_seconds) << "lease " << id;
    EXPECT_EQ(row->reported_wall_seconds, lease.reported_wall_seconds) << "lease " << id;
    EXPECT_EQ(row->machine, lease.machine) << "lease " << id;
  }
  const std::vector<MachineRow> machines = ReadAllPages<MachineRow>(
      [&](uint64_t after, size_t n) { return store.ListMachines(after, n); },
      [](const MachineRow& r) { return r.id; });
  ASSERT_EQ(machines.size(), x.machines().size());
  for (const MachineRow& row : machines) {
    const core::Machine& machine = x.machines().at(row.id);
    EXPECT_EQ(row.online, machine.online) << "machine " << row.id;
    EXPECT_EQ(row.owner, machine.owner) << "machine " << row.id;
  }
}

// Every submitted job is listed under its owner; the core's live jobs are the store's active
// ones, task by task; an ended job has every task over and its end recorded.
void ExpectJobsEqualCore(Store& store, const core::Exchange& x, size_t jobs_submitted,
                         size_t jobs_ended) {
  size_t listed = 0, active = 0;
  for (const core::AccountId owner : testing::AllOwners(x)) {
    const std::vector<JobRow> jobs = ReadAllPages<JobRow>(
        [&](uint64_t after, size_t n) { return store.ListJobs(owner, after, n); },
        [](const JobRow& r) { return r.id; }, 5);
    for (const JobRow& listed_row : jobs) {
      ++listed;
      EXPECT_EQ(listed_row.owner, owner);
      EXPECT_TRUE(listed_row.tasks.empty());
      absl::StatusOr<JobRow> job = store.GetJob(listed_row.id);
      ASSERT_TRUE(job.ok()) << job.status();
      JobRow without_tasks = *job;
      without_tasks.tasks.clear();
      EXPECT_EQ(without_tasks, listed_row);
      ASSERT_EQ(job->tasks.size(), static_cast<size_t>(job->tasks_count));
      if (job->state == core::JobState::kActive) {
        ++active;
        ASSERT_TRUE(x.jobs().contains(job->id)) << "job " << job->id;
        testing::ExpectJobEqualsCore(*job, x.jobs().at(job->id));
        continue;
      }
      EXPECT_FALSE(x.jobs().contains(job->id)) << "job " << job->id;
      EXPECT_GE(job->end_sequence, job->submitted_sequence) << "job " << job->id;
      EXPECT_NE(job->end_sequence, 0u) << "job " << job->id;
      EXPECT_GE(job->end_time, job->submitted_time) << "job " << job->id;
      for (const JobTaskRow& task : job->tasks) {
        EXPECT_NE(task.state, core::JobTaskState::kWaiting) << "job " << job->id;
        EXPECT_NE(task.state, core::JobTaskState::kRunning) << "job " << job->id;
      }
    }
  }
  EXPECT_EQ(listed, jobs_submitted);
  EXPECT_EQ(active, x.jobs().size());
  EXPECT_EQ(listed - active, jobs_ended);
}

// The ledger entries of every owner sum to its balances, and statements over random ranges
// agree with sums of those entries.
void ExpectLedgerAndStatementsAgree(Store& store, const core::Exchange& x, base::Rng& rng,
                                    core::Timestamp first_time, core::Timestamp last_time) {
  for (const core::AccountId owner : testing::AllOwners(x)) {
    SCOPED_TRACE("owner " + std::to_string(owner));
    const std::vector<LedgerEntryRow> entries = ReadAllPages<LedgerEntryRow>(
        [&](uint64_t after, size_t n) { return store.ListLedgerEntries(owner, after, n); },
        [](const LedgerEntryRow& r) { return r.entry; }, kListLimitMax);
    auto sums_before = [&](core::Timestamp time) {
      std::map<BalanceKind, Micros> sums;
      for (const LedgerEntryRow& e : entries) {
        if (e.time >= time) break;
        if (e.from.owner == owner) sums[e.from.kind] -= e.amount;
        if (e.to.owner == owner) sums[e.to.kind] += e.amount;
      }
      return sums;
    };
    std::map<BalanceKind, Micros> total = sums_before(INT64_MAX);
    for (const BalanceKind kind : testing::AllKinds()) {
      ASSERT_EQ(total[kind], x.Balance({owner, kind})) << core::BalanceKindName(kind);
    }
    for (int i = 0; i < 3; ++i) {
      core::Timestamp from = rng.Between(first_time, last_time);
      core::Timestamp to = rng.Between(first_time, last_time);
      if (from > to) std::swap(from, to);
      absl::StatusOr<AccountStatement> statement = store.Statement(owner, from, to);
      ASSERT_TRUE(statement.ok()) << statement.status();
      std::map<BalanceKind, Micros> opening = sums_before(from), closing = sums_before(to);
      for (const StatementLine& line : statement->lines) {
        EXPECT_EQ(line.opening, opening[line.kind]) << core::BalanceKindName(line.kind);
        EXPECT_EQ(line.closing, closing[line.kind]) << core::BalanceKindName(line.kind);
      }
      size_t in_range = 0;
      for (const LedgerEntryRow& e : entries) in_range += e.time >= from && e.time < to;
      EXPECT_EQ(statement->entries.size(), std::min(in_range, kStatementEntriesMax));
      for (const LedgerEntryRow& e : statement->entries) {
        EXPECT_TRUE(e.time >= from && e.time < to);
      }
    }
  }
}

void RunRandomStream(uint64_t seed, int commands) {
  if (const char* text = std::getenv("OCX_TEST_SEED")) seed = std::strtoull(text, nullptr, 10);
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (rerun with OCX_TEST_SEED=" + std::to_string(seed) + ")");
  testing::TempDir dir;
  SqliteStoreOptions options;
  options.path = dir.File("store.db");
  options.queue_commands_max = 16;
  options.batch_commands_max = 8;
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<SqliteStore> store = std::move(*opened);

  testing::ExchangeDriver d;
  testing::CommandGenerator gen(seed);
  for (const core::CommandBody& command : gen.Setup()) d.Run(command);
  size_t projected = 0;
  size_t leases_started = 0, ended = 0, expired_orders = 0, rejections = 0;
  size_t jobs_submitted = 0, jobs_ended = 0, job_tasks_finished = 0, live_jobs_compared = 0;
  OrderRowsModel order_model;
  auto count = [&](const AppliedCommand& command) {
    order_model.Apply(command);
    for (const core::CoreEvent& event : command.events) {
      leases_started += std::holds_alternative<core::LeaseStarted>(event);
      ended += std::holds_alternative<core::LeaseEnded>(event);
      jobs_submitted += std::holds_alternative<core::JobSubmitted>(event);
      jobs_ended += std::holds_alternative<core::JobEnded>(event);
      if (const auto* e = std::get_if<core::JobTaskChanged>(&event)) {
        job_tasks_finished += e->state == core::JobTaskState::kFinished;
      }
      if (const auto* e = std::get_if<core::OrderEvent>(&event)) {
        expired_orders += e->event.type == engine::EventType::kExpired;
        rejections += e->event.type == engine::EventType::kRejected;
      }
    }
  };
  int done = 0;
  while (done < commands) {
    const int batch = static_cast<int>(gen.rng().Between(1, 40));
    for (int i = 0; i < batch && done < commands; ++i, ++done) {
      d.Advance(gen.NextStep());
      d.Run(gen.Next(d.exchange(), d.now()));
    }
    const std::span<const AppliedCommand> fresh(d.history().data() + projected,
                                                d.history().size() - projected);
    for (const AppliedCommand& command : fresh) count(command);
    if (gen.rng().Percent(50)) {
      ASSERT_TRUE(store->Project(fresh).ok());
    } else {
      for (const AppliedCommand& command : fresh) ASSERT_TRUE(store->Enqueue(command).ok());
      ASSERT_TRUE(store->Flush().ok());
    }
    projected = d.history().size();
    ASSERT_EQ(store->last_projected_sequence(), d.sequence());
    testing::ExpectBalancesEqualCore(*store, d.exchange());
    for (const auto& [id, job] : d.exchange().jobs()) {  // Live jobs, task by task.
      absl::StatusOr<JobRow> row = store->GetJob(id);
      ASSERT_TRUE(row.ok()) << row.status();
      testing::ExpectJobEqualsCore(*row, job);
      live_jobs_compared += !job.tasks.empty();
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The stream must reach the interesting paths, or it proves little.
  EXPECT_GT(leases_started, static_cast<size_t>(commands) / 200);
  EXPECT_GT(ended, 0u);
  EXPECT_GT(expired_orders, 0u);
  EXPECT_GT(rejections, 0u);
  EXPECT_GT(jobs_ended, 0u);
  EXPECT_GT(job_tasks_finished, 0u);
  EXPECT_GT(live_jobs_compared, 0u);

  const core::Exchange& x = d.exchange();
  ExpectOpenOrdersEqualCore(*store, x);
  ExpectEveryOrderEqualsModel(*store, x, order_model);
  ExpectLeasesAndMachinesEqualCore(*store, x, leases_started);
  ExpectJobsEqualCore(*store, x, jobs_submitted, jobs_ended);
  ExpectLedgerAndStatementsAgree(*store, x, gen.rng(), d.history().front().time_micros,
                                 d.now() + 1);
  size_t trades = 0;
  for (const std::string& market : kMarkets) {
    const std::vector<TradeRow> rows = ReadAllPages<TradeRow>(
        [&](uint64_t after, size_t n) { return store->ListTrades(market, after, n); },
        [](const TradeRow& r) { return r.id; }, kListLimitMax);
    for (const TradeRow& row : rows) EXPECT_NE(row.lease, 0u) << "trade " << row.id;
    trades += rows.size();
  }
  EXPECT_EQ(trades, leases_started);  // One lease per trade.

  const core::Timestamp mid = (d.history().front().time_micros + d.now()) / 2;
  const testing::StoreDump before = testing::Dump(*store, kMarkets, mid, d.now());
  ASSERT_TRUE(store->Rebuild().ok());
  for (size_t i = 0; i < d.history().size(); i += 500) {
    const size_t n = std::min<size_t>(500, d.history().size() - i);
    ASSERT_TRUE(store->Project({d.history().data() + i, n}).ok());
  }
  EXPECT_TRUE(testing::Dump(*store, kMarkets, mid, d.now()) == before) << "after rebuild";
  ASSERT_TRUE(store->Close().ok());
  opened = SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ((*opened)->last_projected_sequence(), d.sequence());
  EXPECT_TRUE(testing::Dump(**opened, kMarkets, mid, d.now()) == before) << "after reopen";
}

TEST(SqliteStoreRandomTest, MatchesTheCoreAfterEveryBatchSeed1) { RunRandomStream(1, 6000); }
TEST(SqliteStoreRandomTest, MatchesTheCoreAfterEveryBatchSeed2) { RunRandomStream(2, 6000); }

}  // namespace
}  // namespace ocx::store
