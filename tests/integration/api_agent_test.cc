// The provider agent's WebSocket, /v1/agent: Ed25519 challenge-response, heartbeats, lease
// assignments, signed usage reports and lease ends (docs/api.md).
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

using client::WebSocketClient;

class ApiAgentTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
    consumer_ = ClientFor(market_.consumer);
    provider_ = ClientFor(market_.provider);
  }

  static void Send(WebSocketClient& ws, const Json& message) {
    const absl::Status sent = ws.Send(message.dump());
    EXPECT_TRUE(sent.ok()) << sent;
  }

  // A trade of 4 slots at 0.05 on the machine; returns the lease id.
  uint64_t Trade() {
    provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
    Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 4));
    return bought["fills"][0]["lease"].get<uint64_t>();
  }

  // A usage report signed with `secret_key`.
  Json Usage(uint64_t lease, int64_t wall, int64_t cpu, int64_t memory, int64_t gpu,
             const std::string& secret_key, const Json& id) const {
    protocol::UsageFigures usage;
    usage.lease = lease;
    usage.wall_seconds = wall;
    usage.cpu_seconds = cpu;
    usage.peak_memory_mib = memory;
    usage.gpu_seconds = gpu;
    return Json{
        {"type", "usage"},
        {"id", id},
        {"lease", lease},
        {"wall_seconds", wall},
        {"cpu_seconds", cpu},
        {"peak_memory_mib", memory},
        {"gpu_seconds", gpu},
        {"signature", protocol::SignHex(secret_key, protocol::UsageMessage(market_.machine.id, usage))}};
  }

  std::unique_ptr<WebSocketClient> Agent(Json* welcome = nullptr) {
    return ConnectAgent(server_->url(), market_.machine.id, market_.machine.keys.secret_key,
                        welcome);
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_;
  std::unique_ptr<ApiClient> provider_;
};

TEST_F(ApiAgentTest, CorrectSignatureIsWelcomed) {
  Json welcome;
  auto agent = Agent(&welcome);
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(welcome["machine"], market_.machine.id);
  EXPECT_EQ(welcome["leases"], Json::array());
}

TEST_F(ApiAgentTest, WrongSignatureIsRefusedAndClosed) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/agent");
  ASSERT_NE(ws, nullptr);
  std::optional<Json> challenge = ReceiveType(*ws, "challenge");
  ASSERT_TRUE(challenge.has_value());
  // Signed by another key.
  const protocol::MachineKeyPair impostor = protocol::NewMachineKeyPair();
  Send(*ws, Json{{"type", "auth"},
                 {"machine", market_.machine.id},
                 {"signature",
                  protocol::SignHex(impostor.secret_key,
                               protocol::AgentAuthMessage(market_.machine.id,
                                                     (*challenge)["nonce"].get<std::string>()))}});
  std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["type"], "error") << error->dump();
  EXPECT_EQ((*error)["error"]["code"], "unauthenticated");
  EXPECT_TRUE(ClosedWithin(*ws, kMessageDeadlineMs));
}

TEST_F(ApiAgentTest, SignatureOverAnotherNonceIsRefused) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/agent");
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ReceiveType(*ws, "challenge").has_value());
  // The right key, but a replayed (different) nonce.
  Send(*ws, Json{{"type", "auth"},
                 {"machine", market_.machine.id},
                 {"signature",
                  protocol::SignHex(market_.machine.keys.secret_key,
                               protocol::AgentAuthMessage(market_.machine.id, std::string(64, '0')))}});
  std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["error"]["code"], "unauthenticated") << error->dump();
  EXPECT_TRUE(ClosedWithin(*ws, kMessageDeadlineMs));
}

TEST_F(ApiAgentTest, MessagesBeforeAuthAreRefusedAndClosed) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/agent");
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ReceiveType(*ws, "challenge").has_value());
  Send(*ws, Json{{"type", "heartbeat"}, {"id", 1}});
  std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["error"]["code"], "unauthenticated") << error->dump();
  EXPECT_TRUE(ClosedWithin(*ws, kMessageDeadlineMs));
}

