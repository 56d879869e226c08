// SqliteStore against a real core::Exchange: a scenario (accounts, deposit, machine, sell,
// buy -> lease, usage reports, release) projected into a real SQLite file, then compared
// with the core's state and with the events it emitted. Also resume, idempotence, rebuild,
// migration, the background writer, and bad input. Opening a store:
// sqlite_store_open_test.cc; jobs: sqlite_store_job_test.cc; blobs named by tasks:
// sqlite_store_blob_test.cc.
#include "src/store/sqlite/sqlite_store.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/store/sqlite/sqlite_db.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::store {
namespace {

using core::BalanceKind;
using core::BalanceRef;
using core::Micros;
using engine::Side;
using testing::Dump;
using testing::ExchangeDriver;
using testing::ExpectBalancesEqualCore;
using testing::IndexesOf;
using testing::kCredit;
using testing::kSecond;
using testing::OpenAt;
using testing::StoreDump;
using testing::TempDir;

const std::vector<std::string> kMarkets = {"cpu", "gpu.h100"};

// Deltas of one transfer to the balances of `owner`.
void AddDeltas(const core::LedgerTransfer& t, core::AccountId owner,
               std::map<BalanceKind, Micros>* sums) {
  if (t.from.owner == owner) (*sums)[t.from.kind] -= t.amount;
  if (t.to.owner == owner) (*sums)[t.to.kind] += t.amount;
}

template <typename E>
std::vector<std::pair<const AppliedCommand*, const E*>> EventsOf(
    const std::vector<AppliedCommand>& history) {
  std::vector<std::pair<const AppliedCommand*, const E*>> out;
  for (const AppliedCommand& command : history) {
    for (const core::CoreEvent& event : command.events) {
      if (const E* e = std::get_if<E>(&event)) out.push_back({&command, e});
    }
  }
  return out;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  SqliteStoreTest() { RunScenario(); }

  std::unique_ptr<SqliteStore> Open(const std::string& name = "store.db") {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir_.File(name));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  const std::vector<AppliedCommand>& history() const { return d_.history(); }
  const core::Exchange& x() const { return d_.exchange(); }

  core::AccountId Create(const std::string& name, core::Role role) {
    core::CommandResult result;
    d_.Run(core::CreateAccount{op_, name, role, {}}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
    return result.account;
  }
  // Time passes while the machine keeps sending heartbeats every 5 s, as its agent does.
  void Elapse(core::Timestamp by) {
    for (core::Timestamp done = 0; done < by; done += 5 * kSecond) {
      d_.Advance(5 * kSecond);
      d_.Run(core::Heartbeat{machine_});
    }
  }
  core::CommandResult Order(core::AccountId who, Side side, core::PriceMicros price,
                            core::Quantity quantity,
                            engine::TimeInForce tif = engine::TimeInForce::kGtc) {
    core::PlaceOrder c;
    c.actor = who;
    c.market = "cpu";
    c.client_order_id = "c" + std::to_string(++client_id_);
    c.side = side;
    c.tif = tif;
    c.price = price;
    c.quantity = quantity;
    c.max_hours = 2;
    c.machine = side == Side::kSell ? machine_ : 0;
    core::CommandResult result;
    d_.Run(c, &result);
    return result;
  }
  void Snapshot(std::map<BalanceKind, Micros>* out) {
    for (const BalanceKind kind : testing::AllKinds()) (*out)[kind] = x().Balance({alice_, kind});
  }

  void RunScenario() {
    op_ = Create("op", core::Role::kOperator);
    alice_ = Create("alice", core::Role::kConsumer);
    prov_ = Create("prov", core::Role::kProvider);
    d_.Run(core::Deposit{op_, alice_, 100 * kCredit});
    core::RegisterMachine machine;
    machine.actor = prov_;
    machine.spec.name = "box";
    machine.spec.capacity["cpu"] = 16;
    core::CommandResult result;
    d_.Run(machine, &result);
    machine_ = result.machine;

    Elapse(5 * kSecond);
    sell_order_ = Order(prov_, Side::kSell, 100'000, 4).order;
    // A fill-or-kill buy the book cannot fill: rejected, so it never becomes an order, and
    // the next order gets the id it would have had.
    const core::CommandResult fok =
        Order(alice_, Side::kBuy, 100'000, 10, engine::TimeInForce::kFok);
    EXPECT_FALSE(fok.accepted);
    EXPECT_EQ(fok.code(), "fok_unfillable");
    Elapse(5 * kSecond);
    buy_order_ = Order(alice_, Side::kBuy, 100'000, 2).order;  // Trades: lease 1.
    EXPECT_EQ(x().leases().size(), 1u);
    lease_ = x().leases().begin()->first;
    cancelled_order_ = Order(alice_, Side::kBuy, 90'000, 1).order;
    d_.Run(core::CancelOrder{alice_, cancelled_order_});
    d_.Run(core::AssignTask{alice_, lease_, kTaskSpec}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
    time_a_ = d_.now();
    Snapshot(&balances_a_);

    Elapse(60 * kSecond);
    d_.Run(core::ReportUsage{machine_, lease_, 60, 100, 1024, 0}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
    Elapse(60 * kSecond);
    d_.Run(core::ReportUsage{machine_, lease_, 120, 200, 2048, 0}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
    time_b_ = d_.now();
    Snapshot(&balances_b_);
    Elapse(10 * kSecond);
    d_.Run(core::EndLease{alice_, 0, lease_, core::LeaseEndReason::kReleased}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
    d_.Advance(kSecond);
    d_.Run(core::FinishTask{machine_, lease_, kTaskResult}, &result);  // After the release.
    EXPECT_TRUE(result.accepted) << result.code();
    d_.Run(core::Withdraw{op_, prov_, 1000, BalanceKind::kEarnings}, &result);
    EXPECT_TRUE(result.accepted) << result.code();
  }

  static constexpr char kTaskSpec[] = R"({"command":["true"]})";
  static constexpr char kTaskResult[] = R"({"status":"cancelled"})";
  TempDir dir_;
  ExchangeDriver d_;
  core::AccountId op_ = 0, alice_ = 0, prov_ = 0;
  core::MachineId machine_ = 0;
  core::OrderId sell_order_ = 0, buy_order_ = 0, cancelled_order_ = 0;
  core::LeaseId lease_ = 0;
  int client_id_ = 0;
  core::Timestamp time_a_ = 0, time_b_ = 0;
  std::map<BalanceKind, Micros> balances_a_, balances_b_;
};

// ---------------------------------------------------------------- the scenario

TEST_F(SqliteStoreTest, BalancesEqualTheCoresWithOneCommandPerBatch) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (const AppliedCommand& command : history()) {
    ASSERT_TRUE(store->Project({&command, 1}).ok());
    EXPECT_EQ(store->last_projected_sequence(), command.sequence);
  }
  ExpectBalancesEqualCore(*store, x());
}

TEST_F(SqliteStoreTest, BalancesEqualTheTransfersSoFarAfterEveryCommand) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::map<BalanceRef, Micros> expected;  // Sum of the transfers so far per balance.
  for (const AppliedCommand& command : history()) {
    ASSERT_TRUE(store->Project({&command, 1}).ok());
    for (const core::CoreEvent& event : command.events) {
      if (const auto* t = std::get_if<core::LedgerTransfer>(&event)) {
        expected[t->from] -= t->amount;
        expected[t->to] += t->amount;
      }
    }
    for (const core::AccountId owner : testing::AllOwners(x())) {
      absl::StatusOr<std::vector<BalanceRow>> rows = store->Balances(owner);
      ASSERT_TRUE(rows.ok()) << rows.status();
      for (const BalanceRow& row : *rows) {
        ASSERT_EQ(row.amount, (expected[BalanceRef{owner, row.kind}]))
            << "sequence " << command.sequence;
      }
    }
  }
}

TEST_F(SqliteStoreTest, TradesMatchTheTradeEvents) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<std::vector<TradeRow>> trades = store->ListTrades("cpu", 0, kListLimitMax);
  ASSERT_TRUE(trades.ok()) << trades.status();
  const auto events = EventsOf<core::OrderEvent>(history());
  std::vector<std::pair<const AppliedCommand*, const engine::Event*>> trade_events;
  for (const auto& [command, e] : events) {
    if (e->event.type == engine::EventType::kTrade) trade_events.push_back({command, &e->event});
  }
  ASSERT_EQ(trades->size(), 1u);
  ASSERT_EQ(trade_events.size(), 1u);
  const TradeRow& trade = trades->front();
  const engine::Event& e = *trade_events.front().second;
  EXPECT_EQ(trade.id, 1u);
  EXPECT_EQ(trade.sequence, trade_events.front().first->sequence);
  EXPECT_EQ(trade.time, trade_events.front().first->time_micros);
  EXPECT_EQ(trade.market, "cpu");
  EXPECT_EQ(trade.taker_order, buy_order_);
  EXPECT_EQ(trade.maker_order, sell_order_);
  EXPECT_EQ(trade.taker_order, e.id);
  EXPECT_EQ(trade.taker_side, Side::kBuy);
  EXPECT_EQ(trade.buyer, alice_);
  EXPECT_EQ(trade.seller, prov_);
  EXPECT_EQ(trade.price, 100'000);
  EXPECT_EQ(trade.quantity, 2);
  EXPECT_EQ(trade.machine, machine_);
  EXPECT_EQ(trade.lease, lease_);
  absl::StatusOr<std::vector<TradeRow>> gpu = store->ListTrades("gpu.h100", 0, 10);
  ASSERT_TRUE(gpu.ok());
  EXPECT_TRUE(gpu->empty());
}

TEST_F(SqliteStoreTest, LeaseMatchesItsStartUsageAndEndEvents) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const auto started = EventsOf<core::LeaseStarted>(history());
  const auto ended = EventsOf<core::LeaseEnded>(history());
  const auto usage = EventsOf<core::UsageRecorded>(history());
  ASSERT_EQ(started.size(), 1u);
  ASSERT_EQ(ended.size(), 1u);
  ASSERT_EQ(usage.size(), 2u);
  const core::LeaseStarted& s = *started.front().second;
  const core::LeaseEnded& end = *ended.front().second;

  absl::StatusOr<LeaseRow> lease = store->GetLease(lease_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->id, s.lease);
  EXPECT_EQ(lease->buyer, s.buyer);
  EXPECT_EQ(lease->seller, s.seller);
  EXPECT_EQ(lease->machine, s.machine);
  EXPECT_EQ(lease->market, s.market);
  EXPECT_EQ(lease->slots, s.slots);
  EXPECT_EQ(lease->price, s.price);
  EXPECT_EQ(lease->max_hours, s.max_hours);
  EXPECT_EQ(lease->start, s.start);
  EXPECT_EQ(lease->start_sequence, started.front().first->sequence);
  EXPECT_EQ(lease->escrow, s.escrow);
  EXPECT_EQ(lease->buy_order, s.buy_order);
  EXPECT_EQ(lease->sell_order, s.sell_order);
  EXPECT_EQ(lease->status, LeaseStatus::kEnded);
  EXPECT_EQ(lease->end_reason, core::LeaseEndReason::kReleased);
  EXPECT_EQ(lease->end_time, end.end);
  EXPECT_EQ(lease->end_sequence, ended.front().first->sequence);
  EXPECT_EQ(lease->billed_seconds, end.billed_seconds);
  EXPECT_EQ(lease->billed_total, end.billed_total);
  EXPECT_EQ(lease->refunded, end.refunded);
  EXPECT_EQ(lease->reported_wall_seconds, 120);
  EXPECT_GT(lease->billed_total, 0);
  EXPECT_GT(lease->refunded, 0);

  absl::StatusOr<std::vector<UsageRow>> rows = store->ListUsage(lease_, 0, 10);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const core::UsageRecorded& u = *usage[i].second;
    EXPECT_EQ((*rows)[i].lease, u.lease);
    EXPECT_EQ((*rows)[i].sequence, usage[i].first->sequence);
    EXPECT_EQ((*rows)[i].time, usage[i].first->time_micros);
    EXPECT_EQ((*rows)[i].wall_seconds, u.wall_seconds);
    EXPECT_EQ((*rows)[i].cpu_seconds, u.cpu_seconds);
    EXPECT_EQ((*rows)[i].gpu_seconds, u.gpu_seconds);
    EXPECT_EQ((*rows)[i].peak_memory_mib, u.peak_memory_mib);
    EXPECT_EQ((*rows)[i].billed_total, u.billed_total);
  }

  // Both parties see it; an unrelated account does not.
  for (const core::AccountId party : {alice_, prov_}) {
    absl::StatusOr<std::vector<LeaseRow>> leases = store->ListLeases(party, 0, 10);
    ASSERT_TRUE(leases.ok()) << leases.status();
    ASSERT_EQ(leases->size(), 1u);
    EXPECT_EQ(leases->front(), *lease);
  }
  absl::StatusOr<std::vector<LeaseRow>> none = store->ListLeases(op_, 0, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(SqliteStoreTest, ActiveLeaseTracksTheCoresBill) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Everything up to the second usage report: the lease is still active.
  std::vector<AppliedCommand> prefix;
  for (const AppliedCommand& command : history()) {
    if (command.time_micros > time_b_) break;
    prefix.push_back(command);
  }
  ASSERT_TRUE(store->Project(prefix).ok());
  absl::StatusOr<LeaseRow> lease = store->GetLease(lease_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->status, LeaseStatus::kActive);
  EXPECT_FALSE(lease->end_reason.has_value());
  EXPECT_EQ(lease->billed_seconds, 120);
  const auto usage = EventsOf<core::UsageRecorded>(history());
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(lease->billed_total, usage.back().second->billed_total);
  // 0.1 credits per slot-hour, 2 slots, 120 s.
  EXPECT_EQ(lease->billed_total, 100'000 * 2 * 120 / 3600);
}

TEST_F(SqliteStoreTest, LedgerEntriesMatchTransfersAndSumToEachBalance) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const auto transfers = EventsOf<core::LedgerTransfer>(history());
  ASSERT_FALSE(transfers.empty());
  for (const core::AccountId owner : testing::AllOwners(x())) {
    SCOPED_TRACE("owner " + std::to_string(owner));
    const std::vector<LedgerEntryRow> rows = testing::ReadAllPages<LedgerEntryRow>(
        [&](uint64_t after, size_t n) { return store->ListLedgerEntries(owner, after, n); },
        [](const LedgerEntryRow& r) { return r.entry; }, 3);
    std::vector<LedgerEntryRow> expected;
    std::map<BalanceKind, Micros> from_events, from_rows;
    for (const auto& [command, t] : transfers) {
      if (t->from.owner != owner && t->to.owner != owner) continue;
      expected.push_back(LedgerEntryRow{t->entry, command->sequence, command->time_micros, t->from,
                                        t->to, t->amount, t->kind, t->reference});
      AddDeltas(*t, owner, &from_events);
    }
    EXPECT_EQ(rows, expected);
    for (const LedgerEntryRow& row : rows) {
      AddDeltas(
          core::LedgerTransfer{row.entry, row.from, row.to, row.amount, row.kind, row.reference},
          owner, &from_rows);
    }
    for (const BalanceKind kind : testing::AllKinds()) {
      EXPECT_EQ(from_rows[kind], x().Balance({owner, kind})) << core::BalanceKindName(kind);
      EXPECT_EQ(from_events[kind], x().Balance({owner, kind})) << core::BalanceKindName(kind);
    }
  }
  ExpectBalancesEqualCore(*store, x());
}

TEST_F(SqliteStoreTest, OrdersFollowTheirEventsAndRejectionsAreNotOrders) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<std::vector<OrderRow>> alice = store->ListOrders(alice_, std::nullopt, 0, 10);
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_EQ(alice->size(), 2u);  // The rejected fok is not an order.
  const OrderRow& filled = (*alice)[0];
  EXPECT_EQ(filled.id, buy_order_);
  EXPECT_EQ(filled.side, Side::kBuy);
  EXPECT_EQ(filled.status, OrderStatus::kFilled);
  EXPECT_EQ(filled.quantity, 2);
  EXPECT_EQ(filled.filled, 2);
  EXPECT_EQ(filled.remaining, 0);
  EXPECT_EQ(filled.price, 100'000);
  const OrderRow& cancelled = (*alice)[1];
  EXPECT_EQ(cancelled.id, cancelled_order_);
  EXPECT_EQ(cancelled.status, OrderStatus::kCancelled);
  EXPECT_EQ(cancelled.cancel_reason, "requested");
  EXPECT_EQ(cancelled.remaining, 0);
  EXPECT_EQ(cancelled.filled, 0);
  EXPECT_GT(cancelled.updated_sequence, cancelled.created_sequence);

  absl::StatusOr<std::vector<OrderRow>> open = store->ListOrders(prov_, OrderStatus::kOpen, 0, 10);
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ(open->front().id, sell_order_);
  EXPECT_EQ(open->front().remaining, x().orders().at(sell_order_).remaining);
  EXPECT_EQ(open->front().filled, 2);
  absl::StatusOr<std::vector<OrderRow>> none = store->ListOrders(alice_, OrderStatus::kOpen, 0, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  absl::StatusOr<std::vector<OrderRow>> expired =
      store->ListOrders(alice_, OrderStatus::kExpired, 0, 10);
  ASSERT_TRUE(expired.ok());
  EXPECT_TRUE(expired->empty());

  // The rejection has a row of its own, carrying the id its attempt used up: the one just
  // before the buy that followed it.
  ASSERT_TRUE(store->Close().ok());
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir_.File("store.db"), SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok()) << db.status();
  absl::StatusOr<sqlite::Statement> q = sqlite::Statement::Prepare(
      *db, "SELECT command, order_id, account, side, quantity, reason FROM order_rejections");
  ASSERT_TRUE(q.ok()) << q.status();
  absl::StatusOr<bool> row = q->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q->Text(0), "new");
  EXPECT_EQ(q->Int(1), buy_order_ - 1);
  EXPECT_EQ(q->Int(2), alice_);
  EXPECT_EQ(q->Text(3), "buy");
  EXPECT_EQ(q->Int(4), 10);
  EXPECT_EQ(q->Text(5), "fok_unfillable");
  row = q->Step();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(*row);
}

TEST_F(SqliteStoreTest, MachinesAndAccounts) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<std::vector<MachineRow>> machines = store->ListMachines(0, 10);
  ASSERT_TRUE(machines.ok()) << machines.status();
  ASSERT_EQ(machines->size(), 1u);
  EXPECT_EQ(machines->front().id, machine_);
  EXPECT_EQ(machines->front().owner, prov_);
  EXPECT_EQ(machines->front().name, "box");
  EXPECT_TRUE(machines->front().online);
  EXPECT_EQ(machines->front().registered_time, testing::kStartTime);
  absl::StatusOr<std::vector<AccountRow>> accounts = store->ListAccounts(0, 10);
  ASSERT_TRUE(accounts.ok()) << accounts.status();
  ASSERT_EQ(accounts->size(), 3u);
  EXPECT_EQ((*accounts)[0], (AccountRow{op_, "op", core::Role::kOperator, 1, testing::kStartTime}));
  EXPECT_EQ((*accounts)[1].name, "alice");
  EXPECT_EQ((*accounts)[2].role, core::Role::kProvider);
}

TEST_F(SqliteStoreTest, TasksAreRecordedWithTheirResult) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const auto assigned = EventsOf<core::TaskAssigned>(history());
  const auto finished = EventsOf<core::TaskFinished>(history());
  ASSERT_EQ(assigned.size(), 1u);
  ASSERT_EQ(finished.size(), 1u);
  absl::StatusOr<TaskRow> task = store->GetTask(lease_);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->lease, lease_);
  EXPECT_EQ(task->buyer, alice_);
  EXPECT_EQ(task->machine, machine_);
  EXPECT_EQ(task->spec, kTaskSpec);
  EXPECT_EQ(task->status, "finished");
  EXPECT_EQ(task->result, kTaskResult);
  EXPECT_EQ(task->assigned_sequence, assigned.front().first->sequence);
  EXPECT_EQ(task->finished_sequence, finished.front().first->sequence);
  EXPECT_EQ(task->finished_time, finished.front().first->time_micros);
  EXPECT_EQ(store->GetTask(lease_ + 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, MachineGoingOfflineIsRecorded) {
  d_.Advance(60 * kSecond);  // No heartbeat: the machine goes offline at the next command.
  d_.Run(core::Tick{});
  ASSERT_FALSE(x().machines().at(machine_).online);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<std::vector<MachineRow>> machines = store->ListMachines(0, 10);
  ASSERT_TRUE(machines.ok()) << machines.status();
  ASSERT_EQ(machines->size(), 1u);
  EXPECT_FALSE(machines->front().online);
  EXPECT_EQ(machines->front().last_status_time, d_.now());
  // Its sell was cancelled with it.
  absl::StatusOr<std::vector<OrderRow>> open = store->ListOrders(prov_, OrderStatus::kOpen, 0, 10);
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  ExpectBalancesEqualCore(*store, x());
}

TEST_F(SqliteStoreTest, StatementGivesOpeningAndClosingBalancesAndTheEntriesBetween) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  // Every command has its own time, so "after the command at time_a_" is "before time_a_ + 1".
  absl::StatusOr<AccountStatement> statement = store->Statement(alice_, time_a_ + 1, time_b_ + 1);
  ASSERT_TRUE(statement.ok()) << statement.status();
  EXPECT_FALSE(statement->truncated);
  std::map<BalanceKind, Micros> opening, closing;
  for (const StatementLine& line : statement->lines) {
    opening[line.kind] = line.opening;
    closing[line.kind] = line.closing;
  }
  for (const BalanceKind kind : testing::AllKinds()) {
    EXPECT_EQ(opening[kind], balances_a_[kind]) << core::BalanceKindName(kind);
    EXPECT_EQ(closing[kind], balances_b_[kind]) << core::BalanceKindName(kind);
  }
  std::vector<uint64_t> expected_entries;
  for (const auto& [command, t] : EventsOf<core::LedgerTransfer>(history())) {
    if (command->time_micros <= time_a_ || command->time_micros > time_b_) continue;
    if (t->from.owner == alice_ || t->to.owner == alice_) expected_entries.push_back(t->entry);
  }
  std::vector<uint64_t> entries;
  for (const LedgerEntryRow& row : statement->entries) entries.push_back(row.entry);
  EXPECT_EQ(entries, expected_entries);
  EXPECT_FALSE(entries.empty());  // Usage bills and fees moved alice's escrow.

  // Before everything: all zero; the whole history: zero to now.
  absl::StatusOr<AccountStatement> before = store->Statement(alice_, 0, testing::kStartTime);
  ASSERT_TRUE(before.ok()) << before.status();
  for (const StatementLine& line : before->lines) {
    EXPECT_EQ(line.opening, 0);
    EXPECT_EQ(line.closing, 0);
  }
  EXPECT_TRUE(before->entries.empty());
  absl::StatusOr<AccountStatement> all = store->Statement(alice_, 0, d_.now() + 1);
  ASSERT_TRUE(all.ok()) << all.status();
  for (const StatementLine& line : all->lines) {
    EXPECT_EQ(line.opening, 0);
    EXPECT_EQ(line.closing, x().Balance({alice_, line.kind}));
  }
  // An empty range: opening == closing.
  absl::StatusOr<AccountStatement> empty = store->Statement(alice_, time_a_ + 1, time_a_ + 1);
  ASSERT_TRUE(empty.ok()) << empty.status();
  for (const StatementLine& line : empty->lines) EXPECT_EQ(line.opening, line.closing);
  EXPECT_TRUE(empty->entries.empty());
}

// ---------------------------------------------------------------- resume, idempotence, rebuild

TEST_F(SqliteStoreTest, ReopenResumesAfterTheLastProjectedSequence) {
  const size_t half = history().size() / 2;
  const std::vector<AppliedCommand> first(history().begin(), history().begin() + half);
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Project(first).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), first.back().sequence);
  // The whole history again: only the newer half is applied (the older half would collide
  // with its own rows if it were applied twice).
  ASSERT_TRUE(store->Project(history()).ok());
  EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  EXPECT_EQ(store->batches_committed(), 1u);
  ExpectBalancesEqualCore(*store, x());

  auto reference = Open("reference.db");
  ASSERT_NE(reference, nullptr);
  ASSERT_TRUE(reference->Project(history()).ok());
  EXPECT_TRUE(Dump(*store, kMarkets, time_a_, time_b_) ==
              Dump(*reference, kMarkets, time_a_, time_b_));
}

TEST_F(SqliteStoreTest, ReprojectingAnAlreadyProjectedSequenceIsSkipped) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const StoreDump before = Dump(*store, kMarkets, time_a_, time_b_);
  const uint64_t batches = store->batches_committed();
  ASSERT_TRUE(store->Project(history()).ok());
  ASSERT_TRUE(store->Project({&history()[3], 1}).ok());
  ASSERT_TRUE(store->Enqueue(history()[5]).ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->batches_committed(), batches);  // Nothing was written.
  EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  EXPECT_TRUE(Dump(*store, kMarkets, time_a_, time_b_) == before);
}

TEST_F(SqliteStoreTest, RebuildFromScratchGivesIdenticalQueryResults) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const StoreDump before = Dump(*store, kMarkets, time_a_, time_b_);
  ASSERT_TRUE(store->Rebuild().ok());
  EXPECT_EQ(store->last_projected_sequence(), 0u);
  absl::StatusOr<std::vector<AccountRow>> accounts = store->ListAccounts(0, 10);
  ASSERT_TRUE(accounts.ok()) << accounts.status();
  EXPECT_TRUE(accounts->empty());
  ASSERT_TRUE(store->Project(history()).ok());
  const StoreDump after = Dump(*store, kMarkets, time_a_, time_b_);
  EXPECT_TRUE(after == before);
  EXPECT_EQ(after.trades.at("cpu").size(), 1u);  // Not trivially equal.
  // And the rebuilt store survives a reopen.
  ASSERT_TRUE(store->Close().ok());
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  EXPECT_TRUE(Dump(*store, kMarkets, time_a_, time_b_) == before);
}

