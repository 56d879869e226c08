// What the SqliteStore's source files share: sqlite_store.cc (open, schema, migration, the
// queue and the writer thread, close), sqlite_projector.cc (projection) and sqlite_queries.cc
// (reads). The prepared statements of each connection, the keys of `meta`, the stored names
// of the engine's enums, and small helpers. Internal to src/store/sqlite: include it from
// nowhere else.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "src/base/status.h"
#include "src/engine/events.h"
#include "src/engine/types.h"
#include "src/store/sqlite/sqlite_db.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/task_blobs.h"

namespace ocx::store {
namespace internal {

using sqlite::Db;
using sqlite::ResetOnExit;
using Stmt = sqlite::Statement;

inline constexpr char kMetaSchemaVersion[] = "schema_version";
inline constexpr char kMetaLastSequence[] = "last_sequence";
inline constexpr char kMetaLastTime[] = "last_time";

// ---------------------------------------------------------------- names

// The core's own enum names (src/core/exchange.h), and the store's for the rest. They are
// part of the format (docs/formats/store.md): never change them.
inline std::string_view SideName(engine::Side side) {
  switch (side) {
    case engine::Side::kBuy:
      return "buy";
    case engine::Side::kSell:
      return "sell";
  }
  return "unknown";
}

inline std::string_view CommandKindName(engine::CommandKind kind) {
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

// Cursors and ids are unsigned in C++ and INTEGER (int64) in SQLite. Ids never reach 2^63;
// a cursor beyond it means "after everything".
inline int64_t Key(uint64_t value) {
  return static_cast<int64_t>(std::min<uint64_t>(value, std::numeric_limits<int64_t>::max()));
}

// A single integer from a one-row query (or `fallback` when it returns no row or NULL).
inline absl::StatusOr<int64_t> ReadInt(Stmt& statement, int64_t fallback) {
  ResetOnExit reset(statement);
  OCX_ASSIGN_OR_RETURN(const bool row, statement.Step());
  if (!row || statement.IsNull(0)) return fallback;
  return statement.Int(0);
}

// ---------------------------------------------------------------- task_blobs

// One row of task_blobs; a row already there is kept (a document may name a digest twice).
inline constexpr char kInsertTaskBlobSql[] =
    "INSERT OR IGNORE INTO task_blobs (sha256, lease, job, role) VALUES (?1, ?2, ?3, ?4)";

// Writes the rows of the blobs one document names: `lease` for a task's spec or result (job
// 0), `job` for a job's task spec (lease 0).
inline absl::Status InsertTaskBlobs(Stmt& insert, int64_t lease, int64_t job,
                                    const std::vector<NamedBlob>& blobs) {
  for (const NamedBlob& blob : blobs) {
    OCX_RETURN_IF_ERROR(insert.Bind(1, blob.sha256)
                            .Bind(2, lease)
                            .Bind(3, job)
                            .Bind(4, BlobRoleName(blob.role))
                            .Run());
  }
  return absl::OkStatus();
}

// Both queries walk task_blobs' primary key from the digest, newest lease (or job) first
// (recent tasks are the likeliest to match), and look each row's lease, task or job up by its
// own primary key; CROSS JOIN keeps SQLite from starting at the other table instead (an
// account's leases, every active lease). They stop at the first row that matches.
// ?1: the digest; ?2: the account.
inline constexpr char kBlobGrantedSql[] =
    "SELECT (SELECT 1 FROM task_blobs b CROSS JOIN leases l ON l.id = b.lease "
    "WHERE b.sha256 = ?1 AND b.lease > 0 AND (l.buyer = ?2 OR l.seller = ?2) "
    "ORDER BY b.lease DESC LIMIT 1) IS NOT NULL OR "
    "(SELECT 1 FROM task_blobs b CROSS JOIN jobs j ON j.id = b.job "
    "WHERE b.sha256 = ?1 AND b.lease = 0 AND b.job > 0 AND j.owner = ?2 "
    "ORDER BY b.job DESC LIMIT 1) IS NOT NULL";
// ?1: the digest; ?2: since. A lease's rows come with its task's row (TaskAssigned writes
// both), so they are found through `tasks`, with the lease joined when there is one.
inline constexpr char kBlobReferencedSql[] =
    "SELECT (SELECT 1 FROM task_blobs b CROSS JOIN tasks t ON t.lease = b.lease "
    "LEFT JOIN leases l ON l.id = b.lease "
    "WHERE b.sha256 = ?1 AND b.lease > 0 AND (l.status = 'active' OR l.end_time >= ?2 OR "
    "t.finished_time >= ?2) ORDER BY b.lease DESC LIMIT 1) IS NOT NULL OR "
    "(SELECT 1 FROM task_blobs b CROSS JOIN jobs j ON j.id = b.job "
    "WHERE b.sha256 = ?1 AND b.lease = 0 AND b.job > 0 AND j.state = 'active' "
    "ORDER BY b.job DESC LIMIT 1) IS NOT NULL";

}  // namespace internal

// ---------------------------------------------------------------- prepared statements

struct SqliteStore::WriteStatements {
  using Stmt = sqlite::Statement;
  Stmt begin, commit, rollback, set_meta;
  Stmt insert_account;
  Stmt insert_entry, add_balance, touch_balance;
  Stmt insert_machine, set_machine_status;
  Stmt insert_order, insert_order_row, fill_order, end_order, replace_order, insert_rejection;
  Stmt insert_trade, link_trade;
  Stmt insert_lease, usage_lease, insert_usage, end_lease;
  Stmt insert_task, finish_task;
  Stmt insert_job, insert_job_task, change_job_task, end_job;
  Stmt insert_task_blob;
};

struct SqliteStore::ReadStatements {
  using Stmt = sqlite::Statement;
  Stmt list_accounts, balances, list_entries;
  Stmt entry_at_or_after, next_entry, deltas_since, statement_entries;
  Stmt list_trades, list_orders, list_orders_status, list_leases, get_lease, list_usage;
  Stmt list_machines, get_task;
  Stmt get_job, list_job_tasks, list_jobs;
  Stmt blob_granted, blob_referenced;
};

}  // namespace ocx::store
