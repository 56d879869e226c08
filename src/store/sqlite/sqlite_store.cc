#include "src/store/sqlite/sqlite_store.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <utility>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/base/thread_name.h"
#include "src/core/exchange.h"
#include "src/engine/events.h"
#include "src/store/sqlite/schema.h"

namespace ocx::store {
namespace {

using sqlite::Db;
using sqlite::ResetOnExit;
using Stmt = sqlite::Statement;

// Busy waits happen only if another process holds the database's lock (one store per file).
constexpr int kBusyTimeoutMs = 5000;

constexpr char kMetaSchemaVersion[] = "schema_version";
constexpr char kMetaLastSequence[] = "last_sequence";
constexpr char kMetaLastTime[] = "last_time";

// ---------------------------------------------------------------- names

// The core's own enum names (src/core/exchange.h), and the store's for the rest. They are
// part of the format (docs/formats/store.md): never change them.
std::string_view SideName(engine::Side side) {
  switch (side) {
    case engine::Side::kBuy:
      return "buy";
    case engine::Side::kSell:
      return "sell";
  }
  return "unknown";
}

std::string_view CommandKindName(engine::CommandKind kind) {
  switch (kind) {
    case engine::CommandKind::kNew:
      return "new";
    case engine::CommandKind::kCancel:
      return "cancel";
    case engine::CommandKind::kReplace:
      return "replace";
  }
  return "unknown";
}

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

// Cursors and ids are unsigned in C++ and INTEGER (int64) in SQLite. Ids never reach 2^63;
// a cursor beyond it means "after everything".
int64_t Key(uint64_t value) {
  return static_cast<int64_t>(std::min<uint64_t>(value, std::numeric_limits<int64_t>::max()));
}

absl::Status CheckLimit(size_t limit) {
  if (limit == 0 || limit > kListLimitMax) {
    return absl::InvalidArgumentError("limit must be from 1 to " + std::to_string(kListLimitMax) +
                                      ", got " + std::to_string(limit));
  }
  return absl::OkStatus();
}

absl::Status Inconsistent(const AppliedCommand& command, const std::string& what) {
  return absl::FailedPreconditionError("store projection, sequence " +
                                       std::to_string(command.sequence) + ": " + what +
                                       " (events out of step with the store; rebuild it)");
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

// A single integer from a one-row query (or `fallback` when it returns no row or NULL).
absl::StatusOr<int64_t> ReadInt(Stmt& statement, int64_t fallback) {
  ResetOnExit reset(statement);
  OCX_ASSIGN_OR_RETURN(const bool row, statement.Step());
  if (!row || statement.IsNull(0)) return fallback;
  return statement.Int(0);
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

absl::Status CheckDirectory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError("store directory '" + dir + "' does not exist");
    }
    if (error == ENOTDIR) {
      return absl::FailedPreconditionError("store directory '" + dir +
                                           "' is not a directory (a part of it is a file)");
    }
    return absl::UnavailableError("store directory '" + dir + "': " + std::strerror(error));
  }
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError("store directory '" + dir + "' is not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError("store directory '" + dir +
                                       "' is not writable: " + std::strerror(errno));
  }
  return absl::OkStatus();
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

// ---------------------------------------------------------------- prepared statements

struct SqliteStore::WriteStatements {
  Stmt begin, commit, rollback, set_meta;
  Stmt insert_account;
  Stmt insert_entry, add_balance, touch_balance;
  Stmt insert_machine, set_machine_status;
  Stmt insert_order, insert_order_row, fill_order, end_order, replace_order, insert_rejection;
  Stmt insert_trade, link_trade;
  Stmt insert_lease, usage_lease, insert_usage, end_lease;
  Stmt insert_task, finish_task;
  Stmt insert_job, insert_job_task, change_job_task, end_job;
};

struct SqliteStore::ReadStatements {
  Stmt list_accounts, balances, list_entries;
  Stmt entry_at_or_after, next_entry, deltas_since, statement_entries;
  Stmt list_trades, list_orders, list_orders_status, list_leases, get_lease, list_usage;
  Stmt list_machines, get_task;
  Stmt get_job, list_job_tasks, list_jobs;
};

absl::Status SqliteStore::PrepareWriter() {
  auto w = std::make_unique<WriteStatements>();
  const Db& db = write_db_;
  auto prepare = [&db](Stmt* out, std::string_view sql) -> absl::Status {
    OCX_ASSIGN_OR_RETURN(*out, Stmt::Prepare(db, sql));
    return absl::OkStatus();
  };
  OCX_RETURN_IF_ERROR(prepare(&w->begin, "BEGIN IMMEDIATE"));
  OCX_RETURN_IF_ERROR(prepare(&w->commit, "COMMIT"));
  OCX_RETURN_IF_ERROR(prepare(&w->rollback, "ROLLBACK"));
  OCX_RETURN_IF_ERROR(prepare(&w->set_meta,
                              "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_account,
                              "INSERT INTO accounts (id, name, role, created_seq, created_time) "
                              "VALUES (?1, ?2, ?3, ?4, ?5)"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_entry,
                              "INSERT INTO ledger_entries (entry, seq, time, from_owner, "
                              "from_kind, to_owner, to_kind, amount, kind, reference) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  OCX_RETURN_IF_ERROR(prepare(&w->add_balance,
                              "INSERT INTO balances (owner, kind, amount) VALUES (?1, ?2, ?3) "
                              "ON CONFLICT (owner, kind) DO UPDATE SET amount = amount + "
                              "excluded.amount"));
  // A balance a batch touched whose net change is zero: it exists afterwards, as it would
  // had each transfer been applied alone, and an existing row is not rewritten.
  OCX_RETURN_IF_ERROR(prepare(&w->touch_balance,
                              "INSERT OR IGNORE INTO balances (owner, kind, amount) "
                              "VALUES (?1, ?2, 0)"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_machine,
                              "INSERT INTO machines (id, owner, name, online, registered_seq, "
                              "registered_time, last_status_time) "
                              "VALUES (?1, ?2, ?3, 0, ?4, ?5, ?5)"));
  OCX_RETURN_IF_ERROR(prepare(&w->set_machine_status,
                              "UPDATE machines SET online = ?2, last_status_time = ?3 "
                              "WHERE id = ?1"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_order,
                              "INSERT INTO orders (id, market, side, account, price, quantity, "
                              "remaining, filled, status, cancel_reason, created_seq, "
                              "created_time, updated_seq, updated_time) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0, 'open', NULL, ?7, ?8, ?7, "
                              "?8)"));
  // An order placed and changed within one command (an ioc order cancelled unfilled, one that
  // filled at once) is written once, as it stands at the command's end.
  OCX_RETURN_IF_ERROR(prepare(&w->insert_order_row,
                              "INSERT INTO orders (id, market, side, account, price, quantity, "
                              "remaining, filled, status, cancel_reason, created_seq, "
                              "created_time, updated_seq, updated_time) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, "
                              "?12)"));
  OCX_RETURN_IF_ERROR(prepare(&w->fill_order,
                              "UPDATE orders SET remaining = remaining - ?2, filled = filled + ?2, "
                              "status = CASE WHEN remaining = ?2 THEN 'filled' ELSE status END, "
                              "updated_seq = ?3, updated_time = ?4 "
                              "WHERE id = ?1 AND status = 'open' AND remaining >= ?2"));
  OCX_RETURN_IF_ERROR(prepare(&w->end_order,
                              "UPDATE orders SET remaining = remaining - ?2, status = ?3, "
                              "cancel_reason = ?4, updated_seq = ?5, updated_time = ?6 "
                              "WHERE id = ?1 AND status = 'open' AND remaining = ?2"));
  OCX_RETURN_IF_ERROR(prepare(&w->replace_order,
                              "UPDATE orders SET price = ?2, remaining = ?3, updated_seq = ?4, "
                              "updated_time = ?5 WHERE id = ?1 AND status = 'open'"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_rejection,
                              "INSERT INTO order_rejections (seq, time, market, command, "
                              "order_id, account, side, price, quantity, reason) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_trade,
                              "INSERT INTO trades (seq, time, market, taker_order, maker_order, "
                              "taker_side, buyer, seller, price, quantity, machine, lease) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)"));
  OCX_RETURN_IF_ERROR(
      prepare(&w->link_trade, "UPDATE trades SET lease = ?2 WHERE id = ?1 AND lease = 0"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_lease,
                              "INSERT INTO leases (id, buyer, seller, machine, market, slots, "
                              "price, max_hours, start_time, start_seq, escrow, buy_order, "
                              "sell_order, billed_total, billed_seconds, reported_wall_seconds, "
                              "status, end_reason, end_time, end_seq, refunded) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                              "0, 0, 0, 'active', NULL, NULL, NULL, NULL)"));
  // billed_seconds as the core keeps it (RULEBOOK 3): the reported wall time capped at
  // max_hours, never decreasing. LeaseEnded later gives the final figure itself.
  OCX_RETURN_IF_ERROR(prepare(&w->usage_lease,
                              "UPDATE leases SET billed_total = ?2, reported_wall_seconds = ?3, "
                              "billed_seconds = MAX(billed_seconds, MIN(?3, max_hours * 3600)) "
                              "WHERE id = ?1 AND status = 'active'"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_usage,
                              "INSERT INTO usage (lease, seq, time, wall_seconds, cpu_seconds, "
                              "gpu_seconds, peak_memory_mib, billed_total) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  OCX_RETURN_IF_ERROR(prepare(&w->end_lease,
                              "UPDATE leases SET status = 'ended', end_reason = ?2, "
                              "end_time = ?3, end_seq = ?4, billed_seconds = ?5, "
                              "billed_total = ?6, refunded = ?7 "
                              "WHERE id = ?1 AND status = 'active'"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_task,
                              "INSERT INTO tasks (lease, buyer, machine, spec, status, "
                              "assigned_seq, assigned_time) "
                              "VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)"));
  OCX_RETURN_IF_ERROR(prepare(&w->finish_task,
                              "UPDATE tasks SET status = ?2, result = ?3, finished_seq = ?4, "
                              "finished_time = ?5 WHERE lease = ?1 AND status = 'running'"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_job,
                              "INSERT INTO jobs (id, owner, client_job_id, market, "
                              "slots_per_task, tasks_count, max_price, max_hours, constraints, "
                              "task_spec, state, submitted_seq, submitted_time, end_seq, "
                              "end_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                              "'active', ?11, ?12, NULL, NULL)"));
  OCX_RETURN_IF_ERROR(prepare(&w->insert_job_task,
                              "INSERT INTO job_tasks (job, idx, state, attempts, order_id, lease, "
                              "machine) VALUES (?1, ?2, 'waiting', 0, 0, 0, 0)"));
  // Only a task still in play changes (waiting, running), and only in an active job: the
  // core ends a job after its last task is over.
  OCX_RETURN_IF_ERROR(prepare(&w->change_job_task,
                              "UPDATE job_tasks SET state = ?3, attempts = ?4, order_id = ?5, "
                              "lease = ?6, machine = ?7 "
                              "WHERE job = ?1 AND idx = ?2 AND state IN ('waiting', 'running') "
                              "AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND "
                              "state = 'active')"));
  OCX_RETURN_IF_ERROR(prepare(&w->end_job,
                              "UPDATE jobs SET state = ?2, end_seq = ?3, end_time = ?4 "
                              "WHERE id = ?1 AND owner = ?5 AND state = 'active'"));
  write_ = std::move(w);
  return absl::OkStatus();
}

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
  read_ = std::move(r);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- open and close

SqliteStore::SqliteStore(SqliteStoreOptions options) : options_(std::move(options)) {}

SqliteStore::~SqliteStore() { (void)Close(); }

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteStoreOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("store path is empty");
  if (options.queue_commands_max == 0 || options.batch_commands_max == 0) {
    return absl::InvalidArgumentError("queue_commands_max and batch_commands_max must be >= 1");
  }
  if (options.writer_nice < 0 || options.writer_nice > 19) {
    return absl::InvalidArgumentError("writer_nice must be from 0 to 19, not " +
                                      std::to_string(options.writer_nice));
  }
  OCX_RETURN_IF_ERROR(CheckDirectory(options.path));
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(options)));
  OCX_RETURN_IF_ERROR(store->Init());
  store->writer_ = std::thread([raw = store.get()] {
    base::NameThisThread("ocx-store");
    if (raw->options_.writer_nice > 0) {
      // Linux gives each thread its own nice value; raising it needs no privilege. A failure
      // only leaves the writer at the process's priority.
      (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), raw->options_.writer_nice);
    }
    raw->WriterLoop();
  });
  return store;
}