// Version 4 changed only the ledger's indexes, so a version 3 file is migrated in place when
// opened: same rows, same answers, the new indexes, and projection goes on from where it was.
// It goes on to version 5 in the same transaction (sqlite_store_blob_test.cc tests that step).
TEST_F(SqliteStoreTest, VersionThreeStoreIsMigratedInPlace) {
  const std::vector<AppliedCommand> first(history().begin(), history().end() - 3);
  const std::vector<AppliedCommand> rest(history().end() - 3, history().end());
  StoreDump expected;
  {
    auto reference = Open("reference.db");
    ASSERT_NE(reference, nullptr);
    ASSERT_TRUE(reference->Project(history()).ok());
    expected = Dump(*reference, kMarkets, time_a_, time_b_);
  }
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Project(first).ok());
  }
  {
    // The version 3 indexes, as that schema created them, and no task_blobs (version 5).
    absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir_.File("store.db"), SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(db->Exec("DROP TABLE task_blobs; DROP INDEX ledger_entries_to; "
                         "CREATE INDEX ledger_entries_to ON ledger_entries (to_owner); "
                         "CREATE INDEX ledger_entries_time ON ledger_entries (time); "
                         "UPDATE meta SET value = 3 WHERE key = 'schema_version'")
                    .ok());
  }
  ASSERT_NE(IndexesOf(dir_.File("store.db")), IndexesOf(dir_.File("reference.db")));
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), first.back().sequence);
  ASSERT_TRUE(store->Project(rest).ok());
  EXPECT_TRUE(Dump(*store, kMarkets, time_a_, time_b_) == expected);
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(IndexesOf(dir_.File("store.db")), IndexesOf(dir_.File("reference.db")));
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir_.File("store.db"), SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  absl::StatusOr<sqlite::Statement> version =
      sqlite::Statement::Prepare(*db, "SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(version.ok() && *version->Step());
  EXPECT_EQ(version->Int(0), kSqliteSchemaVersion);
}