TEST_F(ApiAgentTest, HeartbeatIsAcknowledgedWithItsId) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  Send(*agent, Json{{"type", "heartbeat"}, {"id", 7}});
  std::optional<Json> ack = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ((*ack)["type"], "ack") << ack->dump();
  EXPECT_EQ((*ack)["id"], 7);
  EXPECT_GT((*ack)["sequence"].get<uint64_t>(), 0u);
  Json machine =
      consumer_->Expect(200, "GET", "/v1/machines/" + std::to_string(market_.machine.id));
  EXPECT_EQ(machine["machine"]["online"], true);
}

TEST_F(ApiAgentTest, TradeOnTheMachineSendsLeaseStarted) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  std::optional<Json> started = ReceiveType(*agent, "lease_started");
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ((*started)["lease"], lease) << started->dump();
  EXPECT_EQ((*started)["machine"], market_.machine.id);
  EXPECT_EQ((*started)["buyer"], market_.consumer.id);
  EXPECT_EQ((*started)["slots"], 4);
  EXPECT_EQ((*started)["price"], "0.05");
  EXPECT_EQ((*started)["max_hours"], 1);
}

TEST_F(ApiAgentTest, WelcomeListsTheActiveLeases) {
  const uint64_t lease = Trade();
  Json welcome;
  auto agent = Agent(&welcome);
  ASSERT_NE(agent, nullptr);
  ASSERT_EQ(welcome["leases"].size(), 1u) << welcome.dump();
  EXPECT_EQ(welcome["leases"][0]["lease"], lease);
  EXPECT_EQ(welcome["leases"][0]["slots"], 4);
}

TEST_F(ApiAgentTest, SignedUsageIsBilledAndListed) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  ASSERT_TRUE(ReceiveType(*agent, "lease_started").has_value());
  // 2 s of 4 slots at 0.05/slot-hour: floor(0.2 * 2 / 3600 credits) = 0.000111.
  Send(*agent, Usage(lease, 2, 3, 512, 0, market_.machine.keys.secret_key, "u-1"));
  std::optional<Json> ack = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ((*ack)["type"], "ack") << ack->dump();
  EXPECT_EQ((*ack)["id"], "u-1");
  EXPECT_EQ((*ack)["billed_total"], "0.000111");

  Json usage = consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease) + "/usage");
  ASSERT_EQ(usage["items"].size(), 1u) << usage.dump();
  EXPECT_EQ(usage["items"][0]["wall_seconds"], 2);
  EXPECT_EQ(usage["items"][0]["cpu_seconds"], 3);
  EXPECT_EQ(usage["items"][0]["peak_memory_mib"], 512);
  EXPECT_EQ(usage["items"][0]["billed_total"], "0.000111");
  // The seller sees it too, and the lease carries the bill.
  EXPECT_EQ(provider_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease) + "/usage")["items"]
                .size(),
            1u);
  Json got = consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(got["lease"]["billed_total"], "0.000111");
  EXPECT_EQ(got["lease"]["reported_wall_seconds"], 2);
  // The bill moved from the buyer's escrow to the seller's earnings.
  EXPECT_EQ(GetBalances(*provider_, market_.provider.id).earnings, 111);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
}

TEST_F(ApiAgentTest, UsageWithABadSignatureRecordsNothing) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  ASSERT_TRUE(ReceiveType(*agent, "lease_started").has_value());
  const Balances before = GetBalances(*consumer_, market_.consumer.id);
  const protocol::MachineKeyPair impostor = protocol::NewMachineKeyPair();
  Send(*agent, Usage(lease, 2, 3, 512, 0, impostor.secret_key, 11));
  std::optional<Json> error = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["type"], "error") << error->dump();
  EXPECT_EQ((*error)["id"], 11);
  EXPECT_EQ((*error)["error"]["code"], "bad_signature");
  // A correctly signed report whose figures differ from the signed ones is as bad.
  Json tampered = Usage(lease, 2, 3, 512, 0, market_.machine.keys.secret_key, 12);
  tampered["wall_seconds"] = 3;
  Send(*agent, tampered);
  std::optional<Json> error2 = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(error2.has_value());
  EXPECT_EQ((*error2)["error"]["code"], "bad_signature") << error2->dump();

  EXPECT_TRUE(
      consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease) + "/usage")["items"]
          .empty());
  Json got = consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(got["lease"]["billed_total"], "0");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id), before);
  // The connection stays usable.
  Send(*agent, Json{{"type", "heartbeat"}, {"id", 13}});
  std::optional<Json> ack = ReceiveType(*agent, "ack");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ((*ack)["id"], 13);
}