namespace {

absl::Status DropAllTables(Db& db) {
  std::vector<std::string> tables;
  {
    OCX_ASSIGN_OR_RETURN(Stmt list,
                         Stmt::Prepare(db,
                                       "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%'"));
    for (;;) {
      OCX_ASSIGN_OR_RETURN(const bool more, list.Step());
      if (!more) break;
      tables.push_back(list.Text(0));
    }
  }
  for (const std::string& table : tables) {
    std::string quoted = "\"";
    for (char c : table) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    OCX_RETURN_IF_ERROR(db.Exec("DROP TABLE " + quoted));
  }
  return absl::OkStatus();
}

absl::Status CreateSchema(Db& db) {
  OCX_RETURN_IF_ERROR(db.Exec(sqlite::kCreateSchemaSql));
  OCX_ASSIGN_OR_RETURN(Stmt meta, Stmt::Prepare(db,
                                                "INSERT INTO meta (key, value) VALUES "
                                                "(?1, ?2)"));
  OCX_RETURN_IF_ERROR(meta.Bind(1, kMetaSchemaVersion).Bind(2, kSqliteSchemaVersion).Run());
  OCX_RETURN_IF_ERROR(meta.Bind(1, kMetaLastSequence).Bind(2, int64_t{0}).Run());
  OCX_RETURN_IF_ERROR(meta.Bind(1, kMetaLastTime).Bind(2, int64_t{0}).Run());
  return absl::OkStatus();
}

// Runs `body` in an IMMEDIATE transaction on `db`, rolled back if it fails.
template <typename Body>
absl::Status InWriteTransaction(Db& db, Body body) {
  OCX_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (status.ok()) status = db.Exec("COMMIT");
  if (!status.ok() && sqlite3_get_autocommit(db.get()) == 0) (void)db.Exec("ROLLBACK");
  return status;
}

}  // namespace