// ---------------------------------------------------------------- the background writer

TEST_F(SqliteStoreTest, EnqueuedCommandsAreProjectedInBatchesAndFlushWaitsForThem) {
  SqliteStoreOptions options;
  options.path = dir_.File("store.db");
  options.queue_commands_max = 2;  // Small, so the producer meets backpressure.
  options.batch_commands_max = 3;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  for (const AppliedCommand& command : history()) ASSERT_TRUE((*store)->Enqueue(command).ok());
  ASSERT_TRUE((*store)->Flush().ok());
  EXPECT_EQ((*store)->last_projected_sequence(), history().back().sequence);
  EXPECT_GE((*store)->batches_committed(), (history().size() + 2) / 3);
  ExpectBalancesEqualCore(**store, x());

  auto reference = Open("reference.db");
  ASSERT_NE(reference, nullptr);
  ASSERT_TRUE(reference->Project(history()).ok());
  EXPECT_TRUE(Dump(**store, kMarkets, time_a_, time_b_) ==
              Dump(*reference, kMarkets, time_a_, time_b_));
}

TEST_F(SqliteStoreTest, CloseProjectsWhatIsQueued) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (const AppliedCommand& command : history()) ASSERT_TRUE(store->Enqueue(command).ok());
    ASSERT_TRUE(store->Close().ok());
    EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  ExpectBalancesEqualCore(*store, x());
}

