// SqliteStore's jobs and job tasks against a real core::Exchange: a job finished after a
// task was lost and placed again, a job cancelled, the store equal to the core's live jobs at
// every checkpoint, paging, rebuild, and job events out of step.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "src/store/sqlite/sqlite_store.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::store {
namespace {

using engine::Side;
using testing::ExchangeDriver;
using testing::kCredit;
using testing::kSecond;
using testing::TempDir;

// A job's life through a real core::Exchange: job 1 (two tasks) has task 0 filled on
// machine 1 and finished, task 1 filled on machine 2, lost with it when machine 2 stops
// sending heartbeats, placed again, filled on machine 1 and finished, so the job is done;
// job 2 (one task) is cancelled while its order rests. Checkpoints keep the core's live
// jobs after each step, to compare the store with when projected up to there.
class SqliteStoreJobTest : public ::testing::Test {
 protected:
  SqliteStoreJobTest() { RunScenario(); }

  std::unique_ptr<SqliteStore> Open(const std::string& name = "store.db") {
    SqliteStoreOptions options;
    options.path = dir_.File(name);
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  const std::vector<AppliedCommand>& history() const { return d_.history(); }
  const core::Exchange& x() const { return d_.exchange(); }

  core::CommandResult Run(const core::CommandBody& command) {
    core::CommandResult result;
    d_.Run(command, &result);
    EXPECT_TRUE(result.accepted) << result.code() << ": " << result.message;
    return result;
  }
  core::MachineId Register(const std::string& name) {
    core::RegisterMachine machine;
    machine.actor = prov_;
    machine.spec.name = name;
    machine.spec.capacity["cpu"] = 8;
    return Run(machine).machine;
  }
  core::JobId Submit(const std::string& client_job_id, int32_t tasks) {
    core::SubmitJob c;
    c.actor = alice_;
    c.client_job_id = client_job_id;
    c.market = "cpu";
    c.slots_per_task = 2;
    c.tasks = tasks;
    c.max_price = 100'000;
    c.max_hours = 1;
    c.task_spec = kTaskSpec;
    return Run(c).job;
  }
  void Sell(core::MachineId machine) {
    core::PlaceOrder c;
    c.actor = prov_;
    c.market = "cpu";
    c.client_order_id = "s" + std::to_string(++sells_);
    c.side = Side::kSell;
    c.price = 100'000;
    c.quantity = 2;
    c.max_hours = 1;
    c.machine = machine;
    Run(c);
  }
  const core::JobTask& Task(core::JobId job, int index) const {
    return x().jobs().at(job).tasks.at(static_cast<size_t>(index));
  }
  void Checkpoint() { checkpoints_.push_back({d_.sequence(), x().jobs()}); }

  void RunScenario() {
    op_ = Run(core::CreateAccount{0, "op", core::Role::kOperator, {}}).account;
    alice_ = Run(core::CreateAccount{op_, "alice", core::Role::kConsumer, {}}).account;
    prov_ = Run(core::CreateAccount{op_, "prov", core::Role::kProvider, {}}).account;
    Run(core::Deposit{op_, alice_, 100 * kCredit});
    m1_ = Register("m1");
    m2_ = Register("m2");
    d_.Advance(kSecond);
    Run(core::Heartbeat{m1_});
    Run(core::Heartbeat{m2_});

    job1_ = Submit("j1", 2);
    submit1_sequence_ = d_.sequence();
    submit1_time_ = d_.now();
    order_t0_ = Task(job1_, 0).order;
    ASSERT_NE(order_t0_, 0);
    ASSERT_NE(Task(job1_, 1).order, 0);
    Checkpoint();

    d_.Advance(kSecond);
    Sell(m1_);  // Fills task 0 (first in time).
    ASSERT_EQ(Task(job1_, 0).state, core::JobTaskState::kRunning);
    lease1_ = Task(job1_, 0).lease;
    Checkpoint();
    d_.Advance(kSecond);
    Run(core::FinishTask{m1_, lease1_, kTaskResult});
    Checkpoint();

    Run(core::Heartbeat{m2_});
    Sell(m2_);  // Fills task 1.
    ASSERT_EQ(Task(job1_, 1).machine, m2_);
    lease2_ = Task(job1_, 1).lease;
    Checkpoint();
    // Machine 2 falls silent; machine 1 keeps beating. Task 1 is placed again.
    for (int i = 0; i < 4; ++i) {
      d_.Advance(5 * kSecond);
      Run(core::Heartbeat{m1_});
    }
    ASSERT_FALSE(x().machines().at(m2_).online);
    ASSERT_EQ(Task(job1_, 1).state, core::JobTaskState::kWaiting);
    ASSERT_EQ(Task(job1_, 1).attempts, 2);
    order_t1_retry_ = Task(job1_, 1).order;
    Checkpoint();
    Sell(m1_);
    ASSERT_EQ(Task(job1_, 1).machine, m1_);
    lease3_ = Task(job1_, 1).lease;
    Checkpoint();
    d_.Advance(kSecond);
    Run(core::FinishTask{m1_, lease3_, kTaskResult});
    ASSERT_FALSE(x().jobs().contains(job1_));  // Done.
    end1_sequence_ = d_.sequence();
    end1_time_ = d_.now();

    d_.Advance(kSecond);
    job2_ = Submit("j2", 1);
    order_j2_ = Task(job2_, 0).order;
    Checkpoint();
    d_.Advance(kSecond);
    Run(core::CancelJob{alice_, job2_});
    ASSERT_TRUE(x().jobs().empty());
    end2_sequence_ = d_.sequence();
    end2_time_ = d_.now();
  }

  static constexpr char kTaskSpec[] = R"({"command":["true"]})";
  static constexpr char kTaskResult[] = R"({"status":"succeeded"})";
  TempDir dir_;
  ExchangeDriver d_;
  int sells_ = 0;
  core::AccountId op_ = 0, alice_ = 0, prov_ = 0;
  core::MachineId m1_ = 0, m2_ = 0;
  core::JobId job1_ = 0, job2_ = 0;
  uint64_t submit1_sequence_ = 0, end1_sequence_ = 0, end2_sequence_ = 0;
  core::Timestamp submit1_time_ = 0, end1_time_ = 0, end2_time_ = 0;
  core::OrderId order_t0_ = 0, order_t1_retry_ = 0, order_j2_ = 0;
  core::LeaseId lease1_ = 0, lease2_ = 0, lease3_ = 0;
  std::vector<std::pair<uint64_t, std::map<core::JobId, core::Job>>> checkpoints_;
};

TEST_F(SqliteStoreJobTest, FinishedJobHasItsTasksAttemptsLeasesAndEnd) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  JobRow expected;
  expected.id = job1_;
  expected.owner = alice_;
  expected.client_job_id = "j1";
  expected.market = "cpu";
  expected.slots_per_task = 2;
  expected.tasks_count = 2;
  expected.max_price = 100'000;
  expected.max_hours = 1;
  expected.task_spec = kTaskSpec;
  expected.state = core::JobState::kDone;
  expected.submitted_sequence = submit1_sequence_;
  expected.submitted_time = submit1_time_;
  expected.end_sequence = end1_sequence_;
  expected.end_time = end1_time_;
  expected.tasks = {
      JobTaskRow{0, core::JobTaskState::kFinished, 1, order_t0_, lease1_, m1_},
      JobTaskRow{1, core::JobTaskState::kFinished, 2, order_t1_retry_, lease3_, m1_},
  };
  absl::StatusOr<JobRow> job = store->GetJob(job1_);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(*job, expected);
  // The lease it lost ended with its machine; the tasks table has all three runs.
  absl::StatusOr<LeaseRow> lost = store->GetLease(lease2_);
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(lost->end_reason, core::LeaseEndReason::kOffline);
  for (const core::LeaseId lease : {lease1_, lease3_}) {
    absl::StatusOr<TaskRow> task = store->GetTask(lease);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->status, "finished");
    EXPECT_EQ(task->spec, kTaskSpec);
  }
  absl::StatusOr<TaskRow> orphan = store->GetTask(lease2_);
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  EXPECT_EQ(orphan->status, "running");  // Its result may still come within the grace.
}

