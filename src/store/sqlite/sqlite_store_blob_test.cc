// Blobs named by tasks (task_blobs): who may read a blob (BlobGranted) and which blobs are
// still needed (BlobReferenced), from real core events; documents that are not what the
// format says; the queries' plans; and the migration of a version 4 file.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "src/store/sqlite/sqlite_db.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/sqlite_store_internal.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::store {
namespace {

using engine::Side;
using testing::ExchangeDriver;
using testing::kCredit;
using testing::kSecond;
using testing::OpenAt;
using testing::TempDir;

constexpr core::Timestamp kForever = std::numeric_limits<core::Timestamp>::max();

std::string Digest(char c) { return std::string(64, c); }

std::string Spec(const std::vector<std::string>& inputs) {
  std::string spec = R"({"command":["true"],"inputs":[)";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i > 0) spec += ",";
    spec += R"({"path":"in/)" + std::to_string(i) + R"(","sha256":")" + inputs[i] + R"("})";
  }
  return spec + "]}";
}

std::string Result(const std::string& out, const std::string& err,
                   const std::vector<std::string>& outputs) {
  std::string result = R"({"status":"succeeded","stdout":{"sha256":")" + out +
                       R"("},"stderr":{"sha256":")" + err + R"("},"outputs":[)";
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (i > 0) result += ",";
    result += R"({"path":"out/)" + std::to_string(i) + R"(","sha256":")" + outputs[i] + R"("})";
  }
  return result + "]}";
}

// Every row of task_blobs, in key order.
using BlobRow = std::tuple<std::string, int64_t, int64_t, std::string>;
std::vector<BlobRow> TaskBlobRows(const std::string& path) {
  std::vector<BlobRow> rows;
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return rows;
  absl::StatusOr<sqlite::Statement> q = sqlite::Statement::Prepare(
      *db, "SELECT sha256, lease, job, role FROM task_blobs ORDER BY sha256, lease, job, role");
  EXPECT_TRUE(q.ok()) << q.status();
  while (q.ok() && *q->Step()) rows.emplace_back(q->Text(0), q->Int(1), q->Int(2), q->Text(3));
  return rows;
}

// Every table's and index's SQL in a store file, by name.
std::map<std::string, std::string> SchemaOf(const std::string& path) {
  std::map<std::string, std::string> out;
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return out;
  absl::StatusOr<sqlite::Statement> q =
      sqlite::Statement::Prepare(*db, "SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL");
  EXPECT_TRUE(q.ok()) << q.status();
  while (q.ok() && *q->Step()) out[q->Text(0)] = q->Text(1);
  return out;
}

int64_t SchemaVersionOf(const std::string& path) {
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return -1;
  absl::StatusOr<sqlite::Statement> q =
      sqlite::Statement::Prepare(*db, "SELECT value FROM meta WHERE key = 'schema_version'");
  EXPECT_TRUE(q.ok()) << q.status();
  if (!q.ok() || !*q->Step()) return -1;
  return q->Int(0);
}

// Through a real core::Exchange: alice's lease 1 runs a task (inputs kIn1 and kShared) that
// finishes (stdout, stderr, output kOut1) before the lease ends; alice's lease 2 is still
// active with kIn2; bob's lease 3 (kIn3) is released a minute after lease 1 ended, its task
// never reporting; alice's lease 4 gets a spec that is not JSON and a result whose fields have
// the wrong types. Carol's job 1 (kJobIn) rests unfilled, so it is active; her job 2 (kJobIn2)
// is filled on prov's machine and then cancelled.
class SqliteStoreBlobTest : public ::testing::Test {
 protected:
  SqliteStoreBlobTest() { RunScenario(); }

  std::unique_ptr<SqliteStore> Open(const std::string& name = "store.db") {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir_.File(name));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<SqliteStore> OpenProjected(const std::string& name = "store.db") {
    auto store = Open(name);
    if (store != nullptr) {
      EXPECT_TRUE(store->Project(d_.history()).ok());
    }
    return store;
  }
  const std::vector<AppliedCommand>& history() const { return d_.history(); }

