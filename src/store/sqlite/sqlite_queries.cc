// SqliteStore's queries: the reader's prepared statements, the row readers and every list
// and get of the Store interface, on the read connection (guarded by read_mu_).
#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "src/base/sha256.h"
#include "src/base/status.h"
#include "src/core/exchange.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/sqlite_store_internal.h"

namespace ocx::store {

using internal::Db;
using internal::Key;
using internal::ReadInt;
using internal::ResetOnExit;
using internal::SideName;
using internal::Stmt;

namespace {

// The value of E whose `name_of` is `name`. Walks every value of the (uint8_t-based) enum
// until the naming function stops knowing it, so no value count is repeated here.
template <typename E>
bool ParseName(std::string_view name, std::string_view (*name_of)(E), E* out) {
  for (int v = 0; v <= std::numeric_limits<uint8_t>::max(); ++v) {
    const E value = static_cast<E>(v);
    const std::string_view candidate = name_of(value);
    if (candidate == "unknown") return false;
    if (candidate == name) {
      *out = value;
      return true;
    }
  }
  return false;
}

template <typename E>
absl::Status ReadEnum(const Stmt& row, int column, std::string_view (*name_of)(E), E* out,
                      std::string_view what) {
  const std::string name = row.Text(column);
  if (!ParseName(name, name_of, out)) {
    return absl::DataLossError("store: unknown " + std::string(what) + " '" + name + "'");
  }
  return absl::OkStatus();
}

absl::Status CheckLimit(size_t limit) {
  if (limit == 0 || limit > kListLimitMax) {
    return absl::InvalidArgumentError("limit must be from 1 to " + std::to_string(kListLimitMax) +
                                      ", got " + std::to_string(limit));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- columns and row readers

constexpr char kEntryColumns[] =
    "entry, seq, time, from_owner, from_kind, to_owner, to_kind, amount, kind, reference";
constexpr char kTradeColumns[] =
    "id, seq, time, market, taker_order, maker_order, taker_side, buyer, seller, price, "
    "quantity, machine, lease";
constexpr char kOrderColumns[] =
    "id, market, side, account, price, quantity, remaining, filled, status, cancel_reason, "
    "created_seq, created_time, updated_seq, updated_time";
constexpr char kLeaseColumns[] =
    "id, buyer, seller, machine, market, slots, price, max_hours, start_time, start_seq, escrow, "
    "buy_order, sell_order, billed_total, billed_seconds, reported_wall_seconds, status, "
    "end_reason, end_time, end_seq, refunded";
constexpr char kUsageColumns[] =
    "lease, seq, time, wall_seconds, cpu_seconds, gpu_seconds, peak_memory_mib, billed_total";
constexpr char kMachineColumns[] =
    "id, owner, name, online, registered_seq, registered_time, last_status_time";
constexpr char kJobColumns[] =
    "id, owner, client_job_id, market, slots_per_task, tasks_count, max_price, max_hours, "
    "constraints, task_spec, state, submitted_seq, submitted_time, end_seq, end_time";
constexpr char kJobTaskColumns[] = "idx, state, attempts, order_id, lease, machine";

absl::Status ReadRow(const Stmt& r, AccountRow* out) {
  out->id = static_cast<core::AccountId>(r.Int(0));
  out->name = r.Text(1);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 2, &core::RoleName, &out->role, "role"));
  out->created_sequence = static_cast<uint64_t>(r.Int(3));
  out->created_time = r.Int(4);
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, LedgerEntryRow* out) {
  out->entry = static_cast<uint64_t>(r.Int(0));
  out->sequence = static_cast<uint64_t>(r.Int(1));
  out->time = r.Int(2);
  out->from.owner = static_cast<core::AccountId>(r.Int(3));
  OCX_RETURN_IF_ERROR(ReadEnum(r, 4, &core::BalanceKindName, &out->from.kind, "balance kind"));
  out->to.owner = static_cast<core::AccountId>(r.Int(5));
  OCX_RETURN_IF_ERROR(ReadEnum(r, 6, &core::BalanceKindName, &out->to.kind, "balance kind"));
  out->amount = r.Int(7);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 8, &core::TransferKindName, &out->kind, "transfer kind"));
  out->reference = static_cast<uint64_t>(r.Int(9));
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, TradeRow* out) {
  out->id = static_cast<uint64_t>(r.Int(0));
  out->sequence = static_cast<uint64_t>(r.Int(1));
  out->time = r.Int(2);
  out->market = r.Text(3);
  out->taker_order = r.Int(4);
  out->maker_order = r.Int(5);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 6, &SideName, &out->taker_side, "side"));
  out->buyer = static_cast<core::AccountId>(r.Int(7));
  out->seller = static_cast<core::AccountId>(r.Int(8));
  out->price = r.Int(9);
  out->quantity = r.Int(10);
  out->machine = static_cast<core::MachineId>(r.Int(11));
  out->lease = static_cast<core::LeaseId>(r.Int(12));
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, OrderRow* out) {
  out->id = r.Int(0);
  out->market = r.Text(1);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 2, &SideName, &out->side, "side"));
  out->account = static_cast<core::AccountId>(r.Int(3));
  out->price = r.Int(4);
  out->quantity = r.Int(5);
  out->remaining = r.Int(6);
  out->filled = r.Int(7);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 8, &OrderStatusName, &out->status, "order status"));
  out->cancel_reason = r.Text(9);
  out->created_sequence = static_cast<uint64_t>(r.Int(10));
  out->created_time = r.Int(11);
  out->updated_sequence = static_cast<uint64_t>(r.Int(12));
  out->updated_time = r.Int(13);
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, TaskRow* out) {
  out->lease = static_cast<core::LeaseId>(r.Int(0));
  out->buyer = static_cast<core::AccountId>(r.Int(1));
  out->machine = static_cast<core::MachineId>(r.Int(2));
  out->spec = r.Text(3);
  out->status = r.Text(4);
  out->result = r.Text(5);
  out->assigned_sequence = static_cast<uint64_t>(r.Int(6));
  out->assigned_time = r.Int(7);
  out->finished_sequence = static_cast<uint64_t>(r.Int(8));
  out->finished_time = r.Int(9);
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, LeaseRow* out) {
  out->id = static_cast<core::LeaseId>(r.Int(0));
  out->buyer = static_cast<core::AccountId>(r.Int(1));
  out->seller = static_cast<core::AccountId>(r.Int(2));
  out->machine = static_cast<core::MachineId>(r.Int(3));
  out->market = r.Text(4);
  out->slots = r.Int(5);
  out->price = r.Int(6);
  out->max_hours = static_cast<int32_t>(r.Int(7));
  out->start = r.Int(8);
  out->start_sequence = static_cast<uint64_t>(r.Int(9));
  out->escrow = r.Int(10);
  out->buy_order = r.Int(11);
  out->sell_order = r.Int(12);
  out->billed_total = r.Int(13);
  out->billed_seconds = r.Int(14);
  out->reported_wall_seconds = r.Int(15);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 16, &LeaseStatusName, &out->status, "lease status"));
  out->end_reason.reset();
  if (!r.IsNull(17)) {
    core::LeaseEndReason reason{};
    OCX_RETURN_IF_ERROR(ReadEnum(r, 17, &core::LeaseEndReasonName, &reason, "end reason"));
    out->end_reason = reason;
  }
  out->end_time = r.Int(18);  // NULL reads as 0.
  out->end_sequence = static_cast<uint64_t>(r.Int(19));
  out->refunded = r.Int(20);
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, UsageRow* out) {
  out->lease = static_cast<core::LeaseId>(r.Int(0));
  out->sequence = static_cast<uint64_t>(r.Int(1));
  out->time = r.Int(2);
  out->wall_seconds = r.Int(3);
  out->cpu_seconds = r.Int(4);
  out->gpu_seconds = r.Int(5);
  out->peak_memory_mib = r.Int(6);
  out->billed_total = r.Int(7);
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, MachineRow* out) {
  out->id = static_cast<core::MachineId>(r.Int(0));
  out->owner = static_cast<core::AccountId>(r.Int(1));
  out->name = r.Text(2);
  out->online = r.Int(3) != 0;
  out->registered_sequence = static_cast<uint64_t>(r.Int(4));
  out->registered_time = r.Int(5);
  out->last_status_time = r.Int(6);
  return absl::OkStatus();
}

