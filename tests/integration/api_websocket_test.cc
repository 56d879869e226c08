// The /v1/stream WebSocket: public book and trade channels, the private orders and leases
// channels, and order entry over the stream (docs/api.md).
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

using client::WebSocketClient;

class ApiStreamTest : public ExchangeTest {
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

  // Subscribes and expects the confirmation.
  static void Subscribe(WebSocketClient& ws, const std::string& channel) {
    Send(ws, Json{{"op", "subscribe"}, {"channel", channel}});
    std::optional<Json> reply = ReceiveJson(ws, kMessageDeadlineMs);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(*reply, (Json{{"type", "subscribed"}, {"channel", channel}}));
  }

  static void Authenticate(WebSocketClient& ws, const AccountHandle& account) {
    Send(ws, Json{{"op", "auth"}, {"token", account.token}});
    std::optional<Json> reply = ReceiveJson(ws, kMessageDeadlineMs);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->value("type", ""), "authenticated") << reply->dump();
    EXPECT_EQ((*reply)["account"], account.id);
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_;
  std::unique_ptr<ApiClient> provider_;
};

TEST_F(ApiStreamTest, BookSubscriptionStartsWithASnapshot) {
  provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
  consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.03", 2));
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "book:cpu");
  std::optional<Json> snapshot = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ((*snapshot)["type"], "book_snapshot") << snapshot->dump();
  EXPECT_EQ((*snapshot)["market"], "cpu");
  EXPECT_EQ((*snapshot)["asks"], Json::parse(R"([["0.05",4]])"));
  EXPECT_EQ((*snapshot)["bids"], Json::parse(R"([["0.03",2]])"));
  EXPECT_GT((*snapshot)["sequence"].get<uint64_t>(), 0u);
}

TEST_F(ApiStreamTest, RestingOrderProducesABookUpdate) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "book:cpu");
  std::optional<Json> snapshot = ReceiveType(*ws, "book_snapshot");
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_TRUE((*snapshot)["bids"].empty());
  Json placed = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 3));
  std::optional<Json> update = ReceiveType(*ws, "book_update");
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ((*update)["market"], "cpu");
  EXPECT_EQ((*update)["bids"], Json::parse(R"([["0.04",3]])")) << update->dump();
  EXPECT_EQ((*update)["asks"], Json::array());
  EXPECT_EQ((*update)["sequence"], placed["sequence"]);
  EXPECT_GT((*update)["sequence"].get<uint64_t>(), (*snapshot)["sequence"].get<uint64_t>());

  // Cancelling empties the level: quantity 0.
  consumer_->Expect(200, "DELETE",
                    "/v1/orders/" + std::to_string(placed["order"]["id"].get<uint64_t>()));
  std::optional<Json> gone = ReceiveType(*ws, "book_update");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ((*gone)["bids"], Json::parse(R"([["0.04",0]])")) << gone->dump();
}

TEST_F(ApiStreamTest, CrossingBuyProducesATrade) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "trades:cpu");
  provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 3));
  std::optional<Json> trade = ReceiveType(*ws, "trade");
  ASSERT_TRUE(trade.has_value());
  EXPECT_EQ((*trade)["market"], "cpu");
  EXPECT_EQ((*trade)["price"], "0.05");
  EXPECT_EQ((*trade)["quantity"], 3);
  EXPECT_EQ((*trade)["taker_side"], "buy");
  EXPECT_EQ((*trade)["sequence"], bought["sequence"]);
  EXPECT_TRUE((*trade)["time"].is_number_integer());
}

// docs/api.md: a trade message is {"type":"trade","market","sequence","time","price",
// "quantity","taker_side","lease"}.
TEST_F(ApiStreamTest, TradeMessageNamesItsLease) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "trades:cpu");
  provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 3));
  std::optional<Json> trade = ReceiveType(*ws, "trade");
  ASSERT_TRUE(trade.has_value());
  EXPECT_TRUE(trade->contains("lease")) << trade->dump();
  EXPECT_EQ(trade->value("lease", Json()), bought["fills"][0]["lease"]) << trade->dump();
}