  core::CommandResult Run(const core::CommandBody& command) {
    core::CommandResult result;
    d_.Run(command, &result);
    EXPECT_TRUE(result.accepted) << result.code() << ": " << result.message;
    return result;
  }
  // Time passes while the machine keeps sending heartbeats every 5 s, as its agent does.
  void Elapse(core::Timestamp by) {
    for (core::Timestamp done = 0; done < by; done += 5 * kSecond) {
      d_.Advance(5 * kSecond);
      Run(core::Heartbeat{machine_});
    }
  }
  core::LeaseId Buy(core::AccountId who) {
    core::PlaceOrder c;
    c.actor = who;
    c.market = "cpu";
    c.client_order_id = "b" + std::to_string(++client_id_);
    c.side = Side::kBuy;
    c.price = 100'000;
    c.quantity = 1;
    c.max_hours = 2;
    const size_t leases_before = d_.exchange().leases().size();
    Run(c);
    EXPECT_EQ(d_.exchange().leases().size(), leases_before + 1);
    return d_.exchange().leases().rbegin()->first;
  }
  core::JobId Submit(const std::string& client_job_id, core::PriceMicros max_price,
                     const std::string& spec) {
    core::SubmitJob c;
    c.actor = carol_;
    c.client_job_id = client_job_id;
    c.market = "cpu";
    c.slots_per_task = 1;
    c.tasks = 1;
    c.max_price = max_price;
    c.max_hours = 1;
    c.task_spec = spec;
    return Run(c).job;
  }