absl::Status SqliteStore::Init() {
  const std::string& path = options_.path;
  OCX_ASSIGN_OR_RETURN(write_db_, Db::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  OCX_RETURN_IF_ERROR(write_db_.Exec("PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs)));
  {
    // The first read of the file: a file that is not a database fails here (DataLoss).
    OCX_ASSIGN_OR_RETURN(Stmt wal, Stmt::Prepare(write_db_, "PRAGMA journal_mode = WAL"));
    OCX_ASSIGN_OR_RETURN(const bool row, wal.Step());
    const std::string mode = row ? wal.Text(0) : "";
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          "store '" + path + "': SQLite could not switch to WAL mode (got '" + mode + "')");
    }
  }
  OCX_RETURN_IF_ERROR(write_db_.Exec("PRAGMA synchronous = NORMAL"));
  // 64 MiB of page cache for the writer (SQLite's default is 2 MiB): a batch of a few thousand
  // orders touches more index pages than 2 MiB holds, and SQLite then spills dirty pages
  // mid-transaction and reads pages back through the kernel (a profile of `ocx bench api`
  // showed both; the writer's CPU per order fell by about a tenth with the larger cache).
  OCX_RETURN_IF_ERROR(write_db_.Exec("PRAGMA cache_size = -65536"));

  // What is in the file: nothing (create), our tables (check the version), or something else.
  OCX_ASSIGN_OR_RETURN(Stmt tables, Stmt::Prepare(write_db_,
                                                  "SELECT COUNT(*), SUM(name = 'meta') FROM "
                                                  "sqlite_schema WHERE type = 'table'"));
  OCX_ASSIGN_OR_RETURN(const bool counted, tables.Step());
  OCX_ASSERT(counted);
  const int64_t table_count = tables.Int(0);
  const bool has_meta = tables.Int(1) > 0;
  tables.Reset();
  int64_t version = 0;
  if (has_meta) {
    OCX_ASSIGN_OR_RETURN(Stmt read, Stmt::Prepare(write_db_,
                                                  "SELECT value FROM meta WHERE "
                                                  "key = 'schema_version'"));
    OCX_ASSIGN_OR_RETURN(version, ReadInt(read, 0));
  }
  if (table_count == 0) {
    OCX_RETURN_IF_ERROR(InWriteTransaction(write_db_, [this] { return CreateSchema(write_db_); }));
  } else if (has_meta && version == 3) {
    // Version 4 changed only indexes: migrated in place, no rebuild.
    OCX_RETURN_IF_ERROR(
        InWriteTransaction(write_db_, [this] { return write_db_.Exec(sqlite::kMigrateFrom3Sql); }));
  } else if (!has_meta || version != kSqliteSchemaVersion) {
    const std::string found =
        has_meta ? "schema version " + std::to_string(version) : "tables that are not a store's";
    if (!options_.rebuild_on_schema_mismatch || !has_meta) {
      return absl::FailedPreconditionError(
          "store '" + path + "' holds " + found + "; this build reads schema version " +
          std::to_string(kSqliteSchemaVersion) +
          (has_meta ? " (open with rebuild_on_schema_mismatch to rebuild it from the journal)"
                    : " (not an ocx store; choose another path)"));
    }
    OCX_RETURN_IF_ERROR(InWriteTransaction(write_db_, [this] {
      OCX_RETURN_IF_ERROR(DropAllTables(write_db_));
      return CreateSchema(write_db_);
    }));
  }
  {
    OCX_ASSIGN_OR_RETURN(Stmt meta, Stmt::Prepare(write_db_,
                                                  "SELECT value FROM meta WHERE "
                                                  "key = ?1"));
    meta.Bind(1, kMetaLastSequence);
    OCX_ASSIGN_OR_RETURN(const int64_t last_sequence, ReadInt(meta, 0));
    meta.Bind(1, kMetaLastTime);
    OCX_ASSIGN_OR_RETURN(last_time_, ReadInt(meta, 0));
    last_sequence_.store(static_cast<uint64_t>(last_sequence), std::memory_order_release);
  }
  OCX_RETURN_IF_ERROR(PrepareWriter());

  OCX_ASSIGN_OR_RETURN(read_db_, Db::Open(path, SQLITE_OPEN_READWRITE));
  OCX_RETURN_IF_ERROR(read_db_.Exec("PRAGMA query_only = 1; PRAGMA busy_timeout = " +
                                    std::to_string(kBusyTimeoutMs)));
  OCX_RETURN_IF_ERROR(PrepareReader());
  return absl::OkStatus();
}

absl::Status SqliteStore::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  if (!closed_) {
    closed_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    writer_cv_.notify_all();
    space_cv_.notify_all();
    if (writer_.joinable()) writer_.join();  // The writer drains the queue first.
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      write_.reset();
      write_db_.Close();
    }
    {
      std::lock_guard<std::mutex> lock(read_mu_);
      read_.reset();
      read_db_.Close();
    }
  }
  return sticky_status();
}

