// The provider agent against a real `ocx exchange` on loopback, running jobs in the real
// bubblewrap sandbox: registration, heartbeats, the offer of its capacity, a lease's task run
// to completion (inputs in, live output, outputs back as blobs, usage billed, the lease
// ended, the job's directory wiped), and an agent that dies mid-lease (the exchange marks the
// machine offline after 15 s and billing stops at the last report).
//
// Needs root: the sandbox runs each job under an unprivileged uid of its own.
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "src/agent/agent.h"
#include "src/agent/policy.h"
#include "src/sandbox/bubblewrap_sandbox.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

constexpr int64_t kWaitMs = 30'000;

// Polls `done` every 50 ms until it holds or `deadline_ms` passes.
bool WaitFor(const std::function<bool()>& done, int64_t deadline_ms = kWaitMs) {
  const int64_t end = NowMs() + deadline_ms;
  while (NowMs() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

class ProviderAgentTest : public ExchangeTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root: the sandbox runs each job under an unprivileged uid of its "
                      "own, with cgroup limits";
    }
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    // The job's uid passes through (but cannot list) the directories above its own.
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0711), 0);
    auto sandbox = sandbox::BubblewrapSandbox::Create({});
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = std::move(*sandbox);
    consumer_ = CreateAccount(*op_, "consumer", "buyer");
    provider_ = CreateAccount(*op_, "provider", "seller");
    op_->Expect(201, "POST", "/v1/accounts/" + std::to_string(consumer_.id) + "/deposits",
                Json{{"amount", "100"}});
    buyer_ = ClientFor(consumer_);
    seller_ = ClientFor(provider_);
  }

  void TearDown() override {
    if (agent_) agent_->Stop();
    agent_.reset();
    if (server_) ExchangeTest::TearDown();
  }

  agent::AgentOptions Options() {
    agent::AgentOptions options;
    options.exchange_url = server_->url();
    options.provider_token = provider_.token;
    options.data_dir = dir_->path() + "/agent";
    options.policy = agent::DefaultOwnerPolicy();  // Fixed 0.05, always, all of it.
    options.policy.region = "eu";
    core::MachineSpec spec;
    spec.name = "test-box";
    spec.capacity["cpu"] = 4;
    options.spec = spec;
    options.sandbox = sandbox_.get();
    return options;
  }

  void StartAgent() {
    auto agent = agent::Agent::Start(Options());
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = std::move(*agent);
    agent_->RunInBackground();
    ASSERT_TRUE(WaitFor([&] { return agent_->status().sell_order != 0; }))
        << "the agent never offered its capacity";
  }

  // Buys one slot from the agent's offer; returns the lease (0, with a failure, when none
  // could be bought). The book can still hold no ask for a moment (the agent places a new
  // sell when its last one filled completely), so the buy is immediate-or-cancel (one that
  // finds nothing is cancelled and its hold released) and is placed again until it fills. (A
  // resting buy would have waited for the next ask, then filled outside this function, as a
  // CI run of this test once found when the agent still cancelled and re-placed its sell.)
  uint64_t BuyOneSlot() {
    Json order = BuyOrder("0.05", 1);
    order["tif"] = "ioc";
    Json bought;
    const bool filled = WaitFor([&] {
      bought = buyer_->Expect(201, "POST", "/v1/orders", order);
      return bought["fills"].size() == 1;
    });
    EXPECT_TRUE(filled) << "no slot could be bought; the last answer: " << bought.dump();
    return filled ? bought["fills"][0]["lease"].get<uint64_t>() : 0;
  }

  std::string UploadBlob(const std::string& bytes) {
    Reply uploaded = buyer_->Raw("POST", "/v1/blobs", bytes, {}, "application/octet-stream");
    EXPECT_EQ(uploaded.status, 201) << uploaded.raw;
    return uploaded.body.value("sha256", "");
  }

  std::unique_ptr<sandbox::BubblewrapSandbox> sandbox_;
  AccountHandle consumer_, provider_;
  std::unique_ptr<ApiClient> buyer_, seller_;
  std::unique_ptr<agent::Agent> agent_;
};