  void RunScenario() {
    op_ = Run(core::CreateAccount{0, "op", core::Role::kOperator, {}}).account;
    alice_ = Run(core::CreateAccount{op_, "alice", core::Role::kConsumer, {}}).account;
    bob_ = Run(core::CreateAccount{op_, "bob", core::Role::kConsumer, {}}).account;
    carol_ = Run(core::CreateAccount{op_, "carol", core::Role::kConsumer, {}}).account;
    prov_ = Run(core::CreateAccount{op_, "prov", core::Role::kProvider, {}}).account;
    for (const core::AccountId a : {alice_, bob_, carol_}) {
      Run(core::Deposit{op_, a, 100 * kCredit});
    }
    core::RegisterMachine machine;
    machine.actor = prov_;
    machine.spec.name = "box";
    machine.spec.capacity["cpu"] = 16;
    machine_ = Run(machine).machine;
    Elapse(5 * kSecond);
    core::PlaceOrder sell;
    sell.actor = prov_;
    sell.market = "cpu";
    sell.client_order_id = "sell";
    sell.side = Side::kSell;
    sell.price = 100'000;
    sell.quantity = 8;
    sell.machine = machine_;
    Run(sell);

    lease1_ = Buy(alice_);
    Run(core::AssignTask{alice_, lease1_, Spec({kIn1, kShared})});
    lease2_ = Buy(alice_);
    Run(core::AssignTask{alice_, lease2_, Spec({kIn2, kShared})});
    lease3_ = Buy(bob_);
    Run(core::AssignTask{bob_, lease3_, Spec({kIn3})});
    lease4_ = Buy(alice_);
    // Not JSON (cut short): a digest in it names nothing.
    const std::string bad_spec = Spec({kBadSpec});
    Run(core::AssignTask{alice_, lease4_, bad_spec.substr(0, bad_spec.size() - 1)});
    job1_ = Submit("j1", 50'000, Spec({kJobIn}));    // Below the ask: rests.
    job2_ = Submit("j2", 100'000, Spec({kJobIn2}));  // Fills at once.
    job2_lease_ = d_.exchange().leases().rbegin()->first;
    EXPECT_NE(job2_lease_, lease4_);

    Elapse(30 * kSecond);
    before_results_ = history().size();
    Run(core::FinishTask{machine_, lease1_, Result(kStdout1, kStderr1, {kOut1})});
    lease1_finished_ = d_.now();
    d_.Advance(kSecond);
    Run(core::EndLease{0, machine_, lease1_, core::LeaseEndReason::kFinished});
    lease1_ended_ = d_.now();
    Run(core::FinishTask{machine_, lease4_,
                         R"({"status":"succeeded","stdout":")" + kBadResult +
                             R"(","outputs":{"sha256":")" + kBadResult + R"("}})"});
    Run(core::CancelJob{carol_, job2_});
    Elapse(60 * kSecond);
    Run(core::EndLease{bob_, 0, lease3_, core::LeaseEndReason::kReleased});
    lease3_ended_ = d_.now();
    Elapse(10 * kSecond);
  }

  const std::string kIn1 = Digest('1'), kIn2 = Digest('2'), kIn3 = Digest('3');
  const std::string kShared = Digest('5');
  const std::string kStdout1 = Digest('6'), kStderr1 = Digest('7'), kOut1 = Digest('8');
  const std::string kJobIn = Digest('a'), kJobIn2 = Digest('b');
  const std::string kBadSpec = Digest('c'), kBadResult = Digest('d');
  const std::string kUnknown = Digest('f');

  TempDir dir_;
  ExchangeDriver d_;
  int client_id_ = 0;
  core::AccountId op_ = 0, alice_ = 0, bob_ = 0, carol_ = 0, prov_ = 0;
  core::MachineId machine_ = 0;
  core::LeaseId lease1_ = 0, lease2_ = 0, lease3_ = 0, lease4_ = 0, job2_lease_ = 0;
  core::JobId job1_ = 0, job2_ = 0;
  core::Timestamp lease1_finished_ = 0, lease1_ended_ = 0, lease3_ended_ = 0;
  size_t before_results_ = 0;  // Commands before lease 1's result.
};

// Whether `account` is granted each of `digests`, as a string of 0s and 1s.
std::string Grants(SqliteStore& store, core::AccountId account,
                   const std::vector<std::string>& digests) {
  std::string out;
  for (const std::string& digest : digests) {
    absl::StatusOr<bool> granted = store.BlobGranted(digest, account);
    EXPECT_TRUE(granted.ok()) << granted.status();
    out += granted.ok() && *granted ? '1' : '0';
  }
  return out;
}

bool Referenced(SqliteStore& store, const std::string& digest, core::Timestamp since) {
  absl::StatusOr<bool> referenced = store.BlobReferenced(digest, since);
  EXPECT_TRUE(referenced.ok()) << referenced.status();
  return referenced.ok() && *referenced;
}

TEST_F(SqliteStoreBlobTest, TheBuyerAndTheSellerOfALeaseAreGrantedItsTasksBlobs) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  // Lease 1's spec and result, lease 2's spec, lease 3's spec.
  const std::vector<std::string> digests = {kIn1, kShared, kStdout1, kStderr1, kOut1, kIn2, kIn3};
  EXPECT_EQ(Grants(*store, alice_, digests), "1111110");
  EXPECT_EQ(Grants(*store, prov_, digests), "1111111");
  EXPECT_EQ(Grants(*store, bob_, digests), "0000001");
  EXPECT_EQ(Grants(*store, carol_, digests), "0000000");  // A stranger to these leases.
  EXPECT_EQ(Grants(*store, op_, digests), "0000000");     // The store knows no operator rule.
  EXPECT_EQ(Grants(*store, 999, digests), "0000000");     // No such account.
}