TEST_F(ApiStreamTest, OrdersChannelNeedsAuthentication) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Send(*ws, Json{{"op", "subscribe"}, {"channel", "orders"}});
  std::optional<Json> refused = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)["type"], "error") << refused->dump();
  EXPECT_EQ((*refused)["error"]["code"], "unauthenticated");
  // A wrong token does not authenticate either.
  Send(*ws, Json{{"op", "auth"}, {"token", "ocx_" + std::string(64, '0')}});
  std::optional<Json> bad = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ((*bad)["error"]["code"], "unauthenticated") << bad->dump();

  Authenticate(*ws, market_.consumer);
  Subscribe(*ws, "orders");
  Json placed = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 3));
  std::optional<Json> event = ReceiveType(*ws, "order");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ((*event)["order"], placed["order"]["id"]) << event->dump();
  EXPECT_EQ((*event)["event"], "accepted");
  EXPECT_EQ((*event)["sequence"], placed["sequence"]);
}

TEST_F(ApiStreamTest, OrdersChannelShowsOnlyMyOrdersWithTheirTrades) {
  // Authenticated by the upgrade request's Authorization header this time.
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "orders");
  // Someone else's order first: it must not show up before mine.
  const AccountHandle other = CreateAccount(*op_, "consumer", "other");
  Deposit(*op_, other.id, "10");
  ClientFor(other)->Expect(201, "POST", "/v1/orders", BuyOrder("0.01", 1));
  provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 2, market_.machine.id));
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 2));
  const uint64_t id = bought["order"]["id"].get<uint64_t>();
  std::optional<Json> first = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ((*first)["order"], id) << first->dump();
  std::optional<Json> trade =
      ReceiveUntil(*ws, [](const Json& m) { return m.value("event", "") == "trade"; });
  ASSERT_TRUE(trade.has_value());
  EXPECT_EQ((*trade)["order"], id);
  EXPECT_EQ((*trade)["quantity"], 2);
  EXPECT_EQ((*trade)["price"], "0.05");
}

TEST_F(ApiStreamTest, LeasesChannelSeesTheLeaseStart) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "leases");
  provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 2, market_.machine.id));
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 2));
  std::optional<Json> started = ReceiveType(*ws, "lease_started");
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ((*started)["lease"], bought["fills"][0]["lease"]) << started->dump();
  EXPECT_EQ((*started)["buyer"], market_.consumer.id);
  EXPECT_EQ((*started)["machine"], market_.machine.id);
  EXPECT_EQ((*started)["slots"], 2);
  consumer_->Expect(
      200, "POST",
      "/v1/leases/" + std::to_string((*started)["lease"].get<uint64_t>()) + "/release");
  std::optional<Json> ended = ReceiveType(*ws, "lease_ended");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ((*ended)["reason"], "released");
}

TEST_F(ApiStreamTest, PlaceOrderOverTheStreamAnswersWithTheRequestId) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Authenticate(*ws, market_.consumer);
  Send(*ws, Json{{"op", "place_order"},
                 {"id", 1},
                 {"idempotency_key", "ws-1"},
                 {"order", BuyOrder("0.04", 3)}});
  std::optional<Json> placed = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ((*placed)["type"], "order_placed") << placed->dump();
  EXPECT_EQ((*placed)["id"], 1);
  EXPECT_EQ((*placed)["order"]["status"], "open");
  EXPECT_EQ((*placed)["order"]["client_order_id"], "ws-1");
  const uint64_t order = (*placed)["order"]["id"].get<uint64_t>();
  // The same order over HTTP.
  Json got = consumer_->Expect(200, "GET", "/v1/orders/" + std::to_string(order));
  EXPECT_EQ(got["order"]["remaining"], 3);
  // And cancelled over the stream.
  Send(*ws, Json{{"op", "cancel_order"}, {"id", "c-2"}, {"order", order}});
  std::optional<Json> cancelled = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ((*cancelled)["type"], "order_cancelled") << cancelled->dump();
  EXPECT_EQ((*cancelled)["id"], "c-2");
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders/" + std::to_string(order))["order"]["status"],
            "cancelled");
}

TEST_F(ApiStreamTest, BadOrderOverTheStreamIsAnErrorWithTheRequestId) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Authenticate(*ws, market_.consumer);
  Json order = BuyOrder("0.04", 3);
  order["quantity"] = 0;
  Send(*ws, Json{{"op", "place_order"}, {"id", 2}, {"order", order}});
  std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["type"], "error") << error->dump();
  EXPECT_EQ((*error)["id"], 2);
  EXPECT_EQ((*error)["error"]["code"], "invalid_field");
  // Refused by the exchange (not the parser): still answered with the id.
  Send(*ws, Json{{"op", "place_order"}, {"id", 3}, {"order", BuyOrder("0.04005", 1)}});
  error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["id"], 3) << error->dump();
  EXPECT_EQ((*error)["error"]["code"], "off_tick");
  EXPECT_TRUE(consumer_->Expect(200, "GET", "/v1/orders")["items"].empty());
}

