// SqliteStore: the Store on an embedded SQLite 3 database (docs/formats/store.md).
//
// Writing. Enqueue() puts an applied command on a bounded queue (SqliteStoreOptions::
// queue_commands_max) and returns; the store's writer thread takes everything queued, up to
// batch_commands_max commands, and projects it in ONE transaction (prepared statements
// reused), then goes back for the next batch, which filled while it was committing. So the
// sequencer never waits on SQLite except when the queue is full: then Enqueue blocks until
// the writer has taken a batch (backpressure, never unbounded memory). Project() is the
// synchronous path (tests, rebuilds); it shares the writer's connection under write_mu_.
// The last projected sequence is kept in the `meta` table in the same transaction as the
// batch's rows, so a crash loses whole batches only and a reopen resumes after the last
// committed one. The database runs in WAL mode with synchronous=NORMAL: a power cut may lose
// the last batches (it is rebuildable from the journal), never corrupt the file.
//
// Reading. Queries use a second connection (query_only) guarded by read_mu_: in WAL mode
// they read the last committed batch without blocking the writer, and the writer never
// blocks them. One read connection serializes queries; a pool is the next step if the API
// needs parallel reads.
//
// Ownership: the caller owns the SqliteStore; it owns both connections and the writer thread.
// One SqliteStore per database file (a second writer would wait on SQLite's lock).
// Thread-safety: see Store. Lock order: write_mu_ before mu_; read_mu_ alone.
// Invariants: last_projected_sequence() equals meta.last_sequence of the committed database;
// sequences and times of projected commands never decrease (bad input is refused with
// FailedPrecondition, which stops projection like any other projection error).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/store/sqlite/sqlite_db.h"
#include "src/store/store.h"

namespace ocx::store {

// Version of the tables (docs/formats/store.md), kept in meta.schema_version.
// 2: tasks; 3: jobs, job_tasks; 4: ledger indexes (no `time`; `to_owner` only between two
// accounts), migrated in place from 3; 5: task_blobs, migrated in place from 4 (and 3).
inline constexpr int64_t kSqliteSchemaVersion = 5;
// Named bounds and defaults for SqliteStoreOptions.
inline constexpr size_t kDefaultQueueCommandsMax = 8192;
inline constexpr size_t kDefaultBatchCommandsMax = 1024;

struct SqliteStoreOptions {
  // The database file, created when missing. Its directory must exist and be writable
  // (SQLite writes `<path>-wal` and `<path>-shm` beside it).
  std::string path;
  // Commands queued by Enqueue and not yet taken by the writer; Enqueue blocks when full.
  // >= 1.
  size_t queue_commands_max = kDefaultQueueCommandsMax;
  // Most commands the writer projects in one transaction. >= 1.
  size_t batch_commands_max = kDefaultBatchCommandsMax;
  // A database written by another schema version is refused (FailedPrecondition) unless this
  // is set: then it is emptied and starts from sequence 0, to be projected again.
  bool rebuild_on_schema_mismatch = false;
  // When > 0, the writer lets commands gather for up to this long after a commit before the
  // next one (unless a batch is full or someone waits in Flush). Each SQLite commit writes
  // whole pages to the WAL, so few large transactions cost far less CPU than many small ones;
  // the store is a projection and readers that need it current call Flush, which cuts the
  // wait short. 0: commit as soon as anything is queued.
  int64_t commit_interval_ms = 0;
  // The writer thread's nice value (0 .. 19; 0: as the process). The exchange raises it: the
  // projection is off the acknowledgement path and commits in bursts (a transaction every
  // commit interval), and at equal priority those bursts delay the threads that answer
  // orders. Store reads that wait for the projection (Flush) wait longer under full load.
  int writer_nice = 0;
};

class SqliteStore final : public Store {
 public:
  // Opens (or creates) the database, checks its schema version and starts the writer.
  // NotFound: the directory is missing; FailedPrecondition: the directory is not a
  // directory, the file is another program's database, or another schema version;
  // PermissionDenied: the directory is not writable; DataLoss: the file is not a database;
  // InvalidArgument: bad options.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(SqliteStoreOptions options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;  // Close().

  absl::Status Enqueue(AppliedCommand command) override;
  absl::Status Flush() override;
  absl::Status Project(std::span<const AppliedCommand> commands) override;
  uint64_t last_projected_sequence() const override {
    return last_sequence_.load(std::memory_order_acquire);
  }
  absl::Status Rebuild() override;
  absl::Status Close() override;