TEST_F(SqliteStoreBlobTest, AJobsOwnerIsGrantedItsTaskSpecsBlobs) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  // Job 1 never got a lease: only its owner. Job 2's task ran on prov's machine: its lease
  // names the blob for the seller too.
  EXPECT_EQ(Grants(*store, carol_, {kJobIn, kJobIn2}), "11");
  EXPECT_EQ(Grants(*store, prov_, {kJobIn, kJobIn2}), "01");
  EXPECT_EQ(Grants(*store, alice_, {kJobIn, kJobIn2}), "00");
  EXPECT_EQ(Grants(*store, bob_, {kJobIn, kJobIn2}), "00");
}

TEST_F(SqliteStoreBlobTest, BlobsOfActiveLeasesAndRunningJobsAreReferencedWhateverTheTime) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(d_.exchange().leases().contains(lease2_));
  ASSERT_TRUE(d_.exchange().jobs().contains(job1_));
  for (const std::string& digest : {kIn2, kShared, kJobIn}) {
    EXPECT_TRUE(Referenced(*store, digest, kForever)) << digest;
  }
}

TEST_F(SqliteStoreBlobTest, BlobsOfRecentlyEndedTasksAreReferencedAndOfLongEndedOnesNot) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  ASSERT_LT(lease1_finished_, lease1_ended_);
  ASSERT_LT(lease1_ended_, lease3_ended_);
  // Lease 1 (spec and result): kept while its task finished or its lease ended at or after
  // `since`.
  for (const std::string& digest : {kIn1, kStdout1, kStderr1, kOut1}) {
    EXPECT_TRUE(Referenced(*store, digest, lease1_finished_)) << digest;
    EXPECT_TRUE(Referenced(*store, digest, lease1_ended_)) << digest;
    EXPECT_FALSE(Referenced(*store, digest, lease1_ended_ + 1)) << digest;
  }
  // Lease 3 ended a minute later; its task never finished: its end time counts.
  EXPECT_TRUE(Referenced(*store, kIn3, lease1_ended_ + 1));
  EXPECT_TRUE(Referenced(*store, kIn3, lease3_ended_));
  EXPECT_FALSE(Referenced(*store, kIn3, lease3_ended_ + 1));
  // Job 2 was cancelled: its spec is kept only as long as its lease's end is recent.
  EXPECT_FALSE(d_.exchange().jobs().contains(job2_));
  EXPECT_FALSE(Referenced(*store, kJobIn2, d_.now() + 1));
  // Nothing names it.
  EXPECT_FALSE(Referenced(*store, kUnknown, 0));
  EXPECT_EQ(Grants(*store, alice_, {kUnknown}), "0");
}

TEST_F(SqliteStoreBlobTest, MalformedDocumentsNameNothingAndDoNotStopProjection) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), history().back().sequence);
  absl::StatusOr<TaskRow> task = store->GetTask(lease4_);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->status, "finished");
  for (const std::string& digest : {kBadSpec, kBadResult}) {
    EXPECT_EQ(Grants(*store, alice_, {digest}), "0") << digest;
    EXPECT_FALSE(Referenced(*store, digest, 0)) << digest;
  }

  // Documents from a hand-made journal: each is projected and names nothing.
  const std::string d = Digest('e');
  const std::vector<std::string> documents = {
      "",
      "[" + Spec({d}) + "]",
      std::string("{\"inputs\":[]}\0", 14) + Spec({d}),
      R"({"inputs":[],"inputs":[{"sha256":")" + d + R"("}]})",
      R"({"inputs":)" + std::string(100, '[') + std::string(100, ']') + "}",
      R"({"inputs":[{"sha256":")" + d + R"("}],"x":")" + "\xc3\x28" + R"("})",
      R"({"inputs":{"sha256":")" + d + R"("},"stdout":")" + d + R"("})",
  };
  uint64_t sequence = history().back().sequence;
  core::Timestamp time = d_.now();
  core::LeaseId lease = 1000;
  core::JobId job = 1000;
  for (const std::string& document : documents) {
    ++lease;
    ++job;
    core::SubmitJob spec;
    spec.tasks = 1;
    spec.task_spec = document;
    const std::vector<AppliedCommand> commands = {
        {++sequence, time, {core::TaskAssigned{lease, alice_, machine_, document}}},
        {++sequence, time, {core::TaskFinished{lease, alice_, machine_, document}}},
        {++sequence, time, {core::JobSubmitted{job, alice_, spec, time}}},
    };
    ASSERT_TRUE(store->Project(commands).ok()) << document;
  }
  EXPECT_EQ(store->last_projected_sequence(), sequence);
  EXPECT_EQ(Grants(*store, alice_, {d}), "0");
  EXPECT_FALSE(Referenced(*store, d, 0));
}