TEST_F(SqliteStoreJobTest, CancelledJobHasItsTaskCancelledAndItsEnd) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<JobRow> job = store->GetJob(job2_);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, core::JobState::kCancelled);
  EXPECT_EQ(job->client_job_id, "j2");
  EXPECT_EQ(job->tasks_count, 1);
  EXPECT_EQ(job->end_sequence, end2_sequence_);
  EXPECT_EQ(job->end_time, end2_time_);
  ASSERT_EQ(job->tasks.size(), 1u);
  EXPECT_EQ(job->tasks[0], (JobTaskRow{0, core::JobTaskState::kCancelled, 1, order_j2_, 0, 0}));
  // Its order was cancelled with it.
  absl::StatusOr<std::vector<OrderRow>> orders =
      store->ListOrders(alice_, OrderStatus::kCancelled, 0, 10);
  ASSERT_TRUE(orders.ok()) << orders.status();
  ASSERT_EQ(orders->size(), 1u);
  EXPECT_EQ(orders->front().id, order_j2_);
}

TEST_F(SqliteStoreJobTest, JobsMatchTheCoreAtEveryCheckpoint) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_GE(checkpoints_.size(), 7u);
  size_t projected = 0;
  for (const auto& [sequence, jobs] : checkpoints_) {
    SCOPED_TRACE("checkpoint at sequence " + std::to_string(sequence));
    size_t end = projected;
    while (end < history().size() && history()[end].sequence <= sequence) ++end;
    ASSERT_TRUE(store->Project({history().data() + projected, end - projected}).ok());
    projected = end;
    ASSERT_FALSE(jobs.empty());
    for (const auto& [id, job] : jobs) {
      absl::StatusOr<JobRow> row = store->GetJob(id);
      ASSERT_TRUE(row.ok()) << row.status();
      testing::ExpectJobEqualsCore(*row, job);
    }
  }
  // Right after the submit (the first checkpoint) both tasks wait on their first order.
  const core::Job& first = checkpoints_.front().second.at(job1_);
  EXPECT_EQ(first.tasks[0].state, core::JobTaskState::kWaiting);
  EXPECT_EQ(first.tasks[1].attempts, 1);
}

