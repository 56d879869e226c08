// Store: the exchange's query store, a queryable projection of the core's events (history
// for the API: trades, ledger entries, statements, orders, leases, machines, balances).
//
// It is never the source of truth: the journal is. Everything here can be rebuilt by
// replaying the journal through the core and projecting the events again (Rebuild(), then
// Project/Enqueue from sequence 1). A store remembers the last sequence it projected, so a
// restart resumes after it; a command whose sequence is not above it is skipped, which makes
// re-projecting an overlap harmless.
//
// Implementations: SqliteStore (embedded, src/store/sqlite/); later PostgreSQL.
// docs/formats/store.md specifies the tables.
//
// Thread-safety: every method may be called from any thread. Projection is expected from
// one producer (the server's projector, fed by the sequencer) and queries from many (the
// API's I/O threads). Errors: operating errors as absl::Status, never exceptions. A failed
// projection stops projection for good (the store would otherwise diverge from the core):
// every later Enqueue/Project/Flush returns that first error; queries keep answering from
// the last committed batch. Reopening resumes from the last committed batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/core/events.h"
#include "src/core/types.h"

namespace ocx::store {

// What one applied command produced, as the projector receives it from the sequencer.
// A command that produced no events (a rejection, a quiet heartbeat) may be passed too: it
// only advances the last projected sequence.
struct AppliedCommand {
  uint64_t sequence = 0;
  int64_t time_micros = 0;  // The command's timestamp (core::Timestamp).
  std::vector<core::CoreEvent> events;
};

// Keyset pagination: a list call returns rows whose key (the id or sequence named by the
// call) is strictly greater than `after`, in increasing key order, at most `limit` of them.
// The next page starts after the last key returned; a page shorter than `limit` is the end.
// `limit` must be in [1, kListLimitMax] (InvalidArgument otherwise).
inline constexpr size_t kListLimitMax = 1000;
// Statement() returns at most this many entries; past it, `truncated` is set and the rest
// is read with ListLedgerEntries. Opening and closing balances are always exact.
inline constexpr size_t kStatementEntriesMax = 10'000;

struct AccountRow {
  core::AccountId id = 0;
  std::string name;
  core::Role role = core::Role::kConsumer;
  uint64_t created_sequence = 0;
  core::Timestamp created_time = 0;
  bool operator==(const AccountRow&) const = default;
};

struct BalanceRow {
  core::BalanceKind kind = core::BalanceKind::kAvailable;
  core::Micros amount = 0;
  bool operator==(const BalanceRow&) const = default;
};

struct LedgerEntryRow {
  uint64_t entry = 0;  // The core's ledger entry number (the cursor).
  uint64_t sequence = 0;
  core::Timestamp time = 0;
  core::BalanceRef from;
  core::BalanceRef to;
  core::Micros amount = 0;
  core::TransferKind kind = core::TransferKind::kDeposit;
  uint64_t reference = 0;  // Order (hold, release) or lease (escrow, bill, fee, ...), 0: none.
  bool operator==(const LedgerEntryRow&) const = default;
};

// One balance of an account over [from_time, to_time).
struct StatementLine {
  core::BalanceKind kind = core::BalanceKind::kAvailable;
  core::Micros opening = 0;  // After every entry with time < from_time.
  core::Micros closing = 0;  // After every entry with time < to_time.
  bool operator==(const StatementLine&) const = default;
};

struct AccountStatement {
  core::AccountId account = 0;
  core::Timestamp from_time = 0;
  core::Timestamp to_time = 0;
  std::vector<StatementLine> lines;     // Every kind the account ever held, by kind.
  std::vector<LedgerEntryRow> entries;  // The account's entries in the range, by entry.
  bool truncated = false;               // More than kStatementEntriesMax entries.
  bool operator==(const AccountStatement&) const = default;
};

struct TradeRow {
  uint64_t id = 0;  // Assigned by the store in projection order: 1, 2, 3, ... (the cursor).
  uint64_t sequence = 0;
  core::Timestamp time = 0;
  std::string market;
  core::OrderId taker_order = 0;
  core::OrderId maker_order = 0;
  engine::Side taker_side = engine::Side::kBuy;
  core::AccountId buyer = 0;
  core::AccountId seller = 0;
  core::PriceMicros price = 0;
  core::Quantity quantity = 0;
  core::MachineId machine = 0;
  core::LeaseId lease = 0;  // The lease the trade started.
  bool operator==(const TradeRow&) const = default;
};

enum class OrderStatus : uint8_t { kOpen, kFilled, kCancelled, kExpired };
std::string_view OrderStatusName(OrderStatus status);

struct OrderRow {
  core::OrderId id = 0;  // The cursor.
  std::string market;
  engine::Side side = engine::Side::kBuy;
  core::AccountId account = 0;
  core::PriceMicros price = 0;  // Current limit price; 0 for a market order.
  core::Quantity quantity = 0;  // As accepted (a replace changes price and remaining only).
  core::Quantity remaining = 0;
  core::Quantity filled = 0;
  OrderStatus status = OrderStatus::kOpen;
  // For kCancelled: engine::ReasonCode(CancelReason) ("requested", "self_trade", ...).
  std::string cancel_reason;
  uint64_t created_sequence = 0;
  core::Timestamp created_time = 0;
  uint64_t updated_sequence = 0;
  core::Timestamp updated_time = 0;
  bool operator==(const OrderRow&) const = default;
};

enum class LeaseStatus : uint8_t { kActive, kEnded };
std::string_view LeaseStatusName(LeaseStatus status);

struct LeaseRow {
  core::LeaseId id = 0;  // The cursor.
  core::AccountId buyer = 0;
  core::AccountId seller = 0;
  core::MachineId machine = 0;
  std::string market;
  core::Quantity slots = 0;
  core::PriceMicros price = 0;
  int32_t max_hours = 0;
  core::Timestamp start = 0;
  uint64_t start_sequence = 0;
  core::Micros escrow = 0;  // Escrow at the start.
  core::OrderId buy_order = 0;
  core::OrderId sell_order = 0;
  core::Micros billed_total = 0;
  int64_t billed_seconds = 0;
  int64_t reported_wall_seconds = 0;  // Of the latest usage report.
  LeaseStatus status = LeaseStatus::kActive;
  std::optional<core::LeaseEndReason> end_reason;  // Set once ended.
  core::Timestamp end_time = 0;
  uint64_t end_sequence = 0;
  core::Micros refunded = 0;
  bool operator==(const LeaseRow&) const = default;
};

// A lease's task (docs/formats/task.md). `status`: "running" until the machine reports,
// then "finished" (with `result`), or "lost" when no result came in time.
struct TaskRow {
  core::LeaseId lease = 0;
  core::AccountId buyer = 0;
  core::MachineId machine = 0;
  std::string spec;
  std::string status;
  std::string result;  // Empty unless finished.
  uint64_t assigned_sequence = 0;
  core::Timestamp assigned_time = 0;
  uint64_t finished_sequence = 0;  // 0 while running.
  core::Timestamp finished_time = 0;
  bool operator==(const TaskRow&) const = default;
};

// A job (docs/formats/job.md) and its tasks, as submitted and as they went.
struct JobTaskRow {
  int32_t index = 0;
  core::JobTaskState state = core::JobTaskState::kWaiting;
  int32_t attempts = 0;
  core::OrderId order = 0;     // The current (or last) attempt's buy order.
  core::LeaseId lease = 0;     // The current (or last) attempt's lease, 0 before any fill.
  core::MachineId machine = 0;
  bool operator==(const JobTaskRow&) const = default;
};

struct JobRow {
  core::JobId id = 0;  // The cursor.
  core::AccountId owner = 0;
  std::string client_job_id;
  std::string market;
  core::Quantity slots_per_task = 0;
  int32_t tasks_count = 0;
  core::PriceMicros max_price = 0;
  int32_t max_hours = 0;
  std::string constraints;
  std::string task_spec;
  core::JobState state = core::JobState::kActive;
  uint64_t submitted_sequence = 0;
  core::Timestamp submitted_time = 0;
  uint64_t end_sequence = 0;  // 0 while active.
  core::Timestamp end_time = 0;
  std::vector<JobTaskRow> tasks;  // By index; ListJobs leaves it empty.
  bool operator==(const JobRow&) const = default;
};

struct UsageRow {
  core::LeaseId lease = 0;
  uint64_t sequence = 0;  // The cursor within a lease.
  core::Timestamp time = 0;
  int64_t wall_seconds = 0;
  int64_t cpu_seconds = 0;
  int64_t gpu_seconds = 0;
  int64_t peak_memory_mib = 0;
  core::Micros billed_total = 0;
  bool operator==(const UsageRow&) const = default;
};

struct MachineRow {
  core::MachineId id = 0;  // The cursor.
  core::AccountId owner = 0;
  std::string name;
  bool online = false;
  uint64_t registered_sequence = 0;
  core::Timestamp registered_time = 0;
  core::Timestamp last_status_time = 0;  // Of the latest online/offline change.
  bool operator==(const MachineRow&) const = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- Projection