TEST_F(ApiAgentTest, UsageRefusedByTheExchangeIsAnErrorWithTheId) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  ASSERT_TRUE(ReceiveType(*agent, "lease_started").has_value());
  // An hour of wall time has not passed since the lease started.
  Send(*agent, Usage(lease, 3600, 0, 0, 0, market_.machine.keys.secret_key, 21));
  std::optional<Json> error = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["id"], 21) << error->dump();
  EXPECT_EQ((*error)["error"]["code"], "usage_ahead_of_clock");
  // More CPU than 4 one-vCPU slots can give in 1 s.
  Send(*agent, Usage(lease, 1, 5, 0, 0, market_.machine.keys.secret_key, 22));
  std::optional<Json> error2 = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(error2.has_value());
  EXPECT_EQ((*error2)["error"]["code"], "usage_exceeds_allocation") << error2->dump();
  EXPECT_TRUE(
      consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease) + "/usage")["items"]
          .empty());
}

TEST_F(ApiAgentTest, FinishedLeaseEndsForTheAgentAndTheApi) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  ASSERT_TRUE(ReceiveType(*agent, "lease_started").has_value());
  Send(*agent, Json{{"type", "end_lease"}, {"id", 31}, {"lease", lease}, {"reason", "finished"}});
  std::optional<Json> ended = ReceiveType(*agent, "lease_ended");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ((*ended)["lease"], lease) << ended->dump();
  EXPECT_EQ((*ended)["reason"], "finished");
  // The ack says the command is durable and readable (the lease_ended message may come
  // first: ApiStreamTest.ReadAfterAStreamEventSeesTheEvent).
  std::optional<Json> ack = ReceiveType(*agent, "ack");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ((*ack)["id"], 31);
  Json got = consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(got["lease"]["status"], "ended");
  EXPECT_EQ(got["lease"]["end_reason"], "finished");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).escrow, 0);
  // Ending it again is refused with the id.
  Send(*agent, Json{{"type", "end_lease"}, {"id", 32}, {"lease", lease}, {"reason", "finished"}});
  std::optional<Json> error =
      ReceiveUntil(*agent, [](const Json& m) { return m.value("type", "") == "error"; });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["id"], 32);
  EXPECT_EQ((*error)["error"]["code"], "unknown_lease");
  EXPECT_TRUE(LedgerIsBalanced(*op_, 100'000'000));
}

TEST_F(ApiAgentTest, AgentCannotEndAnotherMachinesLease) {
  const uint64_t lease = Trade();
  // A second machine of the same provider.
  const MachineHandle second = RegisterMachine(*provider_, 2);
  auto agent = ConnectAgent(server_->url(), second.id, second.keys.secret_key);
  ASSERT_NE(agent, nullptr);
  Send(*agent, Json{{"type", "end_lease"}, {"id", 41}, {"lease", lease}, {"reason", "finished"}});
  std::optional<Json> error = ReceiveJson(*agent, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["id"], 41) << error->dump();
  EXPECT_EQ((*error)["error"]["code"], "not_authorized");
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease))["lease"]["status"],
            "active");
}

// ---- Tasks (docs/formats/task.md): the buyer attaches one, the agent receives it, relays its
// output live and reports the result.

