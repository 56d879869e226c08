// Jobs (docs/formats/job.md), discovery (GET /v1/offers, docs/formats/query.md), order
// constraints and the ledger summary, against the real `ocx exchange` over HTTP and the
// WebSocket agent channel.
#include <string>

#include "gtest/gtest.h"
#include "src/protocol/identity.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

class ApiJobsTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
    consumer_ = ClientFor(market_.consumer);
    provider_ = ClientFor(market_.provider);
  }

  // A machine of the market's provider with these attributes.
  MachineHandle Machine(const Json& attributes, int64_t slots) {
    MachineHandle machine;
    machine.keys = protocol::NewMachineKeyPair();
    Json reply = provider_->Expect(201, "POST", "/v1/machines",
                                   Json{{"name", UniqueName("m")},
                                        {"public_key", machine.keys.public_key_hex},
                                        {"attributes", attributes},
                                        {"capacity", {{"cpu", slots}}}});
    machine.id = reply["machine"]["id"].get<uint64_t>();
    return machine;
  }
  void Sell(uint64_t machine, std::string_view price, int64_t slots) {
    provider_->Expect(201, "POST", "/v1/orders", SellOrder(price, slots, machine));
  }
  static Json JobBody(int tasks, std::string_view price, std::string constraints = "") {
    Json body{{"tasks", tasks},
              {"max_price", std::string(price)},
              {"task", {{"command", {"sh", "-c", "echo $OCX_TASK_INDEX"}}}}};
    if (!constraints.empty()) body["constraints"] = constraints;
    return body;
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_, provider_;
};

TEST_F(ApiJobsTest, AJobBuysALeasePerTaskAndEachMachineGetsItsTask) {
  auto stream = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Send(Json{{"op", "subscribe"}, {"channel", "leases"}}.dump()).ok());
  ASSERT_TRUE(ReceiveType(*stream, "subscribed").has_value());
  auto agent = ConnectAgent(server_->url(), market_.machine.id, market_.machine.keys.secret_key);
  ASSERT_NE(agent, nullptr);

  const Balances before = GetBalances(*consumer_, market_.consumer.id);
  Json submitted = consumer_->Expect(201, "POST", "/v1/jobs", JobBody(2, "0.05"),
                                     {{"Idempotency-Key", "job-key-1"}});
  const Json& job = submitted["job"];
  const uint64_t id = job["id"].get<uint64_t>();
  EXPECT_EQ(job["state"], "active");
  ASSERT_EQ(job["tasks"].size(), 2u);
  EXPECT_EQ(job["tasks"][0]["state"], "waiting");
  EXPECT_EQ(job["client_job_id"], "job-key-1");
  // Both tasks' orders hold their escrow: 2 x 0.05 x 1 slot x 1 h + 20 bps.
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).held, 2 * (50'000 + 100));
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).Total(), before.Total());
  // A retry with the same key names the same job.
  Json replay = consumer_->Expect(200, "POST", "/v1/jobs", JobBody(2, "0.05"),
                                  {{"Idempotency-Key", "job-key-1"}});
  EXPECT_EQ(replay["job"]["id"], id);
  EXPECT_TRUE(replay["idempotent_replay"].get<bool>());
  consumer_->Expect(409, "POST", "/v1/jobs", JobBody(3, "0.05"),
                    {{"Idempotency-Key", "job-key-1"}});
  // A job's orders are the exchange's.
  Json orders = consumer_->Expect(200, "GET", "/v1/orders?status=open");
  ASSERT_EQ(orders["items"].size(), 2u);
  const uint64_t order = orders["items"][0]["id"].get<uint64_t>();
  EXPECT_EQ(consumer_->Expect(409, "DELETE", "/v1/orders/" + std::to_string(order))["error"]["code"],
            "job_order");

  // One slot for sale: task 0 trades, its task reaches the machine with its place in the job.
  Sell(market_.machine.id, "0.04", 1);
  std::optional<Json> task = ReceiveType(*agent, "task");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ((*task)["spec"]["command"], Json({"sh", "-c", "echo $OCX_TASK_INDEX"}));
  EXPECT_EQ((*task)["spec"]["env"]["OCX_TASK_INDEX"], "0");
  EXPECT_EQ((*task)["spec"]["env"]["OCX_JOB_ID"], std::to_string(id));
  const uint64_t lease = (*task)["lease"].get<uint64_t>();
  std::optional<Json> running = ReceiveUntil(*stream, [](const Json& m) {
    return m.value("type", "") == "job_task" && m.value("state", "") == "running";
  });
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ((*running)["lease"], lease);
  // The buyer cannot give the job's lease another task.
  consumer_->Expect(409, "POST", "/v1/leases/" + std::to_string(lease) + "/task",
                    Json{{"command", {"true"}}});

  // The machine reports; the job shows the task finished and the other one waiting.
  const Json result{{"status", "succeeded"}, {"exit_code", 0}};
  ASSERT_TRUE(agent->Send(Json{{"type", "task_result"}, {"id", 1}, {"lease", lease},
                                   {"result", result}}
                                  .dump())
                  .ok());
  ASSERT_TRUE(ReceiveType(*agent, "ack").has_value());
  std::optional<Json> finished = ReceiveType(*stream, "task_finished");
  ASSERT_TRUE(finished.has_value());
  Json got = consumer_->Expect(200, "GET", "/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(got["job"]["tasks"][0]["state"], "finished") << got.dump();
  EXPECT_EQ(got["job"]["tasks"][1]["state"], "waiting");
  EXPECT_EQ(got["job"]["task_spec"]["command"], Json({"sh", "-c", "echo $OCX_TASK_INDEX"}));
  // Strangers do not see it, nor cancel it.
  const AccountHandle stranger = CreateAccount(*op_, "consumer", "stranger");
  ApiClient outsider(server_->url(), stranger.token);
  EXPECT_EQ(outsider.Expect(404, "GET", "/v1/jobs/" + std::to_string(id))["error"]["code"],
            "unknown_job");
  outsider.Expect(404, "DELETE", "/v1/jobs/" + std::to_string(id));
  EXPECT_TRUE(outsider.Expect(200, "GET", "/v1/jobs")["items"].empty());

  // Cancelling withdraws the waiting order and releases its hold.
  Json cancelled = consumer_->Expect(200, "DELETE", "/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(cancelled["state"], "cancelled");
  std::optional<Json> ended = ReceiveType(*stream, "job_ended");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ((*ended)["state"], "cancelled");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).held, 0);
  Json listed = consumer_->Expect(200, "GET", "/v1/jobs");
  ASSERT_EQ(listed["items"].size(), 1u);
  EXPECT_EQ(listed["items"][0]["state"], "cancelled");
  consumer_->Expect(404, "DELETE", "/v1/jobs/" + std::to_string(id));
}

