// The consumer's side end to end: RunJob (src/cli/job_runner.h, the library behind `ocx run`)
// against a real `ocx exchange` child process on loopback and two real provider agents
// (src/agent/agent.h) in this process, running the tasks in the real bubblewrap sandbox.
// Checked: inputs uploaded and placed, outputs and logs downloaded with the right bytes, every
// task succeeded, the bill's total equal to the ledger's movements out of escrow for the job's
// leases to the micro-credit, constraints choosing the machine, a cancel (Ctrl-C) that ends the
// job cancelled with nothing left held; and the built `ocx run` binary's usage errors.
//
// The RunJob tests need root (the sandbox runs each task under a uid of its own) and skip
// otherwise; the binary test does not.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <streambuf>
#include <string>

#include "gtest/gtest.h"
#include "src/agent/agent.h"
#include "src/agent/policy.h"
#include "src/base/testing/build_paths.h"
#include "src/cli/job_file.h"
#include "src/cli/job_runner.h"
#include "src/sandbox/bubblewrap_sandbox.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

constexpr int64_t kWaitMs = 30'000;

bool WaitFor(const std::function<bool()>& done, int64_t deadline_ms = kWaitMs) {
  const int64_t end = NowMs() + deadline_ms;
  while (NowMs() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// An output stream for RunJob's progress that keeps the text and calls `on_text` with all of
// it after each write (the test's hook into "task 0 running on machine ...").
class WatchedBuffer : public std::streambuf {
 public:
  explicit WatchedBuffer(std::function<void(const std::string&)> on_text)
      : on_text_(std::move(on_text)) {}
  std::string text() const { return text_; }

 protected:
  int overflow(int c) override {
    if (c != EOF) {
      text_ += static_cast<char>(c);
      if (c == '\n' && on_text_) on_text_(text_);
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    text_.append(s, static_cast<size_t>(n));
    if (on_text_) on_text_(text_);
    return n;
  }

 private:
  std::function<void(const std::string&)> on_text_;
  std::string text_;
};

class ConsumerRunTest : public ExchangeTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root: the agents' sandbox runs each task under an unprivileged uid "
                      "of its own, with cgroup limits";
    }
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0711), 0);
    auto sandbox = sandbox::BubblewrapSandbox::Create({});
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = std::move(*sandbox);
    consumer_ = CreateAccount(*op_, "consumer", "buyer");
    provider_ = CreateAccount(*op_, "provider", "seller");
    Deposit(*op_, consumer_.id, "100");
    buyer_ = ClientFor(consumer_);
    StartAgent("box-eu", "eu", &eu_);
    StartAgent("box-us", "us", &us_);
  }

  void TearDown() override {
    for (auto* agent : {&eu_, &us_}) {
      if (*agent) (*agent)->Stop();
      agent->reset();
    }
    if (server_) ExchangeTest::TearDown();
  }

  void StartAgent(const std::string& name, const std::string& region,
                  std::unique_ptr<agent::Agent>* out) {
    agent::AgentOptions options;
    options.exchange_url = server_->url();
    options.provider_token = provider_.token;
    options.data_dir = dir_->path() + "/agent-" + name;
    options.policy = agent::DefaultOwnerPolicy();  // Fixed 0.05, always, all of it.
    options.policy.region = region;
    core::MachineSpec spec;
    spec.name = name;
    spec.capacity["cpu"] = 2;
    options.spec = spec;
    options.sandbox = sandbox_.get();
    auto started = agent::Agent::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    *out = std::move(*started);
    (*out)->RunInBackground();
    agent::Agent* agent = out->get();
    ASSERT_TRUE(WaitFor([agent] { return agent->status().sell_order != 0; }))
        << name << " never offered its capacity";
  }

  cli::JobRunOptions Options(const cli::JobFile& job, const std::string& out_dir) {
    cli::JobRunOptions options;
    options.exchange_url = server_->url();
    options.token = consumer_.token;
    options.job = job;
    options.output_dir = out_dir;
    options.show_progress = false;
    options.poll_interval_ms = 500;
    options.cancel_grace_ms = 10'000;
    return options;
  }

  // What the ledger moved out of the consumer's escrow for these leases, refunds aside.
  int64_t LedgerCost(const std::set<uint64_t>& leases) {
    int64_t sum = 0;
    for (const Json& entry :
         ListAll(*op_, "/v1/accounts/" + std::to_string(consumer_.id) + "/ledger")) {
      if (entry["from"]["account"] != consumer_.id || entry["from"]["balance"] != "escrow" ||
          entry["kind"] == "refund" || !leases.contains(entry["reference"].get<uint64_t>())) {
        continue;
      }
      sum += Micros(entry["amount"]);
    }
    return sum;
  }

  std::unique_ptr<sandbox::BubblewrapSandbox> sandbox_;
  AccountHandle consumer_, provider_;
  std::unique_ptr<ApiClient> buyer_;
  std::unique_ptr<agent::Agent> eu_, us_;
};