  // Queues one applied command for the store's writer and returns without waiting for the
  // database. Blocks only while the bounded queue is full (backpressure: the sequencer then
  // waits on the store). FailedPrecondition after Close; the first projection error after a
  // failure.
  virtual absl::Status Enqueue(AppliedCommand command) = 0;

  // Blocks until everything enqueued before the call is projected and committed. OK, or the
  // projection error that stopped the store.
  virtual absl::Status Flush() = 0;

  // Projects `commands` now, on the calling thread, in one transaction (for tests and
  // rebuilds). Commands must come in increasing sequence order; those at or below the last
  // projected sequence are skipped. On error nothing of the batch is kept.
  virtual absl::Status Project(std::span<const AppliedCommand> commands) = 0;

  // The highest sequence whose events are committed (0: none). Never decreases, except
  // through Rebuild().
  virtual uint64_t last_projected_sequence() const = 0;

  // Empties the store (drops and recreates every table) so it can be projected again from
  // sequence 1. Waits for the queue to drain first; call it while nothing is being enqueued.
  virtual absl::Status Rebuild() = 0;

  // Projects everything queued, stops the writer and closes the database. Idempotent.
  // Returns the first projection error, if any.
  virtual absl::Status Close() = 0;

  // ---- Queries (consistent: each reads one committed state)

