#include "src/store/sqlite/sqlite_db.h"

#include <string>

#include "src/base/assert.h"

namespace ocx::store::sqlite {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view context) {
  const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string text = "sqlite: ";
  text.append(context);
  text += ": ";
  text += message;
  text += " (code " + std::to_string(extended) + ")";
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
      return absl::UnavailableError(text);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(text);
    case SQLITE_CONSTRAINT:  // A row the data says cannot exist yet (a duplicate key).
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

// ---------------------------------------------------------------- Db

Db::~Db() { Close(); }

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    Close();
    db_ = other.db_;
    other.db_ = nullptr;
  }
  return *this;
}

absl::StatusOr<Db> Db::Open(const std::string& path, int flags) {
  Db db;
  const int rc = sqlite3_open_v2(path.c_str(), &db.db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db.db_, rc, "open " + path);
  sqlite3_extended_result_codes(db.db_, 1);
  return db;
}

absl::Status Db::Exec(std::string_view sql) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, text.substr(0, 60));
  return absl::OkStatus();
}

void Db::Close() {
  if (db_ == nullptr) return;
  // Every statement is finalized by its owner first; close_v2 would otherwise defer.
  const int rc = sqlite3_close_v2(db_);
  OCX_ASSERT_MSG(rc == SQLITE_OK, "sqlite3_close_v2 failed");
  db_ = nullptr;
}

// ---------------------------------------------------------------- Statement

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

absl::StatusOr<Statement> Statement::Prepare(const Db& db, std::string_view sql) {
  Statement statement;
  statement.db_ = db.get();
  const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &statement.stmt_, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteError(db.get(), rc, "prepare " + std::string(sql.substr(0, 60)));
  }
  OCX_ASSERT_MSG(statement.stmt_ != nullptr, "empty SQL statement");
  return statement;
}

Statement& Statement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  OCX_ASSERT_MSG(rc == SQLITE_OK, "sqlite3_bind_int64 failed");
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  const int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  OCX_ASSERT_MSG(rc == SQLITE_OK, "sqlite3_bind_text64 failed");
  return *this;
}

Statement& Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  OCX_ASSERT_MSG(rc == SQLITE_OK, "sqlite3_bind_null failed");
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status error = SqliteError(db_, rc, sqlite3_sql(stmt_));
  sqlite3_reset(stmt_);
  return error;
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) {
    sqlite3_clear_bindings(stmt_);
    return row.status();
  }
  OCX_ASSERT_MSG(!*row, "Run() on a statement that returns rows");
  Reset();
  return absl::OkStatus();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

}  // namespace ocx::store::sqlite
