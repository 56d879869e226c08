#include "src/store/sqlite/sqlite_db.h"

#include <string>

#include "gtest/gtest.h"

namespace ocx::store::sqlite {
namespace {

absl::StatusOr<Db> Memory() { return Db::Open(":memory:", SQLITE_OPEN_READWRITE); }

TEST(SqliteErrorTest, MapsResultCodesAndKeepsSqlitesMessage) {
  EXPECT_EQ(SqliteError(nullptr, SQLITE_BUSY, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_FULL, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_NOTADB, "x").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_READONLY, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_CONSTRAINT, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_ERROR, "x").code(), absl::StatusCode::kInternal);
  const absl::Status full = SqliteError(nullptr, SQLITE_FULL, "commit");
  EXPECT_NE(full.message().find("sqlite: commit: database or disk is full"), std::string::npos)
      << full;
}

TEST(SqliteDbTest, ExecErrorCarriesTheSqlAndSqlitesMessage) {
  absl::StatusOr<Db> db = Memory();
  ASSERT_TRUE(db.ok()) << db.status();
  const absl::Status status = db->Exec("SELECT * FROM missing_table");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("no such table: missing_table"), std::string::npos) << status;
}

TEST(SqliteDbTest, PrepareErrorIsAStatus) {
  absl::StatusOr<Db> db = Memory();
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE(Statement::Prepare(*db, "SELEKT 1").ok());
}

TEST(SqliteDbTest, StatementIsReusedAfterReset) {
  absl::StatusOr<Db> db = Memory();
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT) STRICT").ok());
  absl::StatusOr<Statement> insert = Statement::Prepare(*db, "INSERT INTO t VALUES (?1, ?2)");
  ASSERT_TRUE(insert.ok()) << insert.status();
  for (int64_t k = 1; k <= 3; ++k) {
    ASSERT_TRUE(insert->Bind(1, k).Bind(2, "v" + std::to_string(k)).Run().ok());
    EXPECT_EQ(insert->changes(), 1);
    EXPECT_EQ(insert->last_insert_rowid(), k);
  }
  // A constraint violation is a Status and leaves the statement usable.
  const absl::Status duplicate = insert->Bind(1, int64_t{1}).Bind(2, "again").Run();
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kFailedPrecondition) << duplicate;
  EXPECT_NE(duplicate.message().find("UNIQUE constraint failed"), std::string::npos) << duplicate;
  ASSERT_TRUE(insert->Bind(1, int64_t{4}).BindNull(2).Run().ok());

  absl::StatusOr<Statement> select =
      Statement::Prepare(*db, "SELECT k, v FROM t WHERE k >= ?1 ORDER BY k");
  ASSERT_TRUE(select.ok());
  for (int round = 0; round < 2; ++round) {
    select->Bind(1, int64_t{3});
    ASSERT_TRUE(*select->Step());
    EXPECT_EQ(select->Int(0), 3);
    EXPECT_EQ(select->Text(1), "v3");
    ASSERT_TRUE(*select->Step());
    EXPECT_EQ(select->Int(0), 4);
    EXPECT_TRUE(select->IsNull(1));
    EXPECT_EQ(select->Text(1), "");
    EXPECT_FALSE(*select->Step());
    select->Reset();
  }
}

}  // namespace
}  // namespace ocx::store::sqlite