TEST_F(ApiAgentTest, ATaskGoesFromTheBuyerToTheAgentAndItsResultBack) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  const uint64_t lease = Trade();
  ASSERT_TRUE(ReceiveType(*agent, "lease_started").has_value());
  const std::string path = "/v1/leases/" + std::to_string(lease) + "/task";
  auto stream = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(stream, nullptr);
  Send(*stream, Json{{"op", "subscribe"}, {"channel", "leases"}});
  ASSERT_TRUE(ReceiveType(*stream, "subscribed").has_value());

  // Bad specs say which field is wrong; nothing is assigned.
  for (const Json& bad : {Json{{"command", Json::array()}},
                          Json{{"command", {"sh"}},
                               {"inputs", {{{"path", "../x"}, {"sha256", std::string(64, 'a')}}}}},
                          Json{{"command", {"sh"}}, {"colour", "red"}},
                          Json{{"command", {"sh"}}, {"timeout_s", 0}}}) {
    Json refused = consumer_->Expect(400, "POST", path, bad);
    EXPECT_EQ(refused["error"]["code"], "invalid_task") << refused.dump();
  }
  consumer_->Expect(404, "GET", path);
  // Only the buyer gives a lease its task.
  Json seller_try = provider_->Expect(403, "POST", path, Json{{"command", {"true"}}});
  EXPECT_EQ(seller_try["error"]["code"], "not_authorized");

  const Json spec{{"command", {"sh", "-c", "echo hello"}}, {"outputs", {"out"}}, {"timeout_s", 60}};
  Json assigned = consumer_->Expect(201, "POST", path, spec);
  EXPECT_EQ(assigned["status"], "running");
  Json again = consumer_->Expect(409, "POST", path, spec);
  EXPECT_EQ(again["error"]["code"], "task_already_assigned");

  std::optional<Json> task = ReceiveType(*agent, "task");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ((*task)["lease"], lease);
  EXPECT_EQ((*task)["spec"], spec) << task->dump();
  // A reconnecting agent finds the task in its welcome.
  Json welcome;
  auto second = Agent(&welcome);
  ASSERT_NE(second, nullptr);
  ASSERT_EQ(welcome["leases"].size(), 1u);
  EXPECT_EQ(welcome["leases"][0]["task"], spec) << welcome.dump();

  // Output is relayed live to the buyer, only for the machine's own leases.
  Send(*agent, Json{{"type", "task_log"}, {"lease", lease}, {"stream", "stdout"},
                    {"data", "hello\n"}});
  std::optional<Json> log = ReceiveType(*stream, "task_log");
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ((*log)["lease"], lease);
  EXPECT_EQ((*log)["stream"], "stdout");
  EXPECT_EQ((*log)["data"], "hello\n");
  Send(*agent, Json{{"type", "task_log"}, {"id", 5}, {"lease", lease + 100}, {"stream", "stdout"},
                    {"data", "x"}});
  std::optional<Json> refused = ReceiveType(*agent, "error");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)["error"]["code"], "unknown_lease");

  const Json result{{"status", "succeeded"}, {"exit_code", 0}, {"outputs", Json::array()}};
  Send(*agent, Json{{"type", "task_result"}, {"id", 6}, {"lease", lease}, {"result", result}});
  std::optional<Json> ack = ReceiveType(*agent, "ack");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ((*ack)["id"], 6);
  std::optional<Json> finished = ReceiveType(*stream, "task_finished");
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ((*finished)["result"], result);
  Json got = consumer_->Expect(200, "GET", path);
  EXPECT_EQ(got["task"]["status"], "finished") << got.dump();
  EXPECT_EQ(got["task"]["spec"], spec);
  EXPECT_EQ(got["task"]["result"], result);
  // The seller reads it too; a stranger does not.
  EXPECT_EQ(provider_->Expect(200, "GET", path)["task"]["status"], "finished");
  const AccountHandle stranger = CreateAccount(*op_, "consumer", "stranger");
  ApiClient outsider(server_->url(), stranger.token);
  outsider.Expect(404, "GET", path);
  // A second result is refused.
  Send(*agent, Json{{"type", "task_result"}, {"id", 7}, {"lease", lease}, {"result", result}});
  std::optional<Json> twice = ReceiveType(*agent, "error");
  ASSERT_TRUE(twice.has_value());
  EXPECT_EQ((*twice)["error"]["code"], "unknown_task");
}

}  // namespace
}  // namespace ocx::api_test