// ---------------------------------------------------------------- the queue and the writer

absl::Status SqliteStore::sticky_status() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void SqliteStore::Fail(const absl::Status& error) {
  OCX_ASSERT(!error.ok());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok()) status_ = error;
  }
  space_cv_.notify_all();
  done_cv_.notify_all();
}

absl::Status SqliteStore::Enqueue(AppliedCommand command) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    // Backpressure: wait for the writer to take a batch when the queue is full.
    space_cv_.wait(lock, [this] {
      return queue_.size() < options_.queue_commands_max || closing_ || !status_.ok();
    });
    if (!status_.ok()) return status_;
    if (closing_) return absl::FailedPreconditionError("store is closed");
    queue_.push_back(std::move(command));
    ++enqueued_;
    // A lingering writer wakes only for a full batch (a wake-up per command would cost more
    // than the commit it saves).
    if (lingering_ && queue_.size() < options_.batch_commands_max) return absl::OkStatus();
  }
  writer_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status SqliteStore::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  ++flush_waiters_;
  writer_cv_.notify_one();  // Cut a linger short.
  done_cv_.wait(lock, [this, target] { return processed_ >= target || !status_.ok(); });
  --flush_waiters_;
  return status_;
}

void SqliteStore::WriterLoop() {
  std::vector<AppliedCommand> batch;
  batch.reserve(options_.batch_commands_max);
  auto last_commit = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_cv_.wait(lock, [this] { return !queue_.empty() || closing_; });
      if (options_.commit_interval_ms > 0) {
        lingering_ = true;
        writer_cv_.wait_until(
            lock, last_commit + std::chrono::milliseconds(options_.commit_interval_ms), [this] {
              return queue_.size() >= options_.batch_commands_max || closing_ ||
                     flush_waiters_ > 0;
            });
        lingering_ = false;
      }
      if (queue_.empty()) return;  // Closing, and everything queued is projected.
      const size_t n = std::min(queue_.size(), options_.batch_commands_max);
      batch.clear();
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    space_cv_.notify_all();
    absl::Status result;
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      result = sticky_status();  // After a failure, queued commands are dropped.
      if (result.ok()) result = ProjectLocked(batch);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      processed_ += batch.size();
      if (!result.ok() && status_.ok()) status_ = result;
    }
    last_commit = std::chrono::steady_clock::now();
    done_cv_.notify_all();
    space_cv_.notify_all();
  }
}