TEST_F(ApiJobsTest, BadJobsAreRefusedWithTheirReasonAndChangeNothing) {
  const Balances before = GetBalances(*consumer_, market_.consumer.id);
  auto refused = [&](const Json& body, int status, std::string_view code) {
    Json reply = consumer_->Expect(status, "POST", "/v1/jobs", body);
    EXPECT_EQ(reply["error"]["code"], code) << body.dump() << " -> " << reply.dump();
    return reply;
  };
  Json no_price = JobBody(1, "0.05");
  no_price.erase("max_price");
  refused(no_price, 400, "missing_field");
  Json no_task = JobBody(1, "0.05");
  no_task.erase("task");
  refused(no_task, 400, "missing_field");
  Json bad_task = JobBody(1, "0.05");
  bad_task["task"]["command"] = Json::array();
  refused(bad_task, 400, "invalid_task");
  Json unknown_field = JobBody(1, "0.05");
  unknown_field["colour"] = "red";
  refused(unknown_field, 400, "unknown_field");
  refused(JobBody(0, "0.05"), 400, "invalid_field");
  Json syntax = refused(JobBody(1, "0.05", "gpu.count >= && region == \"eu\""), 400,
                        "invalid_constraints");
  EXPECT_EQ(syntax["error"]["column"], 14) << syntax.dump();
  refused(JobBody(1, "0.00005"), 422, "invalid_price");
  refused(JobBody(1000, "1"), 422, "insufficient_funds");
  Json market = JobBody(1, "0.05");
  market["market"] = "nope";
  refused(market, 404, "unknown_market");
  consumer_->Expect(400, "GET", "/v1/jobs/zero");
  consumer_->Expect(404, "GET", "/v1/jobs/999");
  ApiClient anonymous(server_->url());
  anonymous.Expect(401, "POST", "/v1/jobs", JobBody(1, "0.05"));
  anonymous.Expect(401, "GET", "/v1/jobs");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id), before);
  EXPECT_TRUE(consumer_->Expect(200, "GET", "/v1/jobs")["items"].empty());
}