TEST_F(ConsumerRunTest, TwoTasksRunWithInputsAndOutputsAndTheBillMatchesTheLedger) {
  const std::string work = dir_->path() + "/work";
  std::filesystem::create_directories(work + "/data");
  std::ofstream(work + "/data/in.txt") << "one\ntwo\nthree\n";
  cli::JobFile job;
  job.command = {"sh", "-c",
                 "mkdir -p out && wc -l < data/in.txt > out/count.txt && "
                 "echo \"task $OCX_TASK_INDEX of job $OCX_JOB_ID\" && echo warning >&2"};
  job.inputs = {"data"};
  job.outputs = {"out"};
  job.tasks = 2;
  job.max_price = "0.05";
  job.base_dir = work;
  std::ostringstream progress;
  const std::string out_dir = dir_->path() + "/results";
  const auto report = cli::RunJob(Options(job, out_dir), progress, nullptr);
  ASSERT_TRUE(report.ok()) << report.status() << "\n" << progress.str();
  SCOPED_TRACE(progress.str());
  EXPECT_EQ(report->state, "done");
  EXPECT_TRUE(report->all_succeeded);
  ASSERT_EQ(report->tasks.size(), 2u);
  std::set<uint64_t> leases;
  int64_t costs = 0;
  for (const cli::TaskBill& bill : report->tasks) {
    EXPECT_EQ(bill.status, "succeeded");
    EXPECT_EQ(bill.exit_code, 0);
    EXPECT_EQ(bill.lease_status, "ended");
    EXPECT_EQ(bill.price, "0.05");
    EXPECT_NE(bill.lease, 0u);
    EXPECT_EQ(bill.cost, bill.ledger_cost);
    leases.insert(bill.lease);
    costs += Micros(Json(bill.cost));
    const std::string task_dir = out_dir + "/task-" + std::to_string(bill.index);
    EXPECT_EQ(ReadFile(task_dir + "/out/count.txt"), "3\n");
    EXPECT_EQ(
        ReadFile(task_dir + "/stdout.log"),
        "task " + std::to_string(bill.index) + " of job " + std::to_string(report->job) + "\n");
    EXPECT_EQ(ReadFile(task_dir + "/stderr.log"), "warning\n");
  }
  EXPECT_EQ(leases.size(), 2u);
  EXPECT_TRUE(report->ledger_matches);
  // The total is the sum of the ledger's movements for these leases, to the micro-credit.
  EXPECT_EQ(Micros(Json(report->total)), LedgerCost(leases));
  EXPECT_EQ(Micros(Json(report->total)), costs);
  // Live output came through with its task's prefix.
  EXPECT_NE(progress.str().find("[task 0] task 0 of job"), std::string::npos);
  EXPECT_NE(progress.str().find("[task 1] task 1 of job"), std::string::npos);
  const Balances after = GetBalances(*buyer_, consumer_.id);
  EXPECT_EQ(after.held, 0);
  EXPECT_EQ(after.escrow, 0);
  EXPECT_EQ(after.available, 100'000'000 - Micros(Json(report->total)));
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
}

TEST_F(ConsumerRunTest, ConstraintsPickTheMachinesOfOneRegion) {
  cli::JobFile job;
  job.command = {"true"};
  job.tasks = 2;
  job.max_price = "0.05";
  job.constraints = "region == \"us\"";
  std::ostringstream progress;
  const auto report = cli::RunJob(Options(job, dir_->path() + "/results"), progress, nullptr);
  ASSERT_TRUE(report.ok()) << report.status() << "\n" << progress.str();
  SCOPED_TRACE(progress.str());
  EXPECT_TRUE(report->all_succeeded);
  ASSERT_EQ(report->tasks.size(), 2u);
  for (const cli::TaskBill& bill : report->tasks) {
    EXPECT_EQ(bill.machine, us_->machine());
    EXPECT_EQ(bill.machine_name, "box-us");
  }
}