absl::Status SqliteStore::Project(std::span<const AppliedCommand> commands) {
  std::lock_guard<std::mutex> lock(write_mu_);
  OCX_RETURN_IF_ERROR(sticky_status());
  if (write_ == nullptr) return absl::FailedPreconditionError("store is closed");
  absl::Status status = ProjectLocked(commands);
  if (!status.ok()) Fail(status);
  return status;
}

absl::Status SqliteStore::Rebuild() {
  OCX_RETURN_IF_ERROR(Flush());
  std::lock_guard<std::mutex> lock(write_mu_);
  OCX_RETURN_IF_ERROR(sticky_status());
  if (write_ == nullptr) return absl::FailedPreconditionError("store is closed");
  write_.reset();  // Finalize the statements on the tables about to be dropped.
  absl::Status status = InWriteTransaction(write_db_, [this] {
    OCX_RETURN_IF_ERROR(DropAllTables(write_db_));
    return CreateSchema(write_db_);
  });
  if (status.ok()) status = PrepareWriter();
  if (!status.ok()) {
    Fail(status);
    return status;
  }
  last_sequence_.store(0, std::memory_order_release);
  last_time_ = 0;
  return absl::OkStatus();
}

// ---------------------------------------------------------------- projection

namespace {

// Applies the events of one command with the writer's statements. Not thread-safe: used
// under write_mu_, inside the batch's transaction.
using BalanceDeltas = std::map<std::pair<core::AccountId, core::BalanceKind>, core::Micros>;

template <typename Statements>
class EventProjector {
 public:
  // `balance_deltas` collects the net change of each balance over the batch; the caller
  // writes it before the batch commits (ApplyBalanceDeltas).
  EventProjector(Statements& w, const AppliedCommand& command, BalanceDeltas* balance_deltas)
      : w_(w),
        command_(command),
        seq_(Key(command.sequence)),
        time_(command.time_micros),
        balance_deltas_(balance_deltas) {}

  absl::Status operator()(const core::AccountCreated& e) {
    return w_.insert_account.Bind(1, int64_t{e.account})
        .Bind(2, e.name)
        .Bind(3, core::RoleName(e.role))
        .Bind(4, seq_)
        .Bind(5, time_)
        .Run();
  }

  absl::Status operator()(const core::LedgerTransfer& e) {
    OCX_RETURN_IF_ERROR(w_.insert_entry.Bind(1, Key(e.entry))
                            .Bind(2, seq_)
                            .Bind(3, time_)
                            .Bind(4, int64_t{e.from.owner})
                            .Bind(5, core::BalanceKindName(e.from.kind))
                            .Bind(6, int64_t{e.to.owner})
                            .Bind(7, core::BalanceKindName(e.to.kind))
                            .Bind(8, e.amount)
                            .Bind(9, core::TransferKindName(e.kind))
                            .Bind(10, Key(e.reference))
                            .Run());
    (*balance_deltas_)[{e.from.owner, e.from.kind}] -= e.amount;
    (*balance_deltas_)[{e.to.owner, e.to.kind}] += e.amount;
    return absl::OkStatus();
  }

  absl::Status operator()(const core::MachineRegistered& e) {
    return w_.insert_machine.Bind(1, Key(e.machine))
        .Bind(2, int64_t{e.owner})
        .Bind(3, e.name)
        .Bind(4, seq_)
        .Bind(5, time_)
        .Run();
  }

  absl::Status operator()(const core::MachineStatusChanged& e) {
    OCX_RETURN_IF_ERROR(w_.set_machine_status.Bind(1, Key(e.machine))
                            .Bind(2, int64_t{e.online ? 1 : 0})
                            .Bind(3, time_)
                            .Run());
    return ExpectOneRow(w_.set_machine_status, "status of unknown machine", e.machine);
  }