TEST_F(SqliteStoreBlobTest, ADigestThatIsNotOneIsInvalid) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  std::string upper = kIn1;
  upper[0] = 'A';
  for (const std::string& bad : {std::string(), kIn1.substr(1), kIn1 + "1", upper,
                                 std::string(64, 'g'), std::string("../") + kIn1}) {
    EXPECT_EQ(store->BlobGranted(bad, alice_).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(store->BlobReferenced(bad, 0).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(store->BlobGranted(kIn1, alice_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->BlobReferenced(kIn1, 0).status().code(), absl::StatusCode::kFailedPrecondition);
}

// Each query walks task_blobs' primary key from the digest and finds every lease, task and job
// by its primary key: no table scanned, no sort.
TEST_F(SqliteStoreBlobTest, QueriesUseTheIndexes) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir_.File("store.db"), SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok()) << db.status();
  for (const char* sql : {internal::kBlobGrantedSql, internal::kBlobReferencedSql}) {
    absl::StatusOr<sqlite::Statement> plan =
        sqlite::Statement::Prepare(*db, std::string("EXPLAIN QUERY PLAN ") + sql);
    ASSERT_TRUE(plan.ok()) << plan.status();
    std::vector<std::string> steps;
    std::string details;
    while (*plan->Step()) {
      steps.push_back(plan->Text(3));
      details += steps.back() + "\n";
    }
    SCOPED_TRACE(details);
    EXPECT_NE(details.find("SEARCH b USING PRIMARY KEY (sha256=? AND lease>?)"), std::string::npos);
    EXPECT_NE(details.find("SEARCH b USING PRIMARY KEY (sha256=? AND lease=? AND job>?)"),
              std::string::npos);
    for (const std::string& step : steps) {
      // The outer SELECT of two subqueries reads no table ("SCAN CONSTANT ROW").
      if (step.starts_with("SCAN")) {
        EXPECT_EQ(step, "SCAN CONSTANT ROW");
      }
      EXPECT_EQ(step.find("TEMP B-TREE"), std::string::npos) << step;
    }
  }
}

TEST_F(SqliteStoreBlobTest, RebuildAndReprojectionGiveTheSameRows) {
  auto store = OpenProjected();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Close().ok());
  const std::vector<BlobRow> before = TaskBlobRows(dir_.File("store.db"));
  // Lease 1: 2 inputs + 3 result blobs; lease 2: 2; lease 3: 1; job 2's lease: 1; jobs: 2.
  EXPECT_EQ(before.size(), 11u);
  EXPECT_NE(std::find(before.begin(), before.end(),
                      BlobRow{kStderr1, static_cast<int64_t>(lease1_), 0, "stderr"}),
            before.end());
  EXPECT_NE(std::find(before.begin(), before.end(),
                      BlobRow{kJobIn, 0, static_cast<int64_t>(job1_), "input"}),
            before.end());
  store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());  // Already projected: skipped.
  ASSERT_TRUE(store->Rebuild().ok());
  EXPECT_EQ(Grants(*store, alice_, {kIn1}), "0");
  ASSERT_TRUE(store->Project(history()).ok());
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(TaskBlobRows(dir_.File("store.db")), before);
}