TEST_F(SqliteStoreTest, CallsAfterCloseFail) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Close().ok());
  ASSERT_TRUE(store->Close().ok());  // Idempotent.
  EXPECT_EQ(store->Enqueue(history()[0]).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Project({&history()[0], 1}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Rebuild().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->ListMachines(0, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->Flush().ok());
}

// ---------------------------------------------------------------- bad input

TEST_F(SqliteStoreTest, InconsistentEventsRollBackTheBatchAndStopProjection) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::vector<AppliedCommand> first(history().begin(), history().begin() + 5);
  ASSERT_TRUE(store->Project(first).ok());
  // A batch of two good commands and one whose trade names orders the store never saw.
  std::vector<AppliedCommand> batch(history().begin() + 5, history().begin() + 7);
  engine::Event trade;
  trade.type = engine::EventType::kTrade;
  trade.id = 777;
  trade.maker_id = 778;
  trade.quantity = 1;
  batch.push_back(AppliedCommand{
      batch.back().sequence + 1, batch.back().time_micros, {core::OrderEvent{"cpu", trade}}});
  const absl::Status status = store->Project(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("777"), std::string::npos) << status;
  EXPECT_NE(status.message().find("sequence " + std::to_string(batch.back().sequence)),
            std::string::npos)
      << status;
  // Nothing of the batch was kept; queries still answer from the last good batch.
  EXPECT_EQ(store->last_projected_sequence(), first.back().sequence);
  absl::StatusOr<std::vector<MachineRow>> machines = store->ListMachines(0, 10);
  ASSERT_TRUE(machines.ok());
  EXPECT_EQ(machines->size(), 1u);  // Registered in the first five commands.
  // Projection stays stopped with that first error.
  EXPECT_EQ(store->Project({&history()[5], 1}), status);
  EXPECT_EQ(store->Enqueue(history()[5]), status);
  EXPECT_EQ(store->Flush(), status);
  EXPECT_EQ(store->Close(), status);
  // A reopen resumes from the last good batch.
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), first.back().sequence);
  ASSERT_TRUE(store->Project(history()).ok());
  ExpectBalancesEqualCore(*store, x());
}