// Without its tasks (read separately, by job_tasks).
absl::Status ReadRow(const Stmt& r, JobRow* out) {
  out->id = static_cast<core::JobId>(r.Int(0));
  out->owner = static_cast<core::AccountId>(r.Int(1));
  out->client_job_id = r.Text(2);
  out->market = r.Text(3);
  out->slots_per_task = r.Int(4);
  out->tasks_count = static_cast<int32_t>(r.Int(5));
  out->max_price = r.Int(6);
  out->max_hours = static_cast<int32_t>(r.Int(7));
  out->constraints = r.Text(8);
  out->task_spec = r.Text(9);
  OCX_RETURN_IF_ERROR(ReadEnum(r, 10, &core::JobStateName, &out->state, "job state"));
  out->submitted_sequence = static_cast<uint64_t>(r.Int(11));
  out->submitted_time = r.Int(12);
  out->end_sequence = static_cast<uint64_t>(r.Int(13));  // NULL reads as 0.
  out->end_time = r.Int(14);
  out->tasks.clear();
  return absl::OkStatus();
}

absl::Status ReadRow(const Stmt& r, JobTaskRow* out) {
  out->index = static_cast<int32_t>(r.Int(0));
  OCX_RETURN_IF_ERROR(ReadEnum(r, 1, &core::JobTaskStateName, &out->state, "job task state"));
  out->attempts = static_cast<int32_t>(r.Int(2));
  out->order = r.Int(3);
  out->lease = static_cast<core::LeaseId>(r.Int(4));
  out->machine = static_cast<core::MachineId>(r.Int(5));
  return absl::OkStatus();
}

