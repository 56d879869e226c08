// The exchange's boundary against input that used to end the process, and the classes of
// item 1 of the boundary issue: text that is not UTF-8, JSON of the wrong type, nesting, NUL
// bytes, duplicate keys, numbers past their range, a refused WebSocket upgrade. After each,
// the exchange still answers (GET /healthz) and the answer was a JSON error.
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

class ApiBoundaryTest : public ExchangeTest {
 protected:
  void ExpectAlive() {
    const Reply health = op_->Call("GET", "/healthz");
    EXPECT_EQ(health.status, 200) << "the exchange stopped answering: " << server_->LogTail();
  }
  void ExpectJsonError(const Reply& reply, int status, std::string_view code) {
    EXPECT_EQ(reply.status, status) << reply;
    EXPECT_EQ(reply.ErrorCode(), code) << reply;
    EXPECT_TRUE(reply.IsErrorBody()) << reply;
    EXPECT_NE(reply.Header("content-type").find("application/json"), std::string::npos);
  }
};

// Ended the process: writing the query's invalid UTF-8 into the JSON answer threw.
TEST_F(ApiBoundaryTest, AQueryThatIsNotUtf8IsA400AndTheExchangeGoesOn) {
  ApiClient anonymous(server_->url());
  ExpectJsonError(anonymous.Raw("GET", "/v1/offers?q=%FF", ""), 400, "bad_request");
  ExpectJsonError(anonymous.Raw("GET", "/v1/offers?q=region%20%3D%3D%20%22%C3%28%22", ""), 400,
                  "bad_request");
  ExpectJsonError(anonymous.Raw("GET", "/v1/markets/%FF/book", ""), 400, "bad_request");
  ExpectAlive();
}