  absl::Status operator()(const core::OrderEvent& oe) {
    const engine::Event& e = oe.event;
    switch (e.type) {
      case engine::EventType::kAccepted:
        if (FindNewOrder(e.id) != nullptr) return Problem("an order accepted twice", e.id);
        new_orders_.push_back(NewOrder{e.id,
                                       &oe.market,
                                       e.side,
                                       e.account,
                                       e.price,
                                       e.quantity,
                                       e.quantity,
                                       0,
                                       OrderStatus::kOpen,
                                       {}});
        return absl::OkStatus();
      case engine::EventType::kTrade: {
        for (const core::OrderId id : {e.id, e.maker_id}) {
          if (NewOrder* order = FindNewOrder(id)) {
            // As fill_order: only an open order with at least that much left.
            if (order->status != OrderStatus::kOpen || order->remaining < e.quantity) {
              return Problem("trade of an order not open for it", static_cast<uint64_t>(id));
            }
            order->remaining -= e.quantity;
            order->filled += e.quantity;
            if (order->remaining == 0) order->status = OrderStatus::kFilled;
            continue;
          }
          OCX_RETURN_IF_ERROR(
              w_.fill_order.Bind(1, id).Bind(2, e.quantity).Bind(3, seq_).Bind(4, time_).Run());
          OCX_RETURN_IF_ERROR(ExpectOneRow(w_.fill_order, "trade of an order not open for it",
                                           static_cast<uint64_t>(id)));
        }
        const bool taker_buys = e.side == engine::Side::kBuy;
        OCX_RETURN_IF_ERROR(w_.insert_trade.Bind(1, seq_)
                                .Bind(2, time_)
                                .Bind(3, oe.market)
                                .Bind(4, e.id)
                                .Bind(5, e.maker_id)
                                .Bind(6, SideName(e.side))
                                .Bind(7, int64_t{taker_buys ? e.account : e.maker_account})
                                .Bind(8, int64_t{taker_buys ? e.maker_account : e.account})
                                .Bind(9, e.price)
                                .Bind(10, e.quantity)
                                .Bind(11, Key(e.machine))
                                .Run());
        if (pending_trade_ != 0) return Problem("a trade without its lease", e.id);
        pending_trade_ = w_.insert_trade.last_insert_rowid();
        return absl::OkStatus();
      }
      case engine::EventType::kCancelled:
      case engine::EventType::kExpired: {
        const bool cancelled = e.type == engine::EventType::kCancelled;
        if (NewOrder* order = FindNewOrder(e.id)) {
          // As end_order: only an open order, and all of what is left of it.
          if (order->status != OrderStatus::kOpen || order->remaining != e.quantity) {
            return Problem("end of an order not open with that remainder",
                           static_cast<uint64_t>(e.id));
          }
          order->remaining = 0;
          order->status = cancelled ? OrderStatus::kCancelled : OrderStatus::kExpired;
          if (cancelled) order->cancel_reason = std::string(engine::ReasonCode(e.cancel));
          return absl::OkStatus();
        }
        w_.end_order.Bind(1, e.id)
            .Bind(2, e.quantity)
            .Bind(3, OrderStatusName(cancelled ? OrderStatus::kCancelled : OrderStatus::kExpired));
        if (cancelled) {
          w_.end_order.Bind(4, engine::ReasonCode(e.cancel));
        } else {
          w_.end_order.BindNull(4);
        }
        OCX_RETURN_IF_ERROR(w_.end_order.Bind(5, seq_).Bind(6, time_).Run());
        return ExpectOneRow(w_.end_order, "end of an order not open with that remainder",
                            static_cast<uint64_t>(e.id));
      }
      case engine::EventType::kReplaced:
        if (NewOrder* order = FindNewOrder(e.id)) {
          if (order->status != OrderStatus::kOpen) {
            return Problem("replace of an order not open", static_cast<uint64_t>(e.id));
          }
          order->price = e.price;
          order->remaining = e.quantity;
          return absl::OkStatus();
        }
        OCX_RETURN_IF_ERROR(w_.replace_order.Bind(1, e.id)
                                .Bind(2, e.price)
                                .Bind(3, e.quantity)
                                .Bind(4, seq_)
                                .Bind(5, time_)
                                .Run());
        return ExpectOneRow(w_.replace_order, "replace of an order not open",
                            static_cast<uint64_t>(e.id));
      case engine::EventType::kRejected:
        // The order was never created (a new order) or is unchanged (cancel, replace): the
        // rejection is history of its own, not an order row.
        return w_.insert_rejection.Bind(1, seq_)
            .Bind(2, time_)
            .Bind(3, oe.market)
            .Bind(4, CommandKindName(e.command))
            .Bind(5, e.id)
            .Bind(6, int64_t{e.account})
            .Bind(7, SideName(e.side))
            .Bind(8, e.price)
            .Bind(9, e.quantity)
            .Bind(10, engine::ReasonCode(e.reject))
            .Run();
    }
    return Problem("an order event of unknown type", static_cast<uint64_t>(e.id));
  }

  absl::Status operator()(const core::LeaseStarted& e) {
    // The core starts one lease per trade, right after the trade's event.
    if (pending_trade_ == 0) return Problem("a lease started without its trade", e.lease);
    OCX_RETURN_IF_ERROR(w_.insert_lease.Bind(1, Key(e.lease))
                            .Bind(2, int64_t{e.buyer})
                            .Bind(3, int64_t{e.seller})
                            .Bind(4, Key(e.machine))
                            .Bind(5, e.market)
                            .Bind(6, e.slots)
                            .Bind(7, e.price)
                            .Bind(8, int64_t{e.max_hours})
                            .Bind(9, e.start)
                            .Bind(10, seq_)
                            .Bind(11, e.escrow)
                            .Bind(12, e.buy_order)
                            .Bind(13, e.sell_order)
                            .Run());
    OCX_RETURN_IF_ERROR(w_.link_trade.Bind(1, pending_trade_).Bind(2, Key(e.lease)).Run());
    OCX_RETURN_IF_ERROR(ExpectOneRow(w_.link_trade, "a lease whose trade is linked", e.lease));
    pending_trade_ = 0;
    return absl::OkStatus();
  }

