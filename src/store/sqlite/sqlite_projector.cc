// SqliteStore's projection: the writer's prepared statements, the EventProjector (what each
// core event writes) and ProjectLocked (one batch, one transaction). docs/formats/store.md,
// "Projection rules".
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/core/exchange.h"
#include "src/engine/events.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/sqlite_store_internal.h"
#include "src/store/task_blobs.h"

namespace ocx::store {

using internal::CommandKindName;
using internal::Db;
using internal::Key;
using internal::kMetaLastSequence;
using internal::kMetaLastTime;
using internal::SideName;
using internal::Stmt;

namespace {

absl::Status Inconsistent(const AppliedCommand& command, const std::string& what) {
  return absl::FailedPreconditionError("store projection, sequence " +
                                       std::to_string(command.sequence) + ": " + what +
                                       " (events out of step with the store; rebuild it)");
}

}  // namespace

// ---------------------------------------------------------------- prepared statements

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
  OCX_RETURN_IF_ERROR(prepare(&w->insert_task_blob, internal::kInsertTaskBlobSql));
  write_ = std::move(w);
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
    OCX_RETURN_IF_ERROR(w_.insert_task.Bind(1, Key(e.lease))
                            .Bind(2, int64_t{e.buyer})
                            .Bind(3, Key(e.machine))
                            .Bind(4, e.spec)
                            .Bind(5, seq_)
                            .Bind(6, time_)
                            .Run());
    // A job's task is recorded under its lease like any other (job 0).
    return internal::InsertTaskBlobs(w_.insert_task_blob, Key(e.lease), 0, BlobsOfTaskSpec(e.spec));
  }

  absl::Status operator()(const core::TaskFinished& e) {
    OCX_RETURN_IF_ERROR(w_.finish_task.Bind(1, Key(e.lease))
                            .Bind(2, e.result.empty() ? "lost" : "finished")
                            .Bind(3, e.result)
                            .Bind(4, seq_)
                            .Bind(5, time_)
                            .Run());
    OCX_RETURN_IF_ERROR(ExpectOneRow(w_.finish_task, "end of a task not running", e.lease));
    return internal::InsertTaskBlobs(w_.insert_task_blob, Key(e.lease), 0,
                                     BlobsOfTaskResult(e.result));
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
    return internal::InsertTaskBlobs(w_.insert_task_blob, 0, Key(e.job),
                                     BlobsOfTaskSpec(spec.task_spec));
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

}  // namespace ocx::store
