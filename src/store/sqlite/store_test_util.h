// Helpers shared by the store tests: a temporary directory, a driver that runs a real
// core::Exchange and keeps what each command produced as AppliedCommands, a command
// generator for seeded random streams, comparisons of a Store with the core, and a look at
// a SqliteStore's file.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/base/testing/temp_dir.h"
#include "src/core/exchange.h"
#include "src/store/sqlite/sqlite_db.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/store.h"

namespace ocx::store::testing {

constexpr core::Timestamp kSecond = core::kMicrosPerSecond;
constexpr core::Micros kCredit = 1'000'000;
constexpr core::Timestamp kStartTime = 1'700'000'000 * kSecond;

// A fresh directory under the test temp dir, removed on destruction.
class TempDir : public base::testing::TempDir {
 public:
  TempDir() : base::testing::TempDir("ocx_store_test") {}
};

inline absl::StatusOr<std::unique_ptr<SqliteStore>> OpenAt(const std::string& path) {
  SqliteStoreOptions options;
  options.path = path;
  return SqliteStore::Open(options);
}

// The indexes a store file holds, by name, with their SQL.
inline std::map<std::string, std::string> IndexesOf(const std::string& path) {
  std::map<std::string, std::string> out;
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return out;
  absl::StatusOr<sqlite::Statement> q = sqlite::Statement::Prepare(
      *db, "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL");
  EXPECT_TRUE(q.ok()) << q.status();
  while (q.ok() && *q->Step()) out[q->Text(0)] = q->Text(1);
  return out;
}

// Runs commands through a real exchange, checking its invariants after each, and records
// every command as the projector would receive it.
class ExchangeDriver {
 public:
  ExchangeDriver() : x_(core::ExchangeConfig::Default()) {}

  // Applies `command` at the current time; returns what the store will be given.
  const AppliedCommand& Run(const core::CommandBody& command,
                            core::CommandResult* result = nullptr) {
    core::ApplyOutput out;
    x_.Apply(++sequence_, now_, command, &out);
    x_.CheckInvariants();
    if (result != nullptr) *result = out.result;
    history_.push_back(AppliedCommand{sequence_, now_, std::move(out.events)});
    return history_.back();
  }
  void Advance(core::Timestamp by) { now_ += by; }

  const core::Exchange& exchange() const { return x_; }
  core::Timestamp now() const { return now_; }
  uint64_t sequence() const { return sequence_; }
  const std::vector<AppliedCommand>& history() const { return history_; }