TEST_F(ApiStreamTest, OrderEntryNeedsAuthentication) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Send(*ws, Json{{"op", "place_order"}, {"id", 9}, {"order", BuyOrder("0.04", 3)}});
  std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)["error"]["code"], "unauthenticated") << error->dump();
  EXPECT_EQ((*error)["id"], 9);
  EXPECT_TRUE(consumer_->Expect(200, "GET", "/v1/orders")["items"].empty());
}

TEST_F(ApiStreamTest, UnknownChannelsAndMessagesAreErrors) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  for (const std::string channel : {"book:tpu", "trades:", "weather", "orders@1"}) {
    Send(*ws, Json{{"op", "subscribe"}, {"channel", channel}});
    std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ((*error)["type"], "error") << channel << ": " << error->dump();
    EXPECT_EQ((*error)["error"]["code"], "unknown_channel") << channel;
  }
  for (const std::string text : {"not json", "[1,2]", R"({"op":"dance"})", R"({"channel":"x"})"}) {
    ASSERT_TRUE(ws->Send(text).ok());
    std::optional<Json> error = ReceiveJson(*ws, kMessageDeadlineMs);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ((*error)["error"]["code"], "invalid_message") << text << ": " << error->dump();
  }
  // The connection is still usable.
  Send(*ws, Json{{"op", "ping"}});
  std::optional<Json> pong = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ((*pong)["type"], "pong");
}

TEST_F(ApiStreamTest, UnsubscribedChannelGetsNoMoreUpdates) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "book:cpu");
  ASSERT_TRUE(ReceiveType(*ws, "book_snapshot").has_value());
  Send(*ws, Json{{"op", "unsubscribe"}, {"channel", "book:cpu"}});
  ASSERT_TRUE(ReceiveType(*ws, "unsubscribed").has_value());
  consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 3));
  // A ping answered after the order's durable publication proves no update was queued.
  Subscribe(*ws, "trades:cpu");
  Send(*ws, Json{{"op", "ping"}});
  std::optional<Json> next = ReceiveJson(*ws, kMessageDeadlineMs);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ((*next)["type"], "pong") << next->dump();
}

// docs/api.md: "a client always reads its own writes". A stream event is published only
// for a durable command, so a read sent after the event must see that command.
TEST_F(ApiStreamTest, ReadAfterAStreamEventSeesTheEvent) {
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(ws, nullptr);
  Subscribe(*ws, "orders");
  constexpr int kOrders = 600;
  int stale = 0;
  std::string first_stale;
  for (int i = 0; i < kOrders; ++i) {
    Send(*ws, Json{{"op", "place_order"}, {"id", i}, {"order", BuyOrder("0.0001", 1)}});
    // The order's "accepted" event comes before the "order_placed" answer; read at once.
    std::optional<Json> event =
        ReceiveUntil(*ws, [](const Json& m) { return m.value("type", "") == "order"; });
    ASSERT_TRUE(event.has_value());
    const uint64_t id = (*event)["order"].get<uint64_t>();
    Reply read = consumer_->Call("GET", "/v1/orders/" + std::to_string(id));
    if (read.status != 200) {
      if (++stale == 1) first_stale = read.raw;
    }
    ASSERT_TRUE(ReceiveType(*ws, "order_placed").has_value());
  }
  EXPECT_EQ(stale, 0) << stale << " of " << kOrders
                      << " reads right after the order's stream event did not see the order; "
                         "first: "
                      << first_stale;
}

TEST_F(ApiStreamTest, UpgradeWithABadTokenIsRefused) {
  const auto endpoint = client::ParseUrl(server_->url());
  ASSERT_TRUE(endpoint.ok());
  client::HttpClientOptions options;
  options.bearer_token = "ocx_" + std::string(64, 'f');
  const auto ws = WebSocketClient::Connect(*endpoint, "/v1/stream", options);
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), absl::StatusCode::kUnauthenticated) << ws.status();
}

}  // namespace
}  // namespace ocx::api_test