  virtual absl::StatusOr<std::vector<AccountRow>> ListAccounts(core::AccountId after,
                                                               size_t limit) = 0;
  // Every balance the account ever had (system balances: account 0), by kind. A balance
  // that was never touched is absent (it is 0).
  virtual absl::StatusOr<std::vector<BalanceRow>> Balances(core::AccountId account) = 0;
  // Entries moving money out of or into any balance of `account`, by entry number.
  virtual absl::StatusOr<std::vector<LedgerEntryRow>> ListLedgerEntries(core::AccountId account,
                                                                        uint64_t after,
                                                                        size_t limit) = 0;
  // Opening and closing balances over [from_time, to_time) and the entries in it.
  // InvalidArgument if from_time > to_time.
  virtual absl::StatusOr<AccountStatement> Statement(core::AccountId account,
                                                     core::Timestamp from_time,
                                                     core::Timestamp to_time) = 0;
  // Trades of one market, by trade id.
  virtual absl::StatusOr<std::vector<TradeRow>> ListTrades(const std::string& market,
                                                           uint64_t after, size_t limit) = 0;
  // Orders of `account`, by order id; only those with `status` when given.
  virtual absl::StatusOr<std::vector<OrderRow>> ListOrders(core::AccountId account,
                                                           std::optional<OrderStatus> status,
                                                           core::OrderId after, size_t limit) = 0;
  // Leases where `account` is the buyer or the seller, by lease id.
  virtual absl::StatusOr<std::vector<LeaseRow>> ListLeases(core::AccountId account,
                                                           core::LeaseId after, size_t limit) = 0;
  // NotFound for a lease never started.
  virtual absl::StatusOr<LeaseRow> GetLease(core::LeaseId id) = 0;
  // NotFound for a lease without a task.
  virtual absl::StatusOr<TaskRow> GetTask(core::LeaseId lease) = 0;
  // NotFound for a job never submitted. With its tasks.
  virtual absl::StatusOr<JobRow> GetJob(core::JobId id) = 0;
  // Jobs of `owner`, by id, without their tasks.
  virtual absl::StatusOr<std::vector<JobRow>> ListJobs(core::AccountId owner, core::JobId after,
                                                       size_t limit) = 0;
  // Usage reports of one lease, by sequence.
  virtual absl::StatusOr<std::vector<UsageRow>> ListUsage(core::LeaseId lease, uint64_t after,
                                                          size_t limit) = 0;
  // Every machine, by id.
  virtual absl::StatusOr<std::vector<MachineRow>> ListMachines(core::MachineId after,
                                                               size_t limit) = 0;

  // ---- Blobs named by tasks (docs/formats/blobs.md: who may read a blob, which are kept)

  // Whether a task `account` may see names the blob: the task of a lease where it is the
  // buyer or the seller, in the task's spec (inputs[].sha256) or its result (stdout, stderr,
  // outputs[].sha256); or the task spec of a job it owns.
  virtual absl::StatusOr<bool> BlobGranted(const std::string& sha256,
                                           core::AccountId account) = 0;
  // Whether the blob is still needed: named by the spec of a task whose lease is active or of
  // a job still running, or by the spec or result of a task that finished (or whose lease
  // ended) at or after `since`.
  virtual absl::StatusOr<bool> BlobReferenced(const std::string& sha256,
                                              core::Timestamp since) = 0;
};

}  // namespace ocx::store