// Steps a bound statement to the end, reading every row; resets it on the way out.
template <typename Row>
absl::StatusOr<std::vector<Row>> ReadAll(Stmt& statement) {
  ResetOnExit reset(statement);
  std::vector<Row> rows;
  for (;;) {
    OCX_ASSIGN_OR_RETURN(const bool more, statement.Step());
    if (!more) break;
    Row row;
    OCX_RETURN_IF_ERROR(ReadRow(statement, &row));
    rows.push_back(std::move(row));
  }
  return rows;
}

// The smallest entry bound B such that every ledger entry below B is before `time` and every
// entry at or after B is at or after it; `end_entry` (one past the last entry) when none is.
// A binary search over entry numbers, which is valid because time never decreases as the
// entry number grows; `entry_at_or_after` reads the first entry at or after a number (entry
// numbers need not be dense). About log2(entries) lookups by primary key.
absl::StatusOr<int64_t> FirstEntryAtOrAfter(Stmt& entry_at_or_after, core::Timestamp time,
                                            int64_t end_entry) {
  // Invariant: entries below `low` are before `time`; entries at or after `high` are not.
  int64_t low = 1;
  int64_t high = end_entry;
  while (low < high) {
    const int64_t middle = low + (high - low) / 2;
    ResetOnExit reset(entry_at_or_after);
    entry_at_or_after.Bind(1, middle);
    OCX_ASSIGN_OR_RETURN(const bool row, entry_at_or_after.Step());
    if (!row || entry_at_or_after.Int(1) >= time) {
      high = middle;
    } else {
      // Nothing lies between `middle` and this entry, which is before `time`.
      low = entry_at_or_after.Int(0) + 1;
    }
  }
  return low;
}