TEST_F(ProviderAgentTest, RegistersHeartbeatsAndOffersItsCapacity) {
  StartAgent();
  const uint64_t machine = agent_->machine();
  Json got = op_->Expect(200, "GET", "/v1/machines/" + std::to_string(machine));
  EXPECT_EQ(got["machine"]["name"], "test-box") << got.dump();
  EXPECT_EQ(got["machine"]["online"], true);
  EXPECT_EQ(got["machine"]["attributes"]["region"], "eu");
  Json book = op_->Expect(200, "GET", "/v1/markets/cpu/book");
  ASSERT_EQ(book["asks"].size(), 1u) << book.dump();
  EXPECT_EQ(book["asks"][0][0], "0.05");
  EXPECT_EQ(book["asks"][0][1], 4);
  // Heartbeats keep it online past the exchange's 15 s timeout... measured over a shorter
  // span here: two heartbeats within 6 s.
  const int64_t before = agent_->status().heartbeats_sent;
  EXPECT_TRUE(WaitFor([&] { return agent_->status().heartbeats_sent >= before + 1; }, 6'000));
  // The identity is kept: a restarted agent is the same machine.
  agent_->Stop();
  agent_.reset();
  StartAgent();
  EXPECT_EQ(agent_->machine(), machine);
}

TEST_F(ProviderAgentTest, AnEndedLeaseReturnsItsSlotToTheSameSellOrder) {
  StartAgent();
  const uint64_t sell = agent_->status().sell_order;
  const std::string sell_path = "/v1/orders/" + std::to_string(sell);
  const uint64_t lease = BuyOneSlot();
  ASSERT_NE(lease, 0u);
  EXPECT_EQ(seller_->Expect(200, "GET", sell_path)["order"]["remaining"], 3);
  buyer_->Expect(200, "POST", "/v1/leases/" + std::to_string(lease) + "/release");
  // The freed slot goes back on the book through a replace of the same order: no cancel,
  // so no moment without an ask.
  ASSERT_TRUE(WaitFor([&] {
    return seller_->Expect(200, "GET", sell_path)["order"]["remaining"] == 4;
  })) << seller_->Expect(200, "GET", sell_path).dump();
  const Json order = seller_->Expect(200, "GET", sell_path)["order"];
  EXPECT_EQ(order["status"], "open") << order.dump();
  EXPECT_EQ(agent_->status().sell_order, sell);
  EXPECT_EQ(agent_->status().offered_slots, 4);
  Json book = op_->Expect(200, "GET", "/v1/markets/cpu/book");
  ASSERT_EQ(book["asks"].size(), 1u) << book.dump();
  EXPECT_EQ(book["asks"][0][1], 4);
}

TEST_F(ProviderAgentTest, OutsideItsAvailabilityTheAgentOffersNothing) {
  agent::AgentOptions options = Options();
  // Available every day but today (UTC), all day: not now (unless midnight passes while
  // the test runs, which the check below allows for).
  const int64_t now = std::time(nullptr);
  const int today = static_cast<int>((now / 86'400 + 3) % 7);  // 1970-01-01 was a Thursday.
  options.policy.utc = true;
  options.policy.windows = {agent::AvailabilityWindow{
      static_cast<uint8_t>(agent::kEveryDay & ~(1 << today)), 0, agent::kMinutesPerDay}};
  ASSERT_FALSE(agent::IsAvailable(options.policy, now));
  auto started = agent::Agent::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  agent_ = std::move(*started);
  agent_->RunInBackground();
  ASSERT_TRUE(WaitFor([&] { return agent_->status().heartbeats_sent >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  if (agent::IsAvailable(options.policy, std::time(nullptr))) GTEST_SKIP() << "midnight passed";
  EXPECT_EQ(agent_->status().sell_order, 0u);
  Json book = op_->Expect(200, "GET", "/v1/markets/cpu/book");
  EXPECT_TRUE(book["asks"].empty()) << book.dump();
  // The machine is online all the same (heartbeats), only not for sale.
  Json machine = op_->Expect(200, "GET", "/v1/machines/" + std::to_string(agent_->machine()));
  EXPECT_EQ(machine["machine"]["online"], true);
}

TEST_F(ProviderAgentTest, ALeaseTaskRunsToCompletionAndIsBilled) {
  StartAgent();
  const std::string input = "hello from the buyer\n";
  const std::string digest = UploadBlob(input);
  auto stream = ConnectWebSocket(server_->url(), "/v1/stream", consumer_.token);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Send(Json{{"op", "subscribe"}, {"channel", "leases"}}.dump()).ok());
  ASSERT_TRUE(ReceiveType(*stream, "subscribed").has_value());

  const uint64_t lease = BuyOneSlot();
  ASSERT_NE(lease, 0u);
  const std::string task_path = "/v1/leases/" + std::to_string(lease) + "/task";
  const Json spec{{"command", {"sh", "-c", "cat in.txt; mkdir out; echo done > out/result.txt; "
                                           "sleep 1"}},
                  {"inputs", {{{"path", "in.txt"}, {"sha256", digest}}}},
                  {"outputs", {"out", "missing.txt"}}};
  buyer_->Expect(201, "POST", task_path, spec);

  // The job's output arrives live.
  std::optional<Json> log = ReceiveUntil(
      *stream, [](const Json& m) { return m.value("type", "") == "task_log"; }, kWaitMs);
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ((*log)["data"], input);
  std::optional<Json> finished = ReceiveType(*stream, "task_finished", kWaitMs);
  ASSERT_TRUE(finished.has_value());
  const Json result = (*finished)["result"];
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_EQ(result["exit_code"], 0);
  ASSERT_EQ(result["outputs"].size(), 1u) << result.dump();
  EXPECT_EQ(result["outputs"][0]["path"], "out/result.txt");
  EXPECT_EQ(result["outputs"][0]["sha256"], Sha256Hex("done\n"));
  EXPECT_EQ(result["missing_outputs"], Json::array({"missing.txt"}));
  Reply output = buyer_->Raw("GET", "/v1/blobs/" + Sha256Hex("done\n"), "", {}, "");
  EXPECT_EQ(output.raw, "done\n");
  Reply out_log = buyer_->Raw("GET", "/v1/blobs/" + result["stdout"]["sha256"].get<std::string>(),
                              "", {}, "");
  EXPECT_EQ(out_log.raw, input);

  // The agent ended the lease (finished) after a last usage report; it was billed.
  ASSERT_TRUE(WaitFor([&] {
    return buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease))["lease"]["status"] ==
           "ended";
  }));
  Json ended = buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(ended["lease"]["end_reason"], "finished") << ended.dump();
  const int64_t billed = Micros(ended["lease"]["billed_total"]);
  EXPECT_GT(billed, 0) << ended.dump();  // At least a second of 0.05/hour.
  EXPECT_EQ(buyer_->Expect(200, "GET", task_path)["task"]["status"], "finished");
  const Balances seller = GetBalances(*seller_, provider_.id);
  EXPECT_EQ(seller.earnings, billed);  // The maker's fee is 0.
  EXPECT_EQ(GetBalances(*buyer_, consumer_.id).escrow, 0);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
  // Nothing of the job is left on disk.
  EXPECT_TRUE(std::filesystem::is_empty(dir_->path() + "/agent/jobs"));
}

// bubblewrap processes that are children of this process (the agent runs in it).
int BubblewrapChildren() {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos || line.find("(bwrap)") == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    rest >> state >> parent;
    found += parent == ::getpid();
  }
  return found;
}

TEST_F(ProviderAgentTest, TasksStartInASandboxPreparedAheadAndNoneOutlivesTheAgent) {
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return agent_->status().warm_sandboxes == 1; }))
      << "the agent never prepared a sandbox";
  EXPECT_EQ(BubblewrapChildren(), 1) << "the prepared sandbox waits as the agent's child";
  for (int task = 1; task <= 2; ++task) {
    const uint64_t lease = BuyOneSlot();
    ASSERT_NE(lease, 0u);
    const std::string lease_path = "/v1/leases/" + std::to_string(lease);
    // Exactly what a fresh sandbox gives: /work empty and the job's own environment.
    buyer_->Expect(201, "POST", lease_path + "/task",
                   Json{{"command", {"sh", "-c", "echo $PWD $HOME; ls -A /work; echo $TASK"}},
                        {"env", {{"TASK", std::to_string(task)}}}});
    ASSERT_TRUE(WaitFor([&] {
      return buyer_->Expect(200, "GET", lease_path + "/task")["task"]["status"] == "finished";
    }));
    const Json result = buyer_->Expect(200, "GET", lease_path + "/task")["task"]["result"];
    EXPECT_EQ(result["status"], "succeeded") << result.dump();
    Reply out = buyer_->Raw("GET", "/v1/blobs/" + result["stdout"]["sha256"].get<std::string>(), "",
                            {}, "");
    EXPECT_EQ(out.raw, "/work /work\n" + std::to_string(task) + "\n");
    EXPECT_EQ(agent_->status().tasks_prewarmed, task);
    // The next one is prepared once the job has had the CPU to itself for a moment.
    ASSERT_TRUE(WaitFor([&] { return agent_->status().warm_sandboxes == 1; }));
    ASSERT_TRUE(WaitFor(
        [&] { return buyer_->Expect(200, "GET", lease_path)["lease"]["status"] == "ended"; }));
  }
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::is_empty(dir_->path() + "/agent/jobs"); }));
  EXPECT_FALSE(std::filesystem::is_empty(dir_->path() + "/agent/warm"));
  // Stopping kills the prepared sandbox and removes its directory.
  agent_->Stop();
  EXPECT_EQ(agent_->status().warm_sandboxes, 0u);
  EXPECT_EQ(BubblewrapChildren(), 0);
  EXPECT_TRUE(std::filesystem::is_empty(dir_->path() + "/agent/warm"));
}