TEST_F(ConsumerRunTest, CancelAfterTheFirstAssignmentEndsTheJobWithNothingHeld) {
  cli::JobFile job;
  job.command = {"sleep", "600"};
  job.tasks = 5;  // Four slots in all: one task waits in the book (its funds held).
  job.max_price = "0.05";
  std::atomic<bool> cancel{false};
  WatchedBuffer buffer([&](const std::string& text) {
    if (text.find("running on machine") != std::string::npos) cancel = true;
  });
  std::ostream progress(&buffer);
  const auto report = cli::RunJob(Options(job, dir_->path() + "/results"), progress, &cancel);
  ASSERT_TRUE(report.ok()) << report.status() << "\n" << buffer.text();
  SCOPED_TRACE(buffer.text());
  EXPECT_TRUE(cancel.load());
  EXPECT_EQ(report->state, "cancelled");
  EXPECT_FALSE(report->all_succeeded);
  std::set<uint64_t> leases;
  for (const cli::TaskBill& bill : report->tasks) {
    if (bill.lease == 0) continue;
    leases.insert(bill.lease);
    EXPECT_EQ(bill.lease_status, "ended");
  }
  EXPECT_FALSE(leases.empty());
  EXPECT_EQ(Micros(Json(report->total)), LedgerCost(leases));
  Json got = buyer_->Expect(200, "GET", "/v1/jobs/" + std::to_string(report->job));
  EXPECT_EQ(got["job"]["state"], "cancelled") << got.dump();
  for (const Json& task : got["job"]["tasks"]) EXPECT_EQ(task["state"], "cancelled");
  // Nothing left held or in escrow: the waiting order's hold and the leases' escrow came back.
  const Balances after = GetBalances(*buyer_, consumer_.id);
  EXPECT_EQ(after.held, 0);
  EXPECT_EQ(after.escrow, 0);
  Json open = buyer_->Expect(200, "GET", "/v1/orders?status=open");
  EXPECT_TRUE(open["items"].empty()) << open.dump();
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
}

// ---- The built binary: usage errors and help, without an exchange.

int RunBinary(const std::vector<std::string>& args, std::string* output) {
  std::string command = std::string(base::testing::OcxBinary());
  for (const std::string& arg : args) command += " '" + arg + "'";
  command += " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ConsumerCliTest, RunHelpExitsZeroWithExamples) {
  std::string output;
  EXPECT_EQ(RunBinary({"run", "--help"}, &output), 0) << output;
  EXPECT_NE(output.find("ocx run --max-price 0.05 -- echo hello"), std::string::npos) << output;
}

TEST(ConsumerCliTest, RunWithABadFlagExitsTwo) {
  std::string output;
  EXPECT_EQ(RunBinary({"run", "--no-such-flag", "--", "true"}, &output), 2) << output;
}

TEST(ConsumerCliTest, RunWithoutACommandOrPriceExitsTwo) {
  std::string output;
  EXPECT_EQ(RunBinary({"run"}, &output), 2) << output;
  EXPECT_NE(output.find("nothing to run"), std::string::npos) << output;
  output.clear();
  EXPECT_EQ(RunBinary({"run", "--", "echo", "hi"}, &output), 2) << output;
  EXPECT_NE(output.find("no max price"), std::string::npos) << output;
}

TEST(ConsumerCliTest, ABadJobFileExitsTwoWithItsPosition) {
  base::testing::TempDir dir;
  std::ofstream(dir.File("job.toml")) << "command = [\"true\"]\nslot = 1\n";
  std::string output;
  EXPECT_EQ(RunBinary({"run", dir.File("job.toml")}, &output), 2) << output;
  EXPECT_NE(output.find("job.toml:2:1: unknown key 'slot'"), std::string::npos) << output;
}

TEST(ConsumerCliTest, AnInputOverTheBlobLimitExitsTwoNamingItBeforeAnyUpload) {
  base::testing::TempDir dir;
  const std::string big = dir.File("big.bin");
  std::ofstream(big).close();
  // One byte over 64 MiB, sparse: nothing is written to the disk.
  ASSERT_EQ(::truncate(big.c_str(), static_cast<off_t>(cli::kJobInputBytesMax + 1)), 0);
  std::ofstream(dir.File("token")) << "ocx_unused";
  std::string output;
  // Nothing listens at that address: the input is refused before the exchange is reached.
  EXPECT_EQ(RunBinary({"run", "--exchange", "http://127.0.0.1:9", "--token-file", dir.File("token"),
                       "--max-price", "0.05", "--input", big, "--", "true"},
                      &output),
            2)
      << output;
  EXPECT_NE(
      output.find("the input " + big +
                  " is 67108865 bytes (64.0 MiB), more than a blob may hold (67108864 bytes)"),
      std::string::npos)
      << output;
}

}  // namespace
}  // namespace ocx::api_test