 private:
  core::Exchange x_;
  uint64_t sequence_ = 0;
  core::Timestamp now_ = kStartTime;
  std::vector<AppliedCommand> history_;
};

// The core's balance kinds, in enum order.
inline std::vector<core::BalanceKind> AllKinds() {
  std::vector<core::BalanceKind> kinds;
  for (int v = 0; core::BalanceKindName(static_cast<core::BalanceKind>(v)) != "unknown"; ++v) {
    kinds.push_back(static_cast<core::BalanceKind>(v));
  }
  return kinds;
}

// Account 0 (the system) and every account of the exchange.
inline std::vector<core::AccountId> AllOwners(const core::Exchange& x) {
  std::vector<core::AccountId> owners{0};
  for (const auto& [id, account] : x.accounts()) owners.push_back(id);
  return owners;
}

// Every balance of every owner in the store equals the core's (absent rows are 0).
inline void ExpectBalancesEqualCore(Store& store, const core::Exchange& x) {
  for (const core::AccountId owner : AllOwners(x)) {
    absl::StatusOr<std::vector<BalanceRow>> rows = store.Balances(owner);
    ASSERT_TRUE(rows.ok()) << rows.status();
    std::map<core::BalanceKind, core::Micros> stored;
    for (const BalanceRow& row : *rows) stored[row.kind] = row.amount;
    for (const core::BalanceKind kind : AllKinds()) {
      ASSERT_EQ(stored[kind], x.Balance({owner, kind}))
          << "owner " << owner << " kind " << core::BalanceKindName(kind) << " after sequence "
          << x.last_sequence();
    }
  }
}

// Reads every page of a keyset-paginated list. `key` gives a row's cursor.
template <typename Row, typename List, typename Key>
std::vector<Row> ReadAllPages(List list, Key key, size_t page = 7) {
  std::vector<Row> rows;
  uint64_t after = 0;
  for (;;) {
    absl::StatusOr<std::vector<Row>> got = list(after, page);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return rows;
    for (Row& row : *got) {
      EXPECT_GT(static_cast<uint64_t>(key(row)), after) << "pages must ascend";
      after = static_cast<uint64_t>(key(row));
      rows.push_back(std::move(row));
    }
    if (got->size() < page) return rows;
  }
}

// Everything the store answers about a set of accounts and markets, for comparing stores.
struct StoreDump {
  std::vector<AccountRow> accounts;
  std::map<core::AccountId, std::vector<BalanceRow>> balances;
  std::map<core::AccountId, std::vector<LedgerEntryRow>> entries;
  std::map<core::AccountId, std::vector<OrderRow>> orders;
  std::map<core::AccountId, std::vector<OrderRow>> open_orders;
  std::map<core::AccountId, std::vector<LeaseRow>> leases;
  std::map<core::AccountId, AccountStatement> statements;
  std::map<std::string, std::vector<TradeRow>> trades;
  std::map<core::LeaseId, std::vector<UsageRow>> usage;
  std::vector<MachineRow> machines;
  std::map<core::AccountId, std::vector<JobRow>> jobs;  // ListJobs: without tasks.
  std::map<core::JobId, JobRow> job_details;            // GetJob: with tasks.
  bool operator==(const StoreDump&) const = default;
};

inline StoreDump Dump(Store& store, const std::vector<std::string>& markets,
                      core::Timestamp statement_from, core::Timestamp statement_to) {
  StoreDump dump;
  dump.accounts = ReadAllPages<AccountRow>(
      [&](uint64_t after, size_t n) {
        return store.ListAccounts(static_cast<core::AccountId>(after), n);
      },
      [](const AccountRow& r) { return r.id; });
  std::vector<core::AccountId> owners{0};
  for (const AccountRow& account : dump.accounts) owners.push_back(account.id);
  for (const core::AccountId owner : owners) {
    absl::StatusOr<std::vector<BalanceRow>> balances = store.Balances(owner);
    EXPECT_TRUE(balances.ok()) << balances.status();
    if (balances.ok()) dump.balances[owner] = *balances;
    dump.entries[owner] = ReadAllPages<LedgerEntryRow>(
        [&](uint64_t after, size_t n) { return store.ListLedgerEntries(owner, after, n); },
        [](const LedgerEntryRow& r) { return r.entry; }, 50);
    dump.orders[owner] = ReadAllPages<OrderRow>(
        [&](uint64_t after, size_t n) {
          return store.ListOrders(owner, std::nullopt, static_cast<core::OrderId>(after), n);
        },
        [](const OrderRow& r) { return r.id; });
    dump.open_orders[owner] = ReadAllPages<OrderRow>(
        [&](uint64_t after, size_t n) {
          return store.ListOrders(owner, OrderStatus::kOpen, static_cast<core::OrderId>(after), n);
        },
        [](const OrderRow& r) { return r.id; });
    dump.leases[owner] = ReadAllPages<LeaseRow>(
        [&](uint64_t after, size_t n) { return store.ListLeases(owner, after, n); },
        [](const LeaseRow& r) { return r.id; });
    dump.jobs[owner] = ReadAllPages<JobRow>(
        [&](uint64_t after, size_t n) { return store.ListJobs(owner, after, n); },
        [](const JobRow& r) { return r.id; }, 3);
    for (const JobRow& job : dump.jobs[owner]) {
      absl::StatusOr<JobRow> detail = store.GetJob(job.id);
      EXPECT_TRUE(detail.ok()) << detail.status();
      if (detail.ok()) dump.job_details[job.id] = *detail;
    }
    absl::StatusOr<AccountStatement> statement =
        store.Statement(owner, statement_from, statement_to);
    EXPECT_TRUE(statement.ok()) << statement.status();
    if (statement.ok()) dump.statements[owner] = *statement;
  }
  for (const std::string& market : markets) {
    dump.trades[market] = ReadAllPages<TradeRow>(
        [&](uint64_t after, size_t n) { return store.ListTrades(market, after, n); },
        [](const TradeRow& r) { return r.id; });
  }
  for (const auto& [owner, leases] : dump.leases) {
    for (const LeaseRow& lease : leases) {
      dump.usage[lease.id] = ReadAllPages<UsageRow>(
          [&](uint64_t after, size_t n) { return store.ListUsage(lease.id, after, n); },
          [](const UsageRow& r) { return r.sequence; });
    }
  }
  dump.machines = ReadAllPages<MachineRow>(
      [&](uint64_t after, size_t n) { return store.ListMachines(after, n); },
      [](const MachineRow& r) { return r.id; });
  return dump;
}

// A live job of the core and the store's row for it agree: what was submitted, and every
// task's state, attempts, order, lease and machine.
inline void ExpectJobEqualsCore(const JobRow& row, const core::Job& job) {
  SCOPED_TRACE("job " + std::to_string(job.id));
  EXPECT_EQ(row.id, job.id);
  EXPECT_EQ(row.owner, job.spec.actor);
  EXPECT_EQ(row.client_job_id, job.spec.client_job_id);
  EXPECT_EQ(row.market, job.spec.market);
  EXPECT_EQ(row.slots_per_task, job.spec.slots_per_task);
  EXPECT_EQ(row.tasks_count, job.spec.tasks);
  EXPECT_EQ(row.max_price, job.spec.max_price);
  EXPECT_EQ(row.max_hours, job.spec.max_hours);
  EXPECT_EQ(row.constraints, job.spec.constraints);
  EXPECT_EQ(row.task_spec, job.spec.task_spec);
  EXPECT_EQ(row.state, core::JobState::kActive);
  EXPECT_EQ(row.submitted_time, job.submitted);
  EXPECT_EQ(row.end_sequence, 0u);
  EXPECT_EQ(row.end_time, 0);
  ASSERT_EQ(row.tasks.size(), job.tasks.size());
  for (size_t i = 0; i < job.tasks.size(); ++i) {
    SCOPED_TRACE("task " + std::to_string(i));
    const JobTaskRow& t = row.tasks[i];
    const core::JobTask& c = job.tasks[i];
    EXPECT_EQ(t.index, static_cast<int32_t>(i));
    EXPECT_EQ(t.state, c.state) << core::JobTaskStateName(t.state) << " vs "
                                << core::JobTaskStateName(c.state);
    EXPECT_EQ(t.attempts, c.attempts);
    EXPECT_EQ(t.order, c.order);
    EXPECT_EQ(t.lease, c.lease);
    EXPECT_EQ(t.machine, c.machine);
  }
}

// Seeded commands for random streams (after the core's own random test): accounts 1 (an
// operator), 2-6 (consumers), 7-9 (providers), machines 1-4, both markets; now and then a
// job (submitted, cancelled, its tasks finished by their machines).
class CommandGenerator {
 public:
  explicit CommandGenerator(uint64_t seed) : rng_(seed) {}