  absl::Status operator()(const core::UsageRecorded& e) {
    OCX_RETURN_IF_ERROR(
        w_.usage_lease.Bind(1, Key(e.lease)).Bind(2, e.billed_total).Bind(3, e.wall_seconds).Run());
    OCX_RETURN_IF_ERROR(ExpectOneRow(w_.usage_lease, "usage of a lease not active", e.lease));
    return w_.insert_usage.Bind(1, Key(e.lease))
        .Bind(2, seq_)
        .Bind(3, time_)
        .Bind(4, e.wall_seconds)
        .Bind(5, e.cpu_seconds)
        .Bind(6, e.gpu_seconds)
        .Bind(7, e.peak_memory_mib)
        .Bind(8, e.billed_total)
        .Run();
  }

  absl::Status operator()(const core::LeaseEnded& e) {
    OCX_RETURN_IF_ERROR(w_.end_lease.Bind(1, Key(e.lease))
                            .Bind(2, core::LeaseEndReasonName(e.reason))
                            .Bind(3, e.end)
                            .Bind(4, seq_)
                            .Bind(5, e.billed_seconds)
                            .Bind(6, e.billed_total)
                            .Bind(7, e.refunded)
                            .Run());
    return ExpectOneRow(w_.end_lease, "end of a lease not active", e.lease);
  }

  absl::Status operator()(const core::TaskAssigned& e) {
    return w_.insert_task.Bind(1, Key(e.lease))
        .Bind(2, int64_t{e.buyer})
        .Bind(3, Key(e.machine))
        .Bind(4, e.spec)
        .Bind(5, seq_)
        .Bind(6, time_)
        .Run();
  }

  absl::Status operator()(const core::TaskFinished& e) {
    OCX_RETURN_IF_ERROR(w_.finish_task.Bind(1, Key(e.lease))
                            .Bind(2, e.result.empty() ? "lost" : "finished")
                            .Bind(3, e.result)
                            .Bind(4, seq_)
                            .Bind(5, time_)
                            .Run());
    return ExpectOneRow(w_.finish_task, "end of a task not running", e.lease);
  }

  absl::Status operator()(const core::JobSubmitted& e) {
    const core::SubmitJob& spec = e.spec;
    // The core refuses other counts; the bound keeps a bad event from writing without end.
    if (spec.tasks < 1 || spec.tasks > core::kJobTasksMax) {
      return Problem("a job with a task count out of range", e.job);
    }
    OCX_RETURN_IF_ERROR(w_.insert_job.Bind(1, Key(e.job))
                            .Bind(2, int64_t{e.owner})
                            .Bind(3, spec.client_job_id)
                            .Bind(4, spec.market)
                            .Bind(5, spec.slots_per_task)
                            .Bind(6, int64_t{spec.tasks})
                            .Bind(7, spec.max_price)
                            .Bind(8, int64_t{spec.max_hours})
                            .Bind(9, spec.constraints)
                            .Bind(10, spec.task_spec)
                            .Bind(11, seq_)
                            .Bind(12, e.submitted)
                            .Run());
    for (int32_t index = 0; index < spec.tasks; ++index) {
      OCX_RETURN_IF_ERROR(w_.insert_job_task.Bind(1, Key(e.job)).Bind(2, int64_t{index}).Run());
    }
    return absl::OkStatus();
  }

  absl::Status operator()(const core::JobTaskChanged& e) {
    OCX_RETURN_IF_ERROR(w_.change_job_task.Bind(1, Key(e.job))
                            .Bind(2, int64_t{e.task_index})
                            .Bind(3, core::JobTaskStateName(e.state))
                            .Bind(4, int64_t{e.attempts})
                            .Bind(5, e.order)
                            .Bind(6, Key(e.lease))
                            .Bind(7, Key(e.machine))
                            .Run());
    if (w_.change_job_task.changes() == 1) return absl::OkStatus();
    return Inconsistent(command_, "change of task " + std::to_string(e.task_index) + " of job " +
                                      std::to_string(e.job) +
                                      ", not waiting or running in an active job");
  }

  // The store holds no tokens: only the core and the API's registry know them.
  absl::Status operator()(const core::TokenRotated&) { return absl::OkStatus(); }

  absl::Status operator()(const core::JobEnded& e) {
    if (e.state == core::JobState::kActive) return Problem("a job ended as active", e.job);
    OCX_RETURN_IF_ERROR(w_.end_job.Bind(1, Key(e.job))
                            .Bind(2, core::JobStateName(e.state))
                            .Bind(3, seq_)
                            .Bind(4, e.end)
                            .Bind(5, int64_t{e.owner})
                            .Run());
    return ExpectOneRow(w_.end_job, "end of a job not active", e.job);
  }