  absl::StatusOr<std::vector<AccountRow>> ListAccounts(core::AccountId after,
                                                       size_t limit) override;
  absl::StatusOr<std::vector<BalanceRow>> Balances(core::AccountId account) override;
  absl::StatusOr<std::vector<LedgerEntryRow>> ListLedgerEntries(core::AccountId account,
                                                                uint64_t after,
                                                                size_t limit) override;
  absl::StatusOr<AccountStatement> Statement(core::AccountId account, core::Timestamp from_time,
                                             core::Timestamp to_time) override;
  absl::StatusOr<std::vector<TradeRow>> ListTrades(const std::string& market, uint64_t after,
                                                   size_t limit) override;
  absl::StatusOr<std::vector<OrderRow>> ListOrders(core::AccountId account,
                                                   std::optional<OrderStatus> status,
                                                   core::OrderId after, size_t limit) override;
  absl::StatusOr<std::vector<LeaseRow>> ListLeases(core::AccountId account, core::LeaseId after,
                                                   size_t limit) override;
  absl::StatusOr<LeaseRow> GetLease(core::LeaseId id) override;
  absl::StatusOr<TaskRow> GetTask(core::LeaseId lease) override;
  absl::StatusOr<JobRow> GetJob(core::JobId id) override;
  absl::StatusOr<std::vector<JobRow>> ListJobs(core::AccountId owner, core::JobId after,
                                               size_t limit) override;
  absl::StatusOr<std::vector<UsageRow>> ListUsage(core::LeaseId lease, uint64_t after,
                                                  size_t limit) override;
  absl::StatusOr<std::vector<MachineRow>> ListMachines(core::MachineId after,
                                                       size_t limit) override;
  // InvalidArgument unless `sha256` is 64 lowercase hex digits (the only digests stored).
  absl::StatusOr<bool> BlobGranted(const std::string& sha256, core::AccountId account) override;
  absl::StatusOr<bool> BlobReferenced(const std::string& sha256, core::Timestamp since) override;

  // Counters for benchmarks and tests.
  uint64_t batches_committed() const { return batches_committed_.load(std::memory_order_relaxed); }
  const std::string& path() const { return options_.path; }

 private:
  struct WriteStatements;
  struct ReadStatements;

  explicit SqliteStore(SqliteStoreOptions options);

  absl::Status Init();
  absl::Status PrepareWriter();
  absl::Status PrepareReader();
  void WriterLoop();

  // Projects one batch in one transaction. Requires write_mu_.
  absl::Status ProjectLocked(std::span<const AppliedCommand> commands);
  // The net change of each balance (owner, kind) over a batch: written once per batch, so an
  // order's hold and its release in the same batch cost no balance write.
  using BalanceDeltas = std::map<std::pair<core::AccountId, core::BalanceKind>, core::Micros>;
  absl::Status ProjectCommand(const AppliedCommand& command, BalanceDeltas* balance_deltas);
  // Records the first projection error (sticky) and wakes every waiter.
  void Fail(const absl::Status& error);
  absl::Status sticky_status();

  const SqliteStoreOptions options_;

  // Writer connection and the projection's state. Guarded by write_mu_.
  std::mutex write_mu_;
  sqlite::Db write_db_;
  std::unique_ptr<WriteStatements> write_;
  int64_t last_time_ = 0;  // Of the last projected command.

  // Reader connection. Guarded by read_mu_.
  std::mutex read_mu_;
  sqlite::Db read_db_;
  std::unique_ptr<ReadStatements> read_;

  std::mutex mu_;
  std::condition_variable writer_cv_;  // Queued commands or closing, for the writer.
  std::condition_variable space_cv_;   // Room in queue_, for producers.
  std::condition_variable done_cv_;    // processed_ advanced or failure, for Flush.
  std::deque<AppliedCommand> queue_;   // Guarded by mu_. Size <= queue_commands_max.
  uint64_t enqueued_ = 0;              // Commands ever enqueued. Guarded by mu_.
  uint64_t processed_ = 0;             // Of those, taken and committed. Guarded by mu_.
  absl::Status status_;                // First projection error; sticky. Guarded by mu_.
  bool closing_ = false;               // Guarded by mu_.
  size_t flush_waiters_ = 0;           // Threads in Flush(). Guarded by mu_.
  bool lingering_ = false;             // Writer gathering a batch. Guarded by mu_.

  std::atomic<uint64_t> last_sequence_{0};  // Written under write_mu_ after each commit.
  std::atomic<uint64_t> batches_committed_{0};

  std::mutex close_mu_;  // Serializes Close().
  bool closed_ = false;  // Guarded by close_mu_.
  std::thread writer_;
};

}  // namespace ocx::store