TEST_F(ProviderAgentTest, AnAgentThatDiesMidLeaseGoesOfflineAndBillingStopsAtItsLastReport) {
  StartAgent();
  const uint64_t lease = BuyOneSlot();
  ASSERT_NE(lease, 0u);
  buyer_->Expect(201, "POST", "/v1/leases/" + std::to_string(lease) + "/task",
                 Json{{"command", {"sleep", "600"}}});
  // Let it run and report usage at least once.
  ASSERT_TRUE(WaitFor([&] { return agent_->status().usage_reports_sent >= 1; }, 15'000));
  ASSERT_TRUE(WaitFor([&] {
    return buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease))["lease"]
                              ["reported_wall_seconds"]
               .get<int64_t>() >= 1;
  }));
  agent_->Stop();  // Its job is killed; it says nothing more to the exchange.
  agent_.reset();
  const Json before = buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  ASSERT_TRUE(WaitFor(
      [&] {
        return buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease))["lease"]
                   ["status"] == "ended";
      },
      25'000));
  Json ended = buyer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(ended["lease"]["end_reason"], "offline") << ended.dump();
  EXPECT_EQ(ended["lease"]["billed_total"], before["lease"]["billed_total"]) << ended.dump();
  EXPECT_EQ(ended["lease"]["billed_seconds"], before["lease"]["billed_seconds"]);
  EXPECT_EQ(GetBalances(*buyer_, consumer_.id).escrow, 0);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
  EXPECT_TRUE(std::filesystem::is_empty(dir_->path() + "/agent/jobs"));
}