// A read transaction on the reader connection, so that several queries see one committed
// state. Ends (COMMIT of a read-only transaction) when it leaves scope.
class ReadTransaction {
 public:
  explicit ReadTransaction(Db& db) : db_(db) {}
  ~ReadTransaction() {
    if (open_) (void)db_.Exec("COMMIT");
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  absl::Status Begin() {
    OCX_RETURN_IF_ERROR(db_.Exec("BEGIN"));
    open_ = true;
    return absl::OkStatus();
  }

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace

absl::Status SqliteStore::PrepareReader() {
  auto r = std::make_unique<ReadStatements>();
  const Db& db = read_db_;
  auto prepare = [&db](Stmt* out, const std::string& sql) -> absl::Status {
    OCX_ASSIGN_OR_RETURN(*out, Stmt::Prepare(db, sql));
    return absl::OkStatus();
  };
  const std::string entries = kEntryColumns;
  OCX_RETURN_IF_ERROR(prepare(&r->list_accounts,
                              "SELECT id, name, role, created_seq, created_time FROM accounts "
                              "WHERE id > ?1 ORDER BY id LIMIT ?2"));
  OCX_RETURN_IF_ERROR(prepare(&r->balances, "SELECT kind, amount FROM balances WHERE owner = ?1"));
  // An account's entries: those out of it and those into it (each branch walks its index
  // from the cursor and stops at the limit), merged. A transfer between two balances of the
  // same account is taken from the first branch only.
  OCX_RETURN_IF_ERROR(prepare(
      &r->list_entries,
      "SELECT * FROM (SELECT " + entries +
          " FROM ledger_entries WHERE from_owner = ?1 AND entry > ?2 ORDER BY entry LIMIT ?3) "
          "UNION ALL SELECT * FROM (SELECT " +
          entries +
          " FROM ledger_entries WHERE to_owner = ?1 AND to_owner <> from_owner AND entry > ?2 "
          "ORDER BY entry LIMIT ?3) ORDER BY entry LIMIT ?3"));
  // Time is non-decreasing in entry order (the core's clock never goes back; the projection
  // checks it), so a time bound is an entry bound, found by a binary search over entries
  // (FirstEntryAtOrAfter) with this lookup.
  OCX_RETURN_IF_ERROR(prepare(&r->entry_at_or_after,
                              "SELECT entry, time FROM ledger_entries WHERE entry >= ?1 "
                              "ORDER BY entry LIMIT 1"));
  OCX_RETURN_IF_ERROR(
      prepare(&r->next_entry, "SELECT COALESCE(MAX(entry), 0) + 1 FROM ledger_entries"));
  // An account's balance changes since an entry: out of it; into it from itself (a hold, a
  // release: found through from_owner, since the to_owner index leaves them out); into it
  // from another account. The `to_owner <> from_owner` term is the partial index's own
  // condition, which SQLite must see written out to use that index.
  OCX_RETURN_IF_ERROR(prepare(&r->deltas_since,
                              "SELECT kind, SUM(delta) FROM ("
                              "SELECT from_kind AS kind, -amount AS delta FROM ledger_entries "
                              "WHERE from_owner = ?1 AND entry >= ?2 UNION ALL "
                              "SELECT to_kind, amount FROM ledger_entries "
                              "WHERE from_owner = ?1 AND to_owner = ?1 AND entry >= ?2 UNION ALL "
                              "SELECT to_kind, amount FROM ledger_entries "
                              "WHERE to_owner = ?1 AND to_owner <> from_owner AND entry >= ?2) "
                              "GROUP BY kind"));
  OCX_RETURN_IF_ERROR(
      prepare(&r->statement_entries,
              "SELECT * FROM (SELECT " + entries +
                  " FROM ledger_entries WHERE from_owner = ?1 AND entry >= ?2 AND entry < ?3 "
                  "ORDER BY entry LIMIT ?4) UNION ALL SELECT * FROM (SELECT " +
                  entries +
                  " FROM ledger_entries WHERE to_owner = ?1 AND to_owner <> from_owner "
                  "AND entry >= ?2 AND entry < ?3 ORDER BY entry LIMIT ?4) ORDER BY entry LIMIT "
                  "?4"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_trades, std::string("SELECT ") + kTradeColumns +
                                                   " FROM trades WHERE market = ?1 AND id > ?2 "
                                                   "ORDER BY id LIMIT ?3"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_orders, std::string("SELECT ") + kOrderColumns +
                                                   " FROM orders WHERE account = ?1 AND id > ?2 "
                                                   "ORDER BY id LIMIT ?3"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_orders_status,
                              std::string("SELECT ") + kOrderColumns +
                                  " FROM orders WHERE account = ?1 AND status = ?2 AND id > ?3 "
                                  "ORDER BY id LIMIT ?4"));
  const std::string leases = kLeaseColumns;
  OCX_RETURN_IF_ERROR(prepare(
      &r->list_leases,
      "SELECT * FROM (SELECT " + leases +
          " FROM leases WHERE buyer = ?1 AND id > ?2 ORDER BY id LIMIT ?3) "
          "UNION ALL SELECT * FROM (SELECT " +
          leases +
          " FROM leases WHERE seller = ?1 AND buyer <> ?1 AND id > ?2 ORDER BY id LIMIT ?3) "
          "ORDER BY id LIMIT ?3"));
  OCX_RETURN_IF_ERROR(prepare(&r->get_lease, "SELECT " + leases + " FROM leases WHERE id = ?1"));
  OCX_RETURN_IF_ERROR(prepare(&r->get_task,
                              "SELECT lease, buyer, machine, spec, status, COALESCE(result, ''), "
                              "assigned_seq, assigned_time, COALESCE(finished_seq, 0), "
                              "COALESCE(finished_time, 0) FROM tasks WHERE lease = ?1"));
  const std::string jobs = kJobColumns;
  OCX_RETURN_IF_ERROR(prepare(&r->get_job, "SELECT " + jobs + " FROM jobs WHERE id = ?1"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_job_tasks, std::string("SELECT ") + kJobTaskColumns +
                                                      " FROM job_tasks WHERE job = ?1 "
                                                      "ORDER BY idx"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_jobs, "SELECT " + jobs +
                                                 " FROM jobs WHERE owner = ?1 AND id > ?2 "
                                                 "ORDER BY id LIMIT ?3"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_usage, std::string("SELECT ") + kUsageColumns +
                                                  " FROM usage WHERE lease = ?1 AND seq > ?2 "
                                                  "ORDER BY seq LIMIT ?3"));
  OCX_RETURN_IF_ERROR(prepare(&r->list_machines, std::string("SELECT ") + kMachineColumns +
                                                     " FROM machines WHERE id > ?1 "
                                                     "ORDER BY id LIMIT ?2"));
  OCX_RETURN_IF_ERROR(prepare(&r->blob_granted, internal::kBlobGrantedSql));
  OCX_RETURN_IF_ERROR(prepare(&r->blob_referenced, internal::kBlobReferencedSql));
  read_ = std::move(r);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- queries

#define OCX_STORE_READ_LOCK()                      \
  std::lock_guard<std::mutex> read_lock(read_mu_); \
  if (read_ == nullptr) return absl::FailedPreconditionError("store is closed")

absl::StatusOr<std::vector<AccountRow>> SqliteStore::ListAccounts(core::AccountId after,
                                                                  size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_accounts.Bind(1, int64_t{after}).Bind(2, static_cast<int64_t>(limit));
  return ReadAll<AccountRow>(read_->list_accounts);
}

namespace {

// Rows of (kind, amount) into a map by kind.
absl::Status ReadKindAmounts(Stmt& statement, std::map<core::BalanceKind, core::Micros>* out) {
  ResetOnExit reset(statement);
  for (;;) {
    OCX_ASSIGN_OR_RETURN(const bool more, statement.Step());
    if (!more) return absl::OkStatus();
    core::BalanceKind kind{};
    OCX_RETURN_IF_ERROR(ReadEnum(statement, 0, &core::BalanceKindName, &kind, "balance kind"));
    (*out)[kind] += statement.Int(1);
  }
}

}  // namespace

absl::StatusOr<std::vector<BalanceRow>> SqliteStore::Balances(core::AccountId account) {
  OCX_STORE_READ_LOCK();
  std::map<core::BalanceKind, core::Micros> amounts;
  read_->balances.Bind(1, int64_t{account});
  OCX_RETURN_IF_ERROR(ReadKindAmounts(read_->balances, &amounts));
  std::vector<BalanceRow> rows;
  for (const auto& [kind, amount] : amounts) rows.push_back(BalanceRow{kind, amount});
  return rows;
}

absl::StatusOr<std::vector<LedgerEntryRow>> SqliteStore::ListLedgerEntries(core::AccountId account,
                                                                           uint64_t after,
                                                                           size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_entries.Bind(1, int64_t{account})
      .Bind(2, Key(after))
      .Bind(3, static_cast<int64_t>(limit));
  return ReadAll<LedgerEntryRow>(read_->list_entries);
}

absl::StatusOr<AccountStatement> SqliteStore::Statement(core::AccountId account,
                                                        core::Timestamp from_time,
                                                        core::Timestamp to_time) {
  if (from_time > to_time) {
    return absl::InvalidArgumentError("statement range: from_time " + std::to_string(from_time) +
                                      " is after to_time " + std::to_string(to_time));
  }
  OCX_STORE_READ_LOCK();
  ReadStatements& r = *read_;
  ReadTransaction transaction(read_db_);
  OCX_RETURN_IF_ERROR(transaction.Begin());

  // The range as entry numbers [from_entry, to_entry).
  OCX_ASSIGN_OR_RETURN(const int64_t end_entry, ReadInt(r.next_entry, 1));
  OCX_ASSIGN_OR_RETURN(const int64_t from_entry,
                       FirstEntryAtOrAfter(r.entry_at_or_after, from_time, end_entry));
  OCX_ASSIGN_OR_RETURN(const int64_t to_entry,
                       FirstEntryAtOrAfter(r.entry_at_or_after, to_time, end_entry));

  // Balances then = current balances minus what moved since (recent history only).
  std::map<core::BalanceKind, core::Micros> current, since_from, since_to;
  r.balances.Bind(1, int64_t{account});
  OCX_RETURN_IF_ERROR(ReadKindAmounts(r.balances, &current));
  r.deltas_since.Bind(1, int64_t{account}).Bind(2, from_entry);
  OCX_RETURN_IF_ERROR(ReadKindAmounts(r.deltas_since, &since_from));
  r.deltas_since.Bind(1, int64_t{account}).Bind(2, to_entry);
  OCX_RETURN_IF_ERROR(ReadKindAmounts(r.deltas_since, &since_to));

  AccountStatement statement;
  statement.account = account;
  statement.from_time = from_time;
  statement.to_time = to_time;
  for (const auto& [kind, amount] : current) {
    statement.lines.push_back(
        StatementLine{kind, amount - since_from[kind], amount - since_to[kind]});
  }
  r.statement_entries.Bind(1, int64_t{account})
      .Bind(2, from_entry)
      .Bind(3, to_entry)
      .Bind(4, static_cast<int64_t>(kStatementEntriesMax + 1));
  OCX_ASSIGN_OR_RETURN(statement.entries, ReadAll<LedgerEntryRow>(r.statement_entries));
  if (statement.entries.size() > kStatementEntriesMax) {
    statement.entries.resize(kStatementEntriesMax);
    statement.truncated = true;
  }
  return statement;
}

absl::StatusOr<std::vector<TradeRow>> SqliteStore::ListTrades(const std::string& market,
                                                              uint64_t after, size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_trades.Bind(1, market).Bind(2, Key(after)).Bind(3, static_cast<int64_t>(limit));
  return ReadAll<TradeRow>(read_->list_trades);
}

absl::StatusOr<std::vector<OrderRow>> SqliteStore::ListOrders(core::AccountId account,
                                                              std::optional<OrderStatus> status,
                                                              core::OrderId after, size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  if (status.has_value()) {
    read_->list_orders_status.Bind(1, int64_t{account})
        .Bind(2, OrderStatusName(*status))
        .Bind(3, after)
        .Bind(4, static_cast<int64_t>(limit));
    return ReadAll<OrderRow>(read_->list_orders_status);
  }
  read_->list_orders.Bind(1, int64_t{account}).Bind(2, after).Bind(3, static_cast<int64_t>(limit));
  return ReadAll<OrderRow>(read_->list_orders);
}

absl::StatusOr<std::vector<LeaseRow>> SqliteStore::ListLeases(core::AccountId account,
                                                              core::LeaseId after, size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_leases.Bind(1, int64_t{account})
      .Bind(2, Key(after))
      .Bind(3, static_cast<int64_t>(limit));
  return ReadAll<LeaseRow>(read_->list_leases);
}

absl::StatusOr<LeaseRow> SqliteStore::GetLease(core::LeaseId id) {
  OCX_STORE_READ_LOCK();
  read_->get_lease.Bind(1, Key(id));
  OCX_ASSIGN_OR_RETURN(std::vector<LeaseRow> rows, ReadAll<LeaseRow>(read_->get_lease));
  if (rows.empty()) return absl::NotFoundError("no lease " + std::to_string(id));
  return std::move(rows.front());
}

absl::StatusOr<TaskRow> SqliteStore::GetTask(core::LeaseId lease) {
  OCX_STORE_READ_LOCK();
  read_->get_task.Bind(1, Key(lease));
  OCX_ASSIGN_OR_RETURN(std::vector<TaskRow> rows, ReadAll<TaskRow>(read_->get_task));
  if (rows.empty()) return absl::NotFoundError("no task on lease " + std::to_string(lease));
  return std::move(rows.front());
}

absl::StatusOr<JobRow> SqliteStore::GetJob(core::JobId id) {
  OCX_STORE_READ_LOCK();
  ReadStatements& r = *read_;
  ReadTransaction transaction(read_db_);  // The job and its tasks from one committed state.
  OCX_RETURN_IF_ERROR(transaction.Begin());
  r.get_job.Bind(1, Key(id));
  OCX_ASSIGN_OR_RETURN(std::vector<JobRow> rows, ReadAll<JobRow>(r.get_job));
  if (rows.empty()) return absl::NotFoundError("no job " + std::to_string(id));
  JobRow job = std::move(rows.front());
  r.list_job_tasks.Bind(1, Key(id));
  OCX_ASSIGN_OR_RETURN(job.tasks, ReadAll<JobTaskRow>(r.list_job_tasks));
  return job;
}

absl::StatusOr<std::vector<JobRow>> SqliteStore::ListJobs(core::AccountId owner, core::JobId after,
                                                          size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_jobs.Bind(1, int64_t{owner}).Bind(2, Key(after)).Bind(3, static_cast<int64_t>(limit));
  return ReadAll<JobRow>(read_->list_jobs);
}

absl::StatusOr<std::vector<UsageRow>> SqliteStore::ListUsage(core::LeaseId lease, uint64_t after,
                                                             size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_usage.Bind(1, Key(lease)).Bind(2, Key(after)).Bind(3, static_cast<int64_t>(limit));
  return ReadAll<UsageRow>(read_->list_usage);
}

absl::StatusOr<std::vector<MachineRow>> SqliteStore::ListMachines(core::MachineId after,
                                                                  size_t limit) {
  OCX_RETURN_IF_ERROR(CheckLimit(limit));
  OCX_STORE_READ_LOCK();
  read_->list_machines.Bind(1, Key(after)).Bind(2, static_cast<int64_t>(limit));
  return ReadAll<MachineRow>(read_->list_machines);
}

namespace {

// No row holds anything but a digest: asking about something else is a caller's mistake.
absl::Status CheckDigest(const std::string& sha256) {
  if (base::IsSha256Hex(sha256)) return absl::OkStatus();
  return absl::InvalidArgumentError("a blob's digest is 64 lowercase hex digits (SHA-256)");
}

}  // namespace

absl::StatusOr<bool> SqliteStore::BlobGranted(const std::string& sha256, core::AccountId account) {
  OCX_RETURN_IF_ERROR(CheckDigest(sha256));
  OCX_STORE_READ_LOCK();
  read_->blob_granted.Bind(1, sha256).Bind(2, int64_t{account});
  OCX_ASSIGN_OR_RETURN(const int64_t granted, ReadInt(read_->blob_granted, 0));
  return granted != 0;
}

absl::StatusOr<bool> SqliteStore::BlobReferenced(const std::string& sha256, core::Timestamp since) {
  OCX_RETURN_IF_ERROR(CheckDigest(sha256));
  OCX_STORE_READ_LOCK();
  read_->blob_referenced.Bind(1, sha256).Bind(2, since);
  OCX_ASSIGN_OR_RETURN(const int64_t referenced, ReadInt(read_->blob_referenced, 0));
  return referenced != 0;
}

#undef OCX_STORE_READ_LOCK

}  // namespace ocx::store