  std::vector<core::CommandBody> Setup() {
    std::vector<core::CommandBody> out;
    out.push_back(core::CreateAccount{0, "op", core::Role::kOperator, {}});
    for (int i = 0; i < 5; ++i) {
      out.push_back(core::CreateAccount{0, "c" + std::to_string(i), core::Role::kConsumer, {}});
    }
    for (int i = 0; i < 3; ++i) {
      out.push_back(core::CreateAccount{0, "p" + std::to_string(i), core::Role::kProvider, {}});
    }
    for (core::AccountId a = 2; a <= 6; ++a) out.push_back(core::Deposit{1, a, 50 * kCredit});
    for (int i = 0; i < 4; ++i) {
      core::RegisterMachine m;
      m.actor = static_cast<core::AccountId>(7 + i % 3);
      m.spec.name = "m" + std::to_string(i);
      m.spec.capacity["cpu"] = 8 + i;
      m.spec.capacity["gpu.h100"] = i % 2;
      out.push_back(m);
    }
    return out;
  }

  core::CommandBody Next(const core::Exchange& x, core::Timestamp now) {
    using engine::Side;
    const uint64_t roll = rng_.Below(100);
    const auto consumer = static_cast<core::AccountId>(rng_.Between(2, 6));
    const auto provider = static_cast<core::AccountId>(rng_.Between(7, 9));
    const auto machine = static_cast<core::MachineId>(rng_.Between(1, 4));
    if (roll < 15) {
      core::MachineId stalest = machine;
      core::Timestamp oldest = INT64_MAX;
      for (const auto& [id, m] : x.machines()) {
        if (m.last_heartbeat < oldest) {
          oldest = m.last_heartbeat;
          stalest = id;
        }
      }
      return core::Heartbeat{rng_.Percent(80) ? stalest : machine};
    }
    if (roll < 45) {
      core::PlaceOrder c;
      c.market = rng_.Percent(85) ? "cpu" : "gpu.h100";
      c.client_order_id = "o" + std::to_string(++orders_);
      c.side = rng_.Percent(50) ? Side::kBuy : Side::kSell;
      c.actor = c.side == Side::kBuy ? consumer : provider;
      c.type = rng_.Percent(10) ? engine::OrderType::kMarket : engine::OrderType::kLimit;
      static constexpr engine::TimeInForce kTifs[] = {
          engine::TimeInForce::kGtc, engine::TimeInForce::kGtc, engine::TimeInForce::kIoc,
          engine::TimeInForce::kFok, engine::TimeInForce::kGtd};
      c.tif = kTifs[rng_.Below(5)];
      c.price = rng_.Between(90, 110) * 1000 + (rng_.Percent(3) ? 50 : 0);
      c.quantity = rng_.Between(rng_.Percent(2) ? -1 : 1, 4);
      c.max_hours = static_cast<int32_t>(rng_.Between(1, 3));
      if (c.side == Side::kBuy && rng_.Percent(20)) {
        c.lot = 2;
        c.quantity = 2 * rng_.Between(1, 2);
      }
      if (c.tif == engine::TimeInForce::kGtd) c.expiry = now + rng_.Between(1, 120) * kSecond;
      c.machine = c.side == Side::kSell ? machine : 0;
      return c;
    }
    if (roll < 55 && !x.orders().empty()) {
      const auto it = Pick(x.orders());
      return core::CancelOrder{rng_.Percent(90) ? it->second.account : consumer, it->first};
    }
    if (roll < 62 && !x.orders().empty()) {
      const auto it = Pick(x.orders());
      core::ReplaceOrder c{it->second.account, it->first, std::nullopt, std::nullopt};
      if (rng_.Percent(60)) c.price = rng_.Between(90, 110) * 1000 + (rng_.Percent(3) ? 50 : 0);
      if (rng_.Percent(60)) c.quantity = it->second.lot * rng_.Between(0, 3);
      return c;
    }
    if (roll < 85 && !x.leases().empty()) {
      const auto it = Pick(x.leases());
      const core::Lease& lease = it->second;
      const int64_t elapsed = (now - lease.start) / kSecond;
      const int64_t wall = std::max<int64_t>(
          lease.reported_wall_seconds, elapsed - rng_.Between(0, 3) + (rng_.Percent(5) ? 30 : 0));
      return core::ReportUsage{rng_.Percent(95) ? lease.machine : machine,
                               it->first,
                               wall,
                               wall * rng_.Between(0, 1),
                               rng_.Between(0, 2048),
                               0};
    }
    if (roll < 90 && !x.leases().empty()) {
      const auto it = Pick(x.leases());
      switch (rng_.Below(3)) {
        case 0:
          return core::EndLease{it->second.buyer, 0, it->first, core::LeaseEndReason::kReleased};
        case 1:
          return core::EndLease{it->second.seller, 0, it->first, core::LeaseEndReason::kReclaimed};
        default:
          return core::EndLease{0, it->second.machine, it->first, core::LeaseEndReason::kFinished};
      }
    }
    if (roll < 93) {
      return core::Withdraw{1, consumer, rng_.Between(1, 2 * kCredit),
                            core::BalanceKind::kAvailable};
    }
    if (roll < 95) {
      return core::Withdraw{1, provider, rng_.Between(1, 200'000), core::BalanceKind::kEarnings};
    }
    if (roll < 97) return core::Deposit{1, consumer, rng_.Between(1, 10 * kCredit)};
    if (roll < 98) {
      core::SubmitJob c;
      c.actor = consumer;
      c.client_job_id = "j" + std::to_string(++jobs_);
      c.market = "cpu";
      c.slots_per_task = rng_.Between(1, 2);
      c.tasks = static_cast<int32_t>(rng_.Between(1, 3));
      c.max_price = rng_.Between(95, 110) * 1000;
      c.max_hours = static_cast<int32_t>(rng_.Between(1, 2));
      c.task_spec = R"({"command":["true"]})";
      return c;
    }
    if (roll < 99 && !x.open_tasks().empty() && rng_.Percent(60)) {
      const auto it = Pick(x.open_tasks());
      return core::FinishTask{it->second.machine, it->first, R"({"status":"succeeded"})"};
    }
    if (roll < 99 && !x.jobs().empty()) {
      const auto it = Pick(x.jobs());
      return core::CancelJob{rng_.Percent(90) ? it->second.spec.actor : consumer, it->first};
    }
    return core::Tick{};
  }

  // Mostly sub-second steps; now and then a gap long enough for machines to go offline, and
  // rarely one of hours, so that leases run into their max_hours.
  core::Timestamp NextStep() {
    if (rng_.Below(1000) < 5) return rng_.Between(3600, 7200) * kSecond;
    return rng_.Percent(1) ? rng_.Between(10, 20) * kSecond : rng_.Between(0, 1'000'000);
  }

  base::Rng& rng() { return rng_; }

 private:
  template <typename Map>
  typename Map::const_iterator Pick(const Map& map) {
    auto it = map.begin();
    std::advance(it, static_cast<ptrdiff_t>(rng_.Below(map.size())));
    return it;
  }

  base::Rng rng_;
  int orders_ = 0;
  int jobs_ = 0;
};

}  // namespace ocx::store::testing