TEST_F(ProviderAgentTest, AReclaimedLeaseStopsBillingAtOnceAndItsJobGetsItsNotice) {
  agent::AgentOptions options = Options();
  options.reclaim_notice_ms = 2'000;  // 30 s in production.
  auto started = agent::Agent::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  agent_ = std::move(*started);
  agent_->RunInBackground();
  ASSERT_TRUE(WaitFor([&] { return agent_->status().sell_order != 0; }));
  const uint64_t lease = BuyOneSlot();
  ASSERT_NE(lease, 0u);
  const std::string lease_path = "/v1/leases/" + std::to_string(lease);
  buyer_->Expect(201, "POST", lease_path + "/task",
                 Json{{"command", {"sh", "-c", "echo started; sleep 600"}}});
  ASSERT_TRUE(WaitFor([&] { return agent_->status().tasks_started == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Only the seller reclaims.
  buyer_->Expect(403, "POST", lease_path + "/reclaim");
  Json reclaimed = seller_->Expect(200, "POST", lease_path + "/reclaim");
  EXPECT_EQ(reclaimed["reason"], "reclaimed") << reclaimed.dump();
  const Json at_reclaim = buyer_->Expect(200, "GET", lease_path);
  EXPECT_EQ(at_reclaim["lease"]["status"], "ended");
  // The job runs out its notice, then is killed; its result still reaches the buyer.
  ASSERT_TRUE(WaitFor([&] {
    return buyer_->Expect(200, "GET", lease_path + "/task")["task"]["status"] == "finished";
  }));
  const Json task = buyer_->Expect(200, "GET", lease_path + "/task");
  EXPECT_EQ(task["task"]["result"]["status"], "cancelled") << task.dump();
  EXPECT_GE(task["task"]["result"]["wall_ms"].get<int64_t>(), 2'000) << task.dump();
  // Nothing was billed after the reclaim.
  EXPECT_EQ(buyer_->Expect(200, "GET", lease_path)["lease"]["billed_total"],
            at_reclaim["lease"]["billed_total"]);
  EXPECT_EQ(GetBalances(*buyer_, consumer_.id).escrow, 0);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::is_empty(dir_->path() + "/agent/jobs"); }));
}

}  // namespace
}  // namespace ocx::api_test