  // After the command's last event: every trade found its lease; the orders it placed are
  // written as they stand now.
  absl::Status Finish() {
    if (pending_trade_ != 0) return Problem("a trade without its lease (trade row)", 0);
    for (const NewOrder& order : new_orders_) {
      w_.insert_order_row.Bind(1, order.id)
          .Bind(2, *order.market)
          .Bind(3, SideName(order.side))
          .Bind(4, int64_t{order.account})
          .Bind(5, order.price)
          .Bind(6, order.quantity)
          .Bind(7, order.remaining)
          .Bind(8, order.filled)
          .Bind(9, OrderStatusName(order.status));
      if (order.cancel_reason.empty()) {
        w_.insert_order_row.BindNull(10);
      } else {
        w_.insert_order_row.Bind(10, order.cancel_reason);
      }
      OCX_RETURN_IF_ERROR(w_.insert_order_row.Bind(11, seq_).Bind(12, time_).Run());
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ExpectOneRow(const Stmt& statement, const char* what, uint64_t id) {
    if (statement.changes() == 1) return absl::OkStatus();
    return Problem(what, id);
  }
  absl::Status Problem(const char* what, uint64_t id) {
    return Inconsistent(command_, std::string(what) + " " + std::to_string(id));
  }

  // An order accepted by this command, as it stands after the events seen so far.
  struct NewOrder {
    int64_t id;
    const std::string* market;  // In the command's events, which outlive the projector.
    engine::Side side;
    core::AccountId account;
    int64_t price;
    int64_t quantity;
    int64_t remaining;
    int64_t filled;
    OrderStatus status;
    std::string cancel_reason;  // Empty: NULL.
  };

  NewOrder* FindNewOrder(int64_t id) {
    for (NewOrder& order : new_orders_) {
      if (order.id == id) return &order;
    }
    return nullptr;
  }

  Statements& w_;
  const AppliedCommand& command_;
  const int64_t seq_;
  const int64_t time_;
  BalanceDeltas* balance_deltas_;
  int64_t pending_trade_ = 0;  // Row id of a trade whose LeaseStarted has not come yet.
  std::vector<NewOrder> new_orders_;  // Few: one per order a command places.
};

// Writes the batch's net balance changes (in key order, so the same batch always writes the
// same way). A balance whose changes cancel out is created if missing and otherwise left.
absl::Status ApplyBalanceDeltas(Stmt& add_balance, Stmt& touch_balance,
                                const BalanceDeltas& deltas) {
  for (const auto& [key, delta] : deltas) {
    const auto& [owner, kind] = key;
    if (delta == 0) {
      OCX_RETURN_IF_ERROR(
          touch_balance.Bind(1, int64_t{owner}).Bind(2, core::BalanceKindName(kind)).Run());
    } else {
      OCX_RETURN_IF_ERROR(add_balance.Bind(1, int64_t{owner})
                              .Bind(2, core::BalanceKindName(kind))
                              .Bind(3, delta)
                              .Run());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SqliteStore::ProjectCommand(const AppliedCommand& command,
                                         BalanceDeltas* balance_deltas) {
  EventProjector<WriteStatements> projector(*write_, command, balance_deltas);
  for (const core::CoreEvent& event : command.events) {
    OCX_RETURN_IF_ERROR(std::visit(projector, event));
  }
  return projector.Finish();
}

absl::Status SqliteStore::ProjectLocked(std::span<const AppliedCommand> commands) {
  OCX_ASSERT(write_ != nullptr);
  uint64_t last_sequence = last_sequence_.load(std::memory_order_relaxed);
  int64_t last_time = last_time_;
  const bool any_new = std::any_of(commands.begin(), commands.end(),
                                   [&](const auto& c) { return c.sequence > last_sequence; });
  if (!any_new) return absl::OkStatus();  // Already projected: idempotent.

  WriteStatements& w = *write_;
  OCX_RETURN_IF_ERROR(w.begin.Run());
  absl::Status status;
  BalanceDeltas balance_deltas;
  for (const AppliedCommand& command : commands) {
    if (command.sequence <= last_sequence) continue;
    if (command.time_micros < last_time) {
      status = Inconsistent(command, "time " + std::to_string(command.time_micros) +
                                         " is before the previous command's " +
                                         std::to_string(last_time));
      break;
    }
    status = ProjectCommand(command, &balance_deltas);
    if (!status.ok()) break;
    last_sequence = command.sequence;
    last_time = command.time_micros;
  }
  if (status.ok()) status = ApplyBalanceDeltas(w.add_balance, w.touch_balance, balance_deltas);
  if (status.ok()) status = w.set_meta.Bind(1, kMetaLastSequence).Bind(2, Key(last_sequence)).Run();
  if (status.ok()) status = w.set_meta.Bind(1, kMetaLastTime).Bind(2, last_time).Run();
  if (status.ok()) status = w.commit.Run();
  if (!status.ok()) {
    if (sqlite3_get_autocommit(write_db_.get()) == 0) (void)w.rollback.Run();
    return status;
  }
  last_time_ = last_time;
  last_sequence_.store(last_sequence, std::memory_order_release);
  batches_committed_.fetch_add(1, std::memory_order_relaxed);
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

#undef OCX_STORE_READ_LOCK

}  // namespace ocx::store
