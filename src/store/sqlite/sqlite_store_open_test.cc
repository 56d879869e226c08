// Opening a SqliteStore: bad paths and options, files that are not a store, other schema
// versions, WAL mode, the writer's nice value, and the commit interval's wait.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/store/sqlite/sqlite_db.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::store {
namespace {

using testing::ExchangeDriver;
using testing::OpenAt;
using testing::TempDir;

TEST(SqliteStoreOpenTest, MissingDirectoryIsNotFound) {
  TempDir dir;
  const absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("nope/store.db"));
  ASSERT_EQ(store.status().code(), absl::StatusCode::kNotFound) << store.status();
  EXPECT_NE(store.status().message().find("nope"), std::string::npos) << store.status();
}

TEST(SqliteStoreOpenTest, DirectoryThatIsAFileIsRefused) {
  TempDir dir;
  std::ofstream(dir.File("file")) << "x";
  const absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("file/store.db"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
}

TEST(SqliteStoreOpenTest, UnwritableDirectoryIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes anywhere";
  TempDir dir;
  const std::string sub = dir.File("ro");
  ASSERT_EQ(::mkdir(sub.c_str(), 0500), 0);
  const absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(sub + "/store.db");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kPermissionDenied) << store.status();
  ::chmod(sub.c_str(), 0700);
}

TEST(SqliteStoreOpenTest, EmptyPathAndBadBoundsAreInvalid) {
  EXPECT_EQ(OpenAt("").status().code(), absl::StatusCode::kInvalidArgument);
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir.File("store.db");
  options.queue_commands_max = 0;
  EXPECT_EQ(SqliteStore::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.queue_commands_max = 1;
  options.writer_nice = 20;
  EXPECT_EQ(SqliteStore::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.writer_nice = -1;  // Would need a privilege, and would outrank the exchange.
  EXPECT_EQ(SqliteStore::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
}

// The nice value of this process's threads named `name` (field 19 of /proc/self/task/*/stat).
std::vector<int> NiceOfThreadsNamed(const std::string& name) {
  std::vector<int> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    // After the ") " that ends the name: state is field 3, nice field 19.
    std::istringstream rest(stat.substr(stat.rfind(") ") + 2));
    std::string field;
    for (int i = 3; i <= 19 && rest >> field; ++i) {
      if (i == 19) out.push_back(std::stoi(field));
    }
  }
  return out;
}

TEST(SqliteStoreOpenTest, WriterRunsAtTheGivenNiceValue) {
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir.File("store.db");
  options.writer_nice = 7;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  // The writer names and renices itself before it takes its first command: once a command
  // is projected, both are done.
  ASSERT_TRUE((*store)->Enqueue(AppliedCommand{1, testing::kStartTime, {}}).ok());
  ASSERT_TRUE((*store)->Flush().ok());
  ASSERT_EQ((*store)->last_projected_sequence(), 1u);
  EXPECT_EQ(NiceOfThreadsNamed("ocx-store"), std::vector<int>{7});
}

TEST(SqliteStoreOpenTest, FileThatIsNotADatabaseIsDataLoss) {
  TempDir dir;
  std::ofstream(dir.File("store.db")) << std::string(4096, 'z');
  const absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("store.db"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_NE(store.status().message().find("not a database"), std::string::npos) << store.status();
}

TEST(SqliteStoreOpenTest, AnotherProgramsDatabaseIsRefused) {
  TempDir dir;
  {
    absl::StatusOr<sqlite::Db> db =
        sqlite::Db::Open(dir.File("store.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("CREATE TABLE photos (id INTEGER)").ok());
  }
  const absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("store.db"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("not an ocx store"), std::string::npos) << store.status();
}

TEST(SqliteStoreOpenTest, OtherSchemaVersionIsRefusedUnlessRebuildIsAsked) {
  TempDir dir;
  {
    ExchangeDriver d;
    d.Run(core::CreateAccount{0, "op", core::Role::kOperator, {}});
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("store.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Project(d.history()).ok());
  }
  {
    absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir.File("store.db"), SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("UPDATE meta SET value = 99 WHERE key = 'schema_version'").ok());
  }
  const absl::StatusOr<std::unique_ptr<SqliteStore>> refused = OpenAt(dir.File("store.db"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("schema version 99"), std::string::npos)
      << refused.status();

  SqliteStoreOptions options;
  options.path = dir.File("store.db");
  options.rebuild_on_schema_mismatch = true;
  absl::StatusOr<std::unique_ptr<SqliteStore>> rebuilt = SqliteStore::Open(options);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ((*rebuilt)->last_projected_sequence(), 0u);
  absl::StatusOr<std::vector<AccountRow>> accounts = (*rebuilt)->ListAccounts(0, 10);
  ASSERT_TRUE(accounts.ok());
  EXPECT_TRUE(accounts->empty());
}

TEST(SqliteStoreOpenTest, UsesWalMode) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.File("store.db"));
    ASSERT_TRUE(store.ok()) << store.status();
  }
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir.File("store.db"), SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  absl::StatusOr<sqlite::Statement> q = sqlite::Statement::Prepare(*db, "PRAGMA journal_mode");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->Text(0), "wal");
}

// With a commit interval far longer than any test, Flush must still return at once with
// everything visible: it cuts the writer's wait short. (A regression hangs until the ctest
// timeout rather than passing.)
TEST(SqliteStoreCommitIntervalTest, FlushCutsTheGatheringWaitShort) {
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir.File("store.db");
  options.commit_interval_ms = 600'000;
  auto store = SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  for (uint64_t sequence = 1; sequence <= 3; ++sequence) {
    AppliedCommand command;
    command.sequence = sequence;
    command.time_micros = static_cast<int64_t>(sequence);
    command.events.push_back(core::AccountCreated{static_cast<core::AccountId>(sequence),
                                                  "a" + std::to_string(sequence),
                                                  core::Role::kConsumer, {}});
    ASSERT_TRUE((*store)->Enqueue(std::move(command)).ok());
    ASSERT_TRUE((*store)->Flush().ok());
    EXPECT_EQ((*store)->last_projected_sequence(), sequence);
  }
  const auto accounts = (*store)->ListAccounts(0, 10);
  ASSERT_TRUE(accounts.ok());
  EXPECT_EQ(accounts->size(), 3u);
  EXPECT_TRUE((*store)->Close().ok());
}

}  // namespace
}  // namespace ocx::store