TEST_F(SqliteStoreTest, BackgroundProjectionErrorReachesFlushAndEnqueue) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  AppliedCommand bad{1, testing::kStartTime, {core::LeaseEnded{42, {}, 0, 0, 0, 0}}};
  ASSERT_TRUE(store->Enqueue(bad).ok());
  const absl::Status status = store->Flush();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(store->Enqueue(history()[1]), status);
  EXPECT_EQ(store->last_projected_sequence(), 0u);
}

TEST_F(SqliteStoreTest, TimeGoingBackwardsIsRefused) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project({&history()[0], 1}).ok());
  const AppliedCommand earlier{history()[0].sequence + 1, history()[0].time_micros - 1, {}};
  EXPECT_EQ(store->Project({&earlier, 1}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, BadQueryArgumentsAreInvalid) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  EXPECT_EQ(store->ListTrades("cpu", 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListTrades("cpu", 0, kListLimitMax + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListLedgerEntries(alice_, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Statement(alice_, 10, 9).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetLease(999).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<TradeRow>> unknown = store->ListTrades("no.such.market", 0, 10);
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->empty());
  // A cursor past everything (even past int64) is an empty page, not an error.
  absl::StatusOr<std::vector<LedgerEntryRow>> past =
      store->ListLedgerEntries(alice_, UINT64_MAX, 10);
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->empty());
}

}  // namespace
}  // namespace ocx::store
