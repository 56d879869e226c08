// SqliteStore: open (directory checks, pragmas, schema creation, migration), the queue and
// the writer thread, Project, Rebuild and Close. Projection is in sqlite_projector.cc, the
// queries in sqlite_queries.cc.
#include "src/store/sqlite/sqlite_store.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/base/thread_name.h"
#include "src/store/sqlite/schema.h"
#include "src/store/sqlite/sqlite_store_internal.h"
#include "src/store/task_blobs.h"

namespace ocx::store {

using internal::Db;
using internal::kMetaLastSequence;
using internal::kMetaLastTime;
using internal::kMetaSchemaVersion;
using internal::ReadInt;
using internal::Stmt;

namespace {

// Busy waits happen only if another process holds the database's lock (one store per file).
constexpr int kBusyTimeoutMs = 5000;

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

}  // namespace

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

// Brings a version 4 store to version 5 (inside the caller's transaction): the task_blobs
// table, filled from every task's spec and result and every job's task spec already stored,
// as the projector would have written them.
absl::Status MigrateFrom4(Db& db) {
  OCX_RETURN_IF_ERROR(db.Exec(sqlite::kMigrateFrom4Sql));
  OCX_ASSIGN_OR_RETURN(Stmt insert, Stmt::Prepare(db, internal::kInsertTaskBlobSql));
  {
    OCX_ASSIGN_OR_RETURN(Stmt tasks, Stmt::Prepare(db,
                                                   "SELECT lease, spec, COALESCE(result, '') "
                                                   "FROM tasks ORDER BY lease"));
    for (;;) {
      OCX_ASSIGN_OR_RETURN(const bool row, tasks.Step());
      if (!row) break;
      const int64_t lease = tasks.Int(0);
      OCX_RETURN_IF_ERROR(
          internal::InsertTaskBlobs(insert, lease, 0, BlobsOfTaskSpec(tasks.Text(1))));
      OCX_RETURN_IF_ERROR(
          internal::InsertTaskBlobs(insert, lease, 0, BlobsOfTaskResult(tasks.Text(2))));
    }
  }
  OCX_ASSIGN_OR_RETURN(Stmt jobs, Stmt::Prepare(db, "SELECT id, task_spec FROM jobs ORDER BY id"));
  for (;;) {
    OCX_ASSIGN_OR_RETURN(const bool row, jobs.Step());
    if (!row) break;
    OCX_RETURN_IF_ERROR(
        internal::InsertTaskBlobs(insert, 0, jobs.Int(0), BlobsOfTaskSpec(jobs.Text(1))));
  }
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
  } else if (has_meta && (version == 3 || version == 4)) {
    // Migrated in place, no rebuild, in one transaction: version 4 changed only indexes;
    // version 5 added task_blobs, filled from the rows already there.
    OCX_RETURN_IF_ERROR(InWriteTransaction(write_db_, [this, version] {
      if (version == 3) OCX_RETURN_IF_ERROR(write_db_.Exec(sqlite::kMigrateFrom3Sql));
      return MigrateFrom4(write_db_);
    }));
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

}  // namespace ocx::store