// Version 5 added task_blobs: a version 4 file is migrated in place when opened, the table
// filled from the tasks and jobs already there, in the same rows as projection writes; then
// projection goes on.
TEST_F(SqliteStoreBlobTest, VersionFourStoreIsMigratedInPlace) {
  const size_t split = before_results_;  // Lease 1's result and end come after.
  const std::vector<AppliedCommand> first(history().begin(), history().begin() + split);
  const std::vector<AppliedCommand> rest(history().begin() + split, history().end());
  {
    auto reference = Open("reference.db");
    ASSERT_NE(reference, nullptr);
    ASSERT_TRUE(reference->Project(first).ok());
    ASSERT_TRUE(reference->Close().ok());
  }
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Project(first).ok());
  }
  ASSERT_FALSE(TaskBlobRows(dir_.File("reference.db")).empty());
  {
    // The version 4 schema: no task_blobs.
    absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(dir_.File("store.db"), SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(db->Exec("DROP TABLE task_blobs; "
                         "UPDATE meta SET value = 4 WHERE key = 'schema_version'")
                    .ok());
  }
  ASSERT_FALSE(SchemaOf(dir_.File("store.db")).contains("task_blobs"));
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->last_projected_sequence(), first.back().sequence);
  EXPECT_EQ(SchemaVersionOf(dir_.File("store.db")), kSqliteSchemaVersion);
  EXPECT_EQ(SchemaOf(dir_.File("store.db")), SchemaOf(dir_.File("reference.db")));
  EXPECT_EQ(TaskBlobRows(dir_.File("store.db")), TaskBlobRows(dir_.File("reference.db")));
  EXPECT_EQ(Grants(*store, alice_, {kIn1, kIn2}), "11");

  ASSERT_TRUE(store->Project(rest).ok());
  ASSERT_TRUE(store->Close().ok());
  auto full = OpenProjected("full.db");
  ASSERT_NE(full, nullptr);
  ASSERT_TRUE(full->Close().ok());
  EXPECT_EQ(TaskBlobRows(dir_.File("store.db")), TaskBlobRows(dir_.File("full.db")));
}

// A version 4 file whose tasks and jobs hold documents that are not what the format says
// migrates like any other: they name nothing.
TEST(SqliteStoreBlobMigrationTest, MalformedDocumentsDoNotStopTheMigration) {
  TempDir dir;
  const std::string path = dir.File("store.db");
  {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(path);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  {
    absl::StatusOr<sqlite::Db> db = sqlite::Db::Open(path, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db.ok()) << db.status();
    const std::string good = Spec({Digest('1')});
    ASSERT_TRUE(db->Exec("DROP TABLE task_blobs; "
                         "UPDATE meta SET value = 4 WHERE key = 'schema_version'; "
                         "INSERT INTO tasks (lease, buyer, machine, spec, status, result, "
                         "assigned_seq, assigned_time) VALUES "
                         "(1, 1, 1, 'not json', 'finished', '{\"outputs\":3}', 1, 1), "
                         "(2, 1, 1, '" +
                         good +
                         "', 'running', NULL, 2, 2), "
                         "(3, 1, 1, '[]', 'lost', '', 3, 3); "
                         "INSERT INTO jobs (id, owner, client_job_id, market, slots_per_task, "
                         "tasks_count, max_price, max_hours, constraints, task_spec, state, "
                         "submitted_seq, submitted_time) VALUES "
                         "(1, 1, 'j', 'cpu', 1, 1, 1, 1, '', '{\"inputs\":[{\"sha256\":7}]}', "
                         "'active', 4, 4)")
                    .ok());
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_EQ(SchemaVersionOf(path), kSqliteSchemaVersion);
  EXPECT_EQ(TaskBlobRows(path), (std::vector<BlobRow>{{Digest('1'), 2, 0, "input"}}));
}

}  // namespace
}  // namespace ocx::store