// Ended the process: value("token", "") on a number threw a JSON type error.
TEST_F(ApiBoundaryTest, AStreamMessageWithAFieldOfTheWrongTypeIsAnErrorMessage) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  for (const char* message : {R"({"op":"auth","token":1})", R"({"op":"auth","token":null})",
                              R"({"op":"subscribe","channel":["x"]})", R"({"op":7})",
                              R"({"op":"cancel_order","order":-1})", R"([])", "\"op\"",
                              R"({"op":"ping","op":"auth"})"}) {
    SCOPED_TRACE(message);
    ASSERT_TRUE(ws->Send(message).ok());
    const auto reply = ReceiveJson(*ws, kMessageDeadlineMs);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ((*reply)["type"], "error") << *reply;
    EXPECT_TRUE((*reply)["error"]["code"].is_string()) << *reply;
  }
  ASSERT_TRUE(ws->Send(R"({"op":"ping"})").ok());
  const auto pong = ReceiveType(*ws, "pong");
  EXPECT_TRUE(pong.has_value());
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, AgentMessagesOfTheWrongTypeAreErrorMessages) {
  const Market market = MakeMarket();
  auto agent = ConnectAgent(server_->url(), market.machine.id, market.machine.keys.secret_key);
  ASSERT_NE(agent, nullptr);
  for (const char* message :
       {R"({"type":"end_lease","lease":1,"reason":5})", R"({"type":"task_log","lease":1,"stream":2,"data":"x"})",
        R"({"type":"usage","lease":1,"wall_seconds":18446744073709551615,"cpu_seconds":0,"peak_memory_mib":0,"gpu_seconds":0,"signature":"00"})",
        R"({"type":"task_result","lease":"1","result":{}})", R"({"type":"heartbeat","x":1})"}) {
    SCOPED_TRACE(message);
    ASSERT_TRUE(agent->Send(message).ok());
    const auto reply = ReceiveType(*agent, "error");
    ASSERT_TRUE(reply.has_value());
  }
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, JsonThatIsNotStrictlyOneObjectIsRefusedWithItsReason) {
  const Market market = MakeMarket();
  auto consumer = ClientFor(market.consumer);
  const std::string good = BuyOrder("0.04", 1).dump();
  ExpectJsonError(consumer->Raw("POST", "/v1/orders", good + std::string("\0{}", 3)), 400,
                  "invalid_json");
  ExpectJsonError(consumer->Raw("POST", "/v1/orders", good + " {}"), 400, "invalid_json");
  ExpectJsonError(
      consumer->Raw("POST", "/v1/orders",
                    R"({"market":"cpu","side":"buy","price":"0.04","quantity":1,"quantity":999})"),
      400, "invalid_json");
  std::string deep(100'000, '[');
  ExpectJsonError(consumer->Raw("POST", "/v1/orders", deep), 400, "invalid_json");
  std::string nested = R"({"market":"cpu","side":"buy","price":"0.04","quantity":1,"x":)";
  for (int i = 0; i < 500; ++i) nested += "{\"a\":";
  nested += "1" + std::string(500, '}') + "}";
  ExpectJsonError(consumer->Raw("POST", "/v1/orders", nested), 400, "invalid_json");
  ExpectJsonError(consumer->Raw("POST", "/v1/orders", "{\"market\":\"\xff\"}"), 400,
                  "invalid_json");
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, NumbersPastTheirRangeAre400NeverWrapped) {
  const Market market = MakeMarket();
  auto consumer = ClientFor(market.consumer);
  for (const char* quantity : {"18446744073709551616", "18446744073709551615",
                               "9223372036854775808", "-1", "1e3", "1.5"}) {
    SCOPED_TRACE(quantity);
    const std::string body =
        std::string(R"({"market":"cpu","side":"buy","price":"0.04","quantity":)") + quantity + "}";
    ExpectJsonError(consumer->Raw("POST", "/v1/orders", body), 400, "invalid_field");
  }
  for (const char* id : {"9223372036854775808", "18446744073709551615", "18446744073709551616",
                         "-1", "0", "99999999999999999999999"}) {
    SCOPED_TRACE(id);
    ExpectJsonError(consumer->Raw("DELETE", std::string("/v1/orders/") + id, ""), 400,
                    "bad_request");
    ExpectJsonError(consumer->Raw("GET", std::string("/v1/leases/") + id, ""), 400,
                    "bad_request");
  }
  ExpectJsonError(consumer->Raw("GET", "/v1/orders?after=9223372036854775808", ""), 400,
                  "bad_request");
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, ARefusedWebSocketUpgradeAnswersJson) {
  // No Sec-WebSocket-Key: Beast would have answered in plain text.
  const std::string reply = RawHttp(
      server_->port(),
      "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(reply), 400) << reply;
  const Json body = Json::parse(RawBody(reply), nullptr, false);
  ASSERT_TRUE(body.is_object()) << reply;
  EXPECT_EQ(body["error"]["code"], "bad_request");
  EXPECT_NE(reply.find("application/json"), std::string::npos);
  // A version other than 13: 426 with the version the server speaks.
  const std::string old = RawHttp(
      server_->port(),
      "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(old), 426) << old;
  EXPECT_NE(old.find("Sec-WebSocket-Version: 13"), std::string::npos) << old;
  // An unknown WebSocket path and a bad token.
  const std::string unknown = RawHttp(
      server_->port(),
      "GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(unknown), 404) << unknown;
  EXPECT_EQ(Json::parse(RawBody(unknown), nullptr, false)["error"]["code"], "not_found");
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, AnUploadOverTheQuotaIsRefusedBeforeItsBodyIsRead) {
  const Market market = MakeMarket();
  // 65 MiB declared: refused from the header alone (the route's limit is 64 MiB).
  const std::string reply = RawHttp(
      server_->port(),
      "POST /v1/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + market.consumer.token +
          "\r\nContent-Type: application/octet-stream\r\nContent-Length: 68157440\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(reply), 413) << reply;
  // Without a token the body is not read either: 401 at once.
  const std::string anonymous = RawHttp(
      server_->port(),
      "POST /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: 1000000\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(anonymous), 401) << anonymous;
  ExpectAlive();
}

TEST_F(ApiBoundaryTest, BlobsAreReadableByTheirUploaderAndNotByAStranger) {
  const Market market = MakeMarket();
  auto consumer = ClientFor(market.consumer);
  const Reply uploaded =
      consumer->Raw("POST", "/v1/blobs", "private bytes", {}, "application/octet-stream");
  ASSERT_EQ(uploaded.status, 201) << uploaded;
  const std::string sha = uploaded.body["sha256"].get<std::string>();
  const Reply mine = consumer->Raw("GET", "/v1/blobs/" + sha, "", {}, "");
  EXPECT_EQ(mine.status, 200) << mine;
  EXPECT_EQ(mine.raw, "private bytes");
  auto provider = ClientFor(market.provider);
  ExpectJsonError(provider->Raw("GET", "/v1/blobs/" + sha, "", {}, ""), 404, "unknown_blob");
  // The operator may read every blob.
  EXPECT_EQ(op_->Raw("GET", "/v1/blobs/" + sha, "", {}, "").status, 200);
}

}  // namespace
}  // namespace ocx::api_test