TEST_F(ApiJobsTest, OffersAnswerQueriesSortedAndExplainWhyNothingMatches) {
  const MachineHandle eu = Machine({{"region", "eu"}, {"cpu.cores", 16}, {"gpu.count", 0}}, 4);
  const MachineHandle us = Machine({{"region", "us"}, {"cpu.cores", 4}, {"gpu.count", 1},
                                    {"gpu.model", "h100"}}, 4);
  Sell(eu.id, "0.07", 2);
  Sell(us.id, "0.03", 1);
  ApiClient anonymous(server_->url());
  Json all = anonymous.Expect(200, "GET", "/v1/offers?q=" + std::string("cpu.cores%20%3E%3D%204"));
  // Sorted by price by default: the US ask first, the EU one next, the market's own machine
  // (no ask) last.
  ASSERT_EQ(all["items"].size(), 3u) << all.dump();
  EXPECT_EQ(all["items"][0]["id"], us.id);
  EXPECT_EQ(all["items"][0]["ask"], "0.03");
  EXPECT_EQ(all["items"][1]["id"], eu.id);
  EXPECT_TRUE(all["items"][2]["ask"].is_null());
  EXPECT_EQ(all["total_matching"], 3);
  Json by_cores = anonymous.Expect(200, "GET", "/v1/offers?q=&sort=-cpu.cores&limit=1");
  ASSERT_EQ(by_cores["items"].size(), 1u);
  EXPECT_EQ(by_cores["items"][0]["id"], eu.id);
  EXPECT_EQ(by_cores["total_matching"], 3);
  Json gpu = anonymous.Expect(
      200, "GET", "/v1/offers?q=gpu.count%20%3E%3D%201%20%26%26%20region%20%3D%3D%20%22eu%22"
                  "&explain=1");
  EXPECT_EQ(gpu["total_matching"], 0);
  ASSERT_EQ(gpu["explain"].size(), 2u) << gpu.dump();
  EXPECT_EQ(gpu["explain"][0]["matching_alone"], 1);
  EXPECT_EQ(gpu["explain"][1]["matching_alone"], 1);
  EXPECT_EQ(gpu["explain"][1]["remaining_after"], 0);
  // A new ask shows at once (read-your-writes).
  Sell(eu.id, "0.02", 1);
  Json cheaper = anonymous.Expect(200, "GET", "/v1/offers?q=region%20%3D%3D%20%22eu%22");
  EXPECT_EQ(cheaper["items"][0]["ask"], "0.02");
  // Errors point at the column.
  Json bad = anonymous.Expect(400, "GET", "/v1/offers?q=region%20%3D%3D");
  EXPECT_EQ(bad["error"]["code"], "invalid_query");
  EXPECT_EQ(bad["error"]["column"], 10) << bad.dump();
  EXPECT_NE(bad["error"]["display"].get<std::string>().find('^'), std::string::npos);
  EXPECT_EQ(anonymous.Expect(400, "GET", "/v1/offers?sort=-")["error"]["code"], "invalid_sort");
  anonymous.Expect(404, "GET", "/v1/offers?market=nope");
  anonymous.Expect(400, "GET", "/v1/offers?limit=0");
}

TEST_F(ApiJobsTest, ABuyWithConstraintsTradesOnlyWithMatchingMachines) {
  const MachineHandle us = Machine({{"region", "us"}}, 2);
  const MachineHandle eu = Machine({{"region", "eu"}}, 2);
  Sell(us.id, "0.03", 1);
  Json buy = BuyOrder("0.05", 1);
  buy["constraints"] = "region == \"eu\"";
  Json placed = consumer_->Expect(201, "POST", "/v1/orders", buy);
  EXPECT_EQ(placed["order"]["status"], "open") << placed.dump();  // The US ask is skipped.
  Sell(eu.id, "0.04", 1);
  Json leases = consumer_->Expect(200, "GET", "/v1/leases");
  ASSERT_EQ(leases["items"].size(), 1u);
  EXPECT_EQ(leases["items"][0]["machine"], eu.id);
  Json bad = BuyOrder("0.05", 1);
  bad["constraints"] = "region ==";
  EXPECT_EQ(consumer_->Expect(400, "POST", "/v1/orders", bad)["error"]["code"],
            "invalid_constraints");
  Json sell = SellOrder("0.05", 1, us.id);
  sell["constraints"] = "region == \"eu\"";
  EXPECT_EQ(provider_->Expect(400, "POST", "/v1/orders", sell)["error"]["code"],
            "invalid_constraints");
}

TEST_F(ApiJobsTest, TheLedgerSummaryIsTheOperatorsAndBalances) {
  Sell(market_.machine.id, "0.05", 1);
  consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 1));
  Json summary = op_->Expect(200, "GET", "/v1/ledger");
  EXPECT_TRUE(summary["balanced"].get<bool>()) << summary.dump();
  EXPECT_EQ(summary["sum"], "0");
  EXPECT_EQ(summary["deposits"], "100");
  EXPECT_EQ(Micros(summary["totals"]["escrow"]), 50'000 + 100);
  EXPECT_EQ(Micros(summary["totals"]["external"]), -100'000'000);
  consumer_->Expect(403, "GET", "/v1/ledger");
  ApiClient anonymous(server_->url());
  anonymous.Expect(401, "GET", "/v1/ledger");
}

}  // namespace
}  // namespace ocx::api_test