TEST_F(SqliteStoreJobTest, ListJobsPagesAnOwnersJobsWithoutTasks) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  absl::StatusOr<std::vector<JobRow>> all = store->ListJobs(alice_, 0, 10);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, job1_);
  EXPECT_EQ((*all)[1].id, job2_);
  for (const JobRow& row : *all) {
    EXPECT_TRUE(row.tasks.empty());
    absl::StatusOr<JobRow> full = store->GetJob(row.id);
    ASSERT_TRUE(full.ok()) << full.status();
    full->tasks.clear();
    EXPECT_EQ(*full, row);
  }
  absl::StatusOr<std::vector<JobRow>> page = store->ListJobs(alice_, 0, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ(page->front().id, job1_);
  page = store->ListJobs(alice_, job1_, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ(page->front().id, job2_);
  page = store->ListJobs(alice_, job2_, 1);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  page = store->ListJobs(alice_, UINT64_MAX, 10);  // Past everything, even past int64.
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  // Only the owner's: the provider and an unknown account have none.
  for (const core::AccountId other : {prov_, core::AccountId{999}}) {
    absl::StatusOr<std::vector<JobRow>> none = store->ListJobs(other, 0, 10);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
  }
}

TEST_F(SqliteStoreJobTest, BadJobQueriesAreInvalidOrNotFound) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  EXPECT_EQ(store->GetJob(999).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJob(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJob(UINT64_MAX).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ListJobs(alice_, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListJobs(alice_, 0, kListLimitMax + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(store->GetJob(job1_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->ListJobs(alice_, 0, 10).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteStoreJobTest, RebuildAndReprojectionGiveEqualJobRows) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Project(history()).ok());
  const std::vector<std::string> markets = {"cpu"};
  const testing::StoreDump before = testing::Dump(*store, markets, 0, d_.now() + 1);
  ASSERT_EQ(before.job_details.size(), 2u);  // Not trivially equal.
  ASSERT_TRUE(store->Rebuild().ok());
  EXPECT_EQ(store->GetJob(job1_).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<JobRow>> none = store->ListJobs(alice_, 0, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // Re-projected in small batches this time, through the background writer.
  for (const AppliedCommand& command : history()) ASSERT_TRUE(store->Enqueue(command).ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_TRUE(testing::Dump(*store, markets, 0, d_.now() + 1) == before);
  ASSERT_TRUE(store->Close().ok());
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(testing::Dump(*store, markets, 0, d_.now() + 1) == before);
}

TEST_F(SqliteStoreJobTest, JobEventsOutOfStepStopProjection) {
  const AppliedCommand& last = history().back();
  struct Case {
    const char* name;
    core::CoreEvent event;
  };
  const Case cases[] = {
      {"a change of a task of an unknown job",
       core::JobTaskChanged{999, 0, core::JobTaskState::kRunning, 1, 1, 1, 1}},
      {"a change of a task index the job does not have",
       core::JobTaskChanged{job1_, 2, core::JobTaskState::kRunning, 1, 1, 1, 1}},
      {"a change of a task that is over",
       core::JobTaskChanged{job1_, 0, core::JobTaskState::kWaiting, 2, 1, 0, 0}},
      {"a second end", core::JobEnded{job2_, alice_, core::JobState::kDone, last.time_micros}},
      {"an end of an unknown job",
       core::JobEnded{999, alice_, core::JobState::kCancelled, last.time_micros}},
      {"an end with another owner",
       core::JobEnded{job1_, prov_, core::JobState::kCancelled, last.time_micros}},
      {"a second submission of a job", core::JobSubmitted{job1_, alice_, {}, last.time_micros}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    SqliteStoreOptions options;
    options.path = dir.File("store.db");
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Project(history()).ok());
    const AppliedCommand bad{last.sequence + 1, last.time_micros, {c.event}};
    EXPECT_EQ((*store)->Project({&bad, 1}).code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ((*store)->last_projected_sequence(), last.sequence);
  }
}

TEST_F(SqliteStoreJobTest, ActiveJobEndedAsActiveOrWithoutTasksIsRefused) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Up to job 2's submission: job 2 is active.
  std::vector<AppliedCommand> prefix;
  for (const AppliedCommand& command : history()) {
    if (command.sequence >= end2_sequence_) break;
    prefix.push_back(command);
  }
  ASSERT_TRUE(store->Project(prefix).ok());
  const AppliedCommand active{prefix.back().sequence + 1,
                              prefix.back().time_micros,
                              {core::JobEnded{job2_, alice_, core::JobState::kActive, 0}}};
  EXPECT_EQ(store->Project({&active, 1}).code(), absl::StatusCode::kFailedPrecondition);

  auto other = Open("other.db");
  ASSERT_NE(other, nullptr);
  core::SubmitJob none;
  none.tasks = 0;
  const AppliedCommand empty{1, testing::kStartTime, {core::JobSubmitted{7, 1, none, 0}}};
  EXPECT_EQ(other->Project({&empty, 1}).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ocx::store
