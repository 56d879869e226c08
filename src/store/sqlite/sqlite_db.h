// Thin RAII wrappers over the SQLite C API that report errors as absl::Status with SQLite's
// own message: a connection (Db) and a prepared statement (Statement).
//
// Not thread-safe: a Db and its Statements are used by one thread at a time (the owner
// serializes with its own mutex; connections are opened with SQLITE_OPEN_NOMUTEX).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::store::sqlite {

// The Status for SQLite result code `rc` on `db` (may be null): the code mapped to an absl
// code (busy/locked: Unavailable, full: ResourceExhausted, corrupt/not a database: DataLoss,
// read-only/permission: PermissionDenied, constraint: FailedPrecondition, cannot open or
// I/O: Unavailable, others: Internal), and
// the message "sqlite: <context>: <sqlite's message> (code <extended code>)".
absl::Status SqliteError(sqlite3* db, int rc, std::string_view context);

// An owned sqlite3 connection.
class Db {
 public:
  Db() = default;
  ~Db();
  Db(Db&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // sqlite3_open_v2(path, flags | SQLITE_OPEN_NOMUTEX), extended result codes on.
  static absl::StatusOr<Db> Open(const std::string& path, int flags);

  // Runs one or more SQL statements that return no rows (DDL, pragmas, BEGIN/COMMIT).
  absl::Status Exec(std::string_view sql);

  void Close();
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// An owned prepared statement, reused: bind, step, reset.
// Bind errors (an index out of range, out of memory) are programmer errors and assert.
class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  static absl::StatusOr<Statement> Prepare(const Db& db, std::string_view sql);

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);  // Copied (SQLITE_TRANSIENT).
  Statement& BindNull(int index);

  // Steps once: true with a row to read, false when done. On error the statement is reset.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows to completion, then resets it.
  absl::Status Run();
  // Resets the statement and clears its bindings, ready for the next use.
  void Reset();

  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) const;

  // Rows changed by the last Run() (sqlite3_changes of the connection).
  int64_t changes() const { return sqlite3_changes64(db_); }
  // Rowid of the last INSERT on the connection.
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when leaving a scope, so that an early return never leaves a read
// transaction open on it.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.Reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& statement_;
};

}  // namespace ocx::store::sqlite
