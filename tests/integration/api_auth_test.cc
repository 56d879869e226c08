// Who may do what: every mutating route without a token (401), with a token that is not
// valid (401), with another account's token (403, or 404 where the resource is private
// and its existence is not revealed), and with the right token (success). After each
// refusal the state it would have changed is checked unchanged.
//
// Documented outcomes for another account's token, as the exchange answers them:
//   deposits, withdrawals, creating an operator  403 forbidden (operator only)
//   POST /v1/machines as a consumer               403 forbidden
//   DELETE / PATCH /v1/orders/{id}                403 not_authorized
//   release (not the buyer), reclaim (not the seller)  403 not_authorized
//   GET /v1/accounts/{id} (+ledger, statement)    403 forbidden
//   GET /v1/orders/{id}, /v1/leases/{id}(/usage)  404 unknown_order / unknown_lease (private)
//   POST /v1/orders, POST/PUT/GET /v1/blobs        any valid account token (nothing to own)
//   POST /v1/accounts/{id}/token                   403 forbidden (the account or an operator)
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

const std::string kGarbageToken = "ocx_" + std::string(64, 'a');

class ApiAuthorizationTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
    other_ = CreateAccount(*op_, "consumer", "other");
    Deposit(*op_, other_.id, "100");
    owner_ = ClientFor(market_.consumer);
    seller_ = ClientFor(market_.provider);
    stranger_ = ClientFor(other_);
    anonymous_ = std::make_unique<ApiClient>(server_->url());
    garbage_ = std::make_unique<ApiClient>(server_->url(), kGarbageToken);
    // A resting buy of the owner, and a lease between the owner (buyer) and the provider.
    order_ = owner_->Expect(201, "POST", "/v1/orders", BuyOrder("0.01", 2))["order"]["id"]
                 .get<uint64_t>();
    seller_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 1, market_.machine.id));
    lease_ = owner_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 1))["fills"][0]["lease"]
                 .get<uint64_t>();
  }

  // The refusal has this status and code, in the documented error shape.
  static void ExpectRefused(const Reply& reply, int status, std::string_view code) {
    EXPECT_EQ(reply.status, status) << reply;
    EXPECT_EQ(reply.ErrorCode(), code) << reply;
    EXPECT_TRUE(reply.IsErrorBody()) << reply;
  }

  std::string OrderPath() const { return "/v1/orders/" + std::to_string(order_); }
  std::string LeasePath() const { return "/v1/leases/" + std::to_string(lease_); }
  Json Order() { return owner_->Expect(200, "GET", OrderPath())["order"]; }
  std::string LeaseStatus() {
    return owner_->Expect(200, "GET", LeasePath())["lease"]["status"].get<std::string>();
  }

  Market market_;
  AccountHandle other_;
  std::unique_ptr<ApiClient> owner_, seller_, stranger_, anonymous_, garbage_;
  uint64_t order_ = 0;
  uint64_t lease_ = 0;
};

TEST_F(ApiAuthorizationTest, DepositIsForTheOperatorOnly) {
  const std::string path = "/v1/accounts/" + std::to_string(market_.consumer.id) + "/deposits";
  const Json body{{"amount", "5"}};
  const Balances before = GetBalances(*op_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("POST", path, body), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", path, body), 401, "unauthenticated");
  ExpectRefused(owner_->Call("POST", path, body), 403, "forbidden");
  ExpectRefused(stranger_->Call("POST", path, body), 403, "forbidden");
  EXPECT_EQ(GetBalances(*op_, market_.consumer.id), before);
  op_->Expect(201, "POST", path, body);
  EXPECT_EQ(GetBalances(*op_, market_.consumer.id).available, before.available + 5'000'000);
}

TEST_F(ApiAuthorizationTest, WithdrawalIsForTheOperatorOnly) {
  const std::string path = "/v1/accounts/" + std::to_string(market_.consumer.id) + "/withdrawals";
  const Json body{{"amount", "5"}};
  const Balances before = GetBalances(*op_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("POST", path, body), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", path, body), 401, "unauthenticated");
  ExpectRefused(owner_->Call("POST", path, body), 403, "forbidden");
  ExpectRefused(stranger_->Call("POST", path, body), 403, "forbidden");
  EXPECT_EQ(GetBalances(*op_, market_.consumer.id), before);
  op_->Expect(201, "POST", path, body);
  EXPECT_EQ(GetBalances(*op_, market_.consumer.id).available, before.available - 5'000'000);
}

TEST_F(ApiAuthorizationTest, PlacingAnOrderNeedsAValidToken) {
  const size_t before = ListAll(*owner_, "/v1/orders").size();
  ExpectRefused(anonymous_->Call("POST", "/v1/orders", BuyOrder("0.01", 1)), 401,
                "unauthenticated");
  ExpectRefused(garbage_->Call("POST", "/v1/orders", BuyOrder("0.01", 1)), 401, "unauthenticated");
  // Not "Bearer <token>" at all.
  ExpectRefused(anonymous_->Call("POST", "/v1/orders", BuyOrder("0.01", 1),
                                 {{"Authorization", "Basic dXNlcjpwYXNz"}}),
                401, "unauthenticated");
  EXPECT_EQ(ListAll(*owner_, "/v1/orders").size(), before);
  // The one resting buy: 0.01 * 2 slots * 1 hour plus 20 bps.
  EXPECT_EQ(GetBalances(*owner_, market_.consumer.id).held, 20'040);
  owner_->Expect(201, "POST", "/v1/orders", BuyOrder("0.01", 1));
  EXPECT_EQ(ListAll(*owner_, "/v1/orders").size(), before + 1);
}

TEST_F(ApiAuthorizationTest, CancelIsForTheOrdersOwner) {
  const Balances before = GetBalances(*owner_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("DELETE", OrderPath()), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("DELETE", OrderPath()), 401, "unauthenticated");
  ExpectRefused(stranger_->Call("DELETE", OrderPath()), 403, "not_authorized");
  ExpectRefused(seller_->Call("DELETE", OrderPath()), 403, "not_authorized");
  EXPECT_EQ(Order()["status"], "open");
  EXPECT_EQ(Order()["remaining"], 2);
  EXPECT_EQ(GetBalances(*owner_, market_.consumer.id), before);
  owner_->Expect(200, "DELETE", OrderPath());
  EXPECT_EQ(Order()["status"], "cancelled");
}

TEST_F(ApiAuthorizationTest, ReplaceIsForTheOrdersOwner) {
  const Json body{{"price", "0.02"}};
  const Balances before = GetBalances(*owner_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("PATCH", OrderPath(), body), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("PATCH", OrderPath(), body), 401, "unauthenticated");
  ExpectRefused(stranger_->Call("PATCH", OrderPath(), body), 403, "not_authorized");
  EXPECT_EQ(Order()["price"], "0.01");
  EXPECT_EQ(GetBalances(*owner_, market_.consumer.id), before);
  owner_->Expect(200, "PATCH", OrderPath(), body);
  EXPECT_EQ(Order()["price"], "0.02");
}

TEST_F(ApiAuthorizationTest, RegisteringAMachineIsForProviders) {
  const auto keys = protocol::NewMachineKeyPair();
  const Json body{
      {"name", "m-auth"}, {"public_key", keys.public_key_hex}, {"capacity", {{"cpu", 1}}}};
  const size_t before = ListAll(*anonymous_, "/v1/machines").size();
  ExpectRefused(anonymous_->Call("POST", "/v1/machines", body), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", "/v1/machines", body), 401, "unauthenticated");
  ExpectRefused(owner_->Call("POST", "/v1/machines", body), 403, "forbidden");
  EXPECT_EQ(ListAll(*anonymous_, "/v1/machines").size(), before);
  seller_->Expect(201, "POST", "/v1/machines", body);
  EXPECT_EQ(ListAll(*anonymous_, "/v1/machines").size(), before + 1);
}

TEST_F(ApiAuthorizationTest, ReleaseIsForTheBuyer) {
  const std::string path = LeasePath() + "/release";
  const Balances before = GetBalances(*owner_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(stranger_->Call("POST", path), 403, "not_authorized");
  ExpectRefused(seller_->Call("POST", path), 403, "not_authorized");
  EXPECT_EQ(LeaseStatus(), "active");
  EXPECT_EQ(GetBalances(*owner_, market_.consumer.id), before);
  Json released = owner_->Expect(200, "POST", path);
  EXPECT_EQ(released["reason"], "released");
  EXPECT_EQ(LeaseStatus(), "ended");
}

TEST_F(ApiAuthorizationTest, ReclaimIsForTheSeller) {
  const std::string path = LeasePath() + "/reclaim";
  const Balances before = GetBalances(*owner_, market_.consumer.id);
  ExpectRefused(anonymous_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(stranger_->Call("POST", path), 403, "not_authorized");
  ExpectRefused(owner_->Call("POST", path), 403, "not_authorized");
  EXPECT_EQ(LeaseStatus(), "active");
  EXPECT_EQ(GetBalances(*owner_, market_.consumer.id), before);
  Json reclaimed = seller_->Expect(200, "POST", path);
  EXPECT_EQ(reclaimed["reason"], "reclaimed");
  EXPECT_EQ(LeaseStatus(), "ended");
}

TEST_F(ApiAuthorizationTest, BlobUploadsNeedAValidToken) {
  const std::string data = "blob bytes for the authorization test";
  const std::string path = "/v1/blobs/" + Sha256Hex(data);
  constexpr std::string_view kOctets = "application/octet-stream";
  ExpectRefused(anonymous_->Raw("POST", "/v1/blobs", data, {}, kOctets), 401, "unauthenticated");
  ExpectRefused(garbage_->Raw("POST", "/v1/blobs", data, {}, kOctets), 401, "unauthenticated");
  ExpectRefused(anonymous_->Raw("PUT", path, data, {}, kOctets), 401, "unauthenticated");
  ExpectRefused(garbage_->Raw("PUT", path, data, {}, kOctets), 401, "unauthenticated");
  // Nothing was kept.
  ExpectRefused(owner_->Call("GET", path), 404, "unknown_blob");

  Reply put = owner_->Raw("PUT", path, data, {}, kOctets);
  ASSERT_EQ(put.status, 201) << put;
  EXPECT_EQ(put.body["sha256"], Sha256Hex(data));
  EXPECT_EQ(put.body["size"], data.size());
  ExpectRefused(anonymous_->Call("GET", path), 401, "unauthenticated");
  // Only who uploaded it (or a task it may see names it, or an operator) may read a blob or
  // ask for its size; to anyone else it does not exist.
  ExpectRefused(stranger_->Call("GET", path), 404, "unknown_blob");
  EXPECT_EQ(stranger_->Raw("HEAD", path, "", {}, "").status, 404);
  Reply read = owner_->Call("GET", path);
  EXPECT_EQ(read.status, 200) << read;
  EXPECT_EQ(read.raw, data);
  Reply head = owner_->Raw("HEAD", path, "", {}, "");
  EXPECT_EQ(head.status, 200) << head;
  EXPECT_EQ(head.Header("x-blob-size"), std::to_string(data.size()));
  EXPECT_EQ(head.Header("etag"), "\"" + Sha256Hex(data) + "\"");
  EXPECT_EQ(anonymous_->Raw("HEAD", path, "", {}, "").status, 401);
  Reply posted = stranger_->Raw("POST", "/v1/blobs", "more bytes", {}, kOctets);
  EXPECT_EQ(posted.status, 201) << posted;
  EXPECT_EQ(posted.body["sha256"], Sha256Hex("more bytes"));
}

TEST_F(ApiAuthorizationTest, CreatingAnOperatorIsForTheOperator) {
  const Json body{{"name", "second-operator"}, {"role", "operator"}};
  const size_t before = ListAll(*op_, "/v1/accounts").size();
  ExpectRefused(anonymous_->Call("POST", "/v1/accounts", body), 403, "forbidden");
  ExpectRefused(garbage_->Call("POST", "/v1/accounts", body), 401, "unauthenticated");
  ExpectRefused(owner_->Call("POST", "/v1/accounts", body), 403, "forbidden");
  EXPECT_EQ(ListAll(*op_, "/v1/accounts").size(), before);
  Json created = op_->Expect(201, "POST", "/v1/accounts", body);
  EXPECT_EQ(created["account"]["role"], "operator");
  // The new operator's token works as an operator's.
  ApiClient second(server_->url(), created["token"].get<std::string>());
  EXPECT_EQ(ListAll(second, "/v1/accounts").size(), before + 1);
}

TEST_F(ApiAuthorizationTest, SignUpWithoutATokenMakesConsumersAndProviders) {
  Json created = anonymous_->Expect(201, "POST", "/v1/accounts",
                                    Json{{"name", "self-made"}, {"role", "provider"}});
  EXPECT_EQ(created["account"]["role"], "provider");
  ApiClient self(server_->url(), created["token"].get<std::string>());
  const uint64_t id = created["account"]["id"].get<uint64_t>();
  EXPECT_EQ(GetBalances(self, id), Balances{});
  // The name is taken now.
  ExpectRefused(anonymous_->Call("POST", "/v1/accounts", Json{{"name", "self-made"}}), 409,
                "name_taken");
}

TEST_F(ApiAuthorizationTest, PrivateReadsAreForTheOwner) {
  const std::string account = "/v1/accounts/" + std::to_string(market_.consumer.id);
  ExpectRefused(stranger_->Call("GET", account), 403, "forbidden");
  ExpectRefused(stranger_->Call("GET", account + "/ledger"), 403, "forbidden");
  ExpectRefused(stranger_->Call("GET", account + "/statement"), 403, "forbidden");
  ExpectRefused(anonymous_->Call("GET", account), 401, "unauthenticated");
  ExpectRefused(owner_->Call("GET", "/v1/accounts"), 403, "forbidden");
  ExpectRefused(anonymous_->Call("GET", "/v1/orders"), 401, "unauthenticated");
  ExpectRefused(anonymous_->Call("GET", "/v1/leases"), 401, "unauthenticated");
  // Another account's order and lease are as unknown as ones that never existed.
  ExpectRefused(stranger_->Call("GET", OrderPath()), 404, "unknown_order");
  ExpectRefused(stranger_->Call("GET", LeasePath()), 404, "unknown_lease");
  ExpectRefused(stranger_->Call("GET", LeasePath() + "/usage"), 404, "unknown_lease");
  EXPECT_TRUE(stranger_->Expect(200, "GET", "/v1/orders")["items"].empty());
  EXPECT_TRUE(stranger_->Expect(200, "GET", "/v1/leases")["items"].empty());
  // The operator reads everything.
  op_->Expect(200, "GET", account + "/ledger");
  op_->Expect(200, "GET", LeasePath());
}

TEST_F(ApiAuthorizationTest, AnInvalidTokenIsRefusedEvenOnPublicRoutes) {
  // A client that sends a token wants to be someone: a wrong one is never silently ignored.
  ExpectRefused(garbage_->Call("GET", "/v1/markets"), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("GET", "/v1/machines"), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", "/v1/accounts", Json{{"name", "x-garbage"}}), 401,
                "unauthenticated");
  const auto bad = ClientFor(AccountHandle{0, "", "not-a-token"});
  ExpectRefused(bad->Call("GET", "/v1/orders"), 401, "unauthenticated");
  anonymous_->Expect(200, "GET", "/v1/markets");
}

TEST_F(ApiAuthorizationTest, ATokenIsReplacedByItsAccountOrAnOperatorOnly) {
  const std::string path = "/v1/accounts/" + std::to_string(market_.consumer.id) + "/token";
  ExpectRefused(anonymous_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(garbage_->Call("POST", path), 401, "unauthenticated");
  ExpectRefused(stranger_->Call("POST", path), 403, "forbidden");
  ExpectRefused(seller_->Call("POST", path), 403, "forbidden");
  // Nothing changed: the owner's token still works.
  owner_->Expect(200, "GET", "/v1/me");

  // The owner replaces it: the new token is shown once; the old one is refused at once.
  const Json rotated = owner_->Expect(200, "POST", path);
  EXPECT_EQ(rotated["account"], market_.consumer.id) << rotated.dump();
  const std::string second = rotated.value("token", "");
  ASSERT_EQ(second.size(), 68u) << rotated.dump();
  EXPECT_TRUE(second.starts_with("ocx_"));
  EXPECT_NE(second, market_.consumer.token);
  ExpectRefused(owner_->Call("GET", "/v1/me"), 401, "unauthenticated");
  ExpectRefused(owner_->Call("POST", "/v1/orders", BuyOrder("0.01", 1)), 401, "unauthenticated");
  ApiClient renewed(server_->url(), second);
  EXPECT_EQ(renewed.Expect(200, "GET", "/v1/me")["account"]["id"], market_.consumer.id);
  // The account's orders and money are untouched: the token is only how it signs in.
  EXPECT_EQ(renewed.Expect(200, "GET", OrderPath())["order"]["status"], "open");

  // An operator replaces it for the account (a lost token, say).
  const Json by_operator = op_->Expect(200, "POST", path);
  const std::string third = by_operator.value("token", "");
  ASSERT_EQ(third.size(), 68u) << by_operator.dump();
  ExpectRefused(renewed.Call("GET", "/v1/me"), 401, "unauthenticated");
  ApiClient again(server_->url(), third);
  again.Expect(200, "GET", "/v1/me");
  // ... and the account list still has one account of that name: nothing was created.
  int named = 0;
  for (const Json& account : ListAll(*op_, "/v1/accounts")) {
    named += account["name"] == market_.consumer.name;
  }
  EXPECT_EQ(named, 1);
  ExpectRefused(op_->Call("POST", "/v1/accounts/999999/token"), 404, "unknown_account");
  ExpectRefused(op_->Call("POST", "/v1/accounts/4294967297/token"), 404, "unknown_account");
}

TEST_F(ApiAuthorizationTest, AReplacedTokenEndsTheStreamsItOpened) {
  const std::string path = "/v1/accounts/" + std::to_string(market_.consumer.id) + "/token";
  // One stream subscribed to a private channel, one signed in for order entry only.
  auto subscribed = ConnectWebSocket(server_->url(), "/v1/stream", market_.consumer.token);
  ASSERT_NE(subscribed, nullptr);
  for (const char* channel : {"orders", "leases"}) {
    ASSERT_TRUE(subscribed->Send(Json{{"op", "subscribe"}, {"channel", channel}}.dump()).ok());
    ASSERT_TRUE(ReceiveType(*subscribed, "subscribed").has_value());
  }
  auto entry = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(entry, nullptr);
  ASSERT_TRUE(
      entry->Send(Json{{"op", "auth"}, {"token", market_.consumer.token}}.dump()).ok());
  ASSERT_TRUE(ReceiveType(*entry, "authenticated").has_value());

  const std::string token = owner_->Expect(200, "POST", path).value("token", "");
  ASSERT_FALSE(token.empty());
  // The subscribed stream is told why, once for both channels, then closed.
  int revocations = 0;
  std::string why;
  while (std::optional<Json> message = ReceiveJson(*subscribed, 5'000, &why)) {
    if (message->value("type", "") != "error") continue;
    EXPECT_EQ((*message)["error"]["code"], "token_revoked") << message->dump();
    ++revocations;
  }
  EXPECT_EQ(revocations, 1);
  EXPECT_EQ(why.find("deadline"), std::string::npos) << "not closed: " << why;
  // The other one is signed out: order entry and private channels need the new token.
  ApiClient renewed(server_->url(), token);
  const size_t orders_before = ListAll(renewed, "/v1/orders").size();
  ASSERT_TRUE(entry->Send(Json{{"op", "place_order"},
                               {"id", 1},
                               {"order", BuyOrder("0.01", 1)}}
                              .dump())
                  .ok());
  std::optional<Json> refused = ReceiveType(*entry, "error");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)["error"]["code"], "unauthenticated") << refused->dump();
  ASSERT_TRUE(entry->Send(Json{{"op", "subscribe"}, {"channel", "leases"}}.dump()).ok());
  refused = ReceiveType(*entry, "error");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)["error"]["code"], "unauthenticated") << refused->dump();
  EXPECT_EQ(ListAll(renewed, "/v1/orders").size(), orders_before);
  // The old token cannot open a stream any more (401 at the upgrade); the new one signs in.
  client::HttpClientOptions options;
  options.timeout_ms = 15'000;
  options.bearer_token = market_.consumer.token;
  const auto endpoint = client::ParseUrl(server_->url());
  ASSERT_TRUE(endpoint.ok());
  EXPECT_FALSE(client::WebSocketClient::Connect(*endpoint, "/v1/stream", options).ok());
  ASSERT_TRUE(entry->Send(Json{{"op", "auth"}, {"token", token}}.dump()).ok());
  ASSERT_TRUE(ReceiveType(*entry, "authenticated").has_value());
  ASSERT_TRUE(entry->Send(Json{{"op", "subscribe"}, {"channel", "leases"}}.dump()).ok());
  EXPECT_TRUE(ReceiveType(*entry, "subscribed").has_value());
}

TEST_F(ApiAuthorizationTest, TheOperatorOfTheTokenFileGetsItsNewTokenWrittenThere) {
  const std::string file = server_->data_dir() + "/operator.token";
  auto read_file = [&] {
    std::ifstream in(file);
    std::string token;
    std::getline(in, token);
    return token;
  };
  ASSERT_EQ(read_file(), op_->token());
  const uint64_t op_id = op_->Expect(200, "GET", "/v1/me")["account"]["id"].get<uint64_t>();
  const Json rotated = op_->Expect(200, "POST", "/v1/accounts/" + std::to_string(op_id) + "/token");
  EXPECT_EQ(rotated["token_file"], "written") << rotated.dump();
  EXPECT_EQ(read_file(), rotated["token"]);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ExpectRefused(op_->Call("GET", "/v1/accounts"), 401, "unauthenticated");
  ApiClient renewed(server_->url(), rotated["token"].get<std::string>());
  renewed.Expect(200, "GET", "/v1/accounts");
  // Another account's new token (an operator's too) never goes into the file.
  const AccountHandle second = CreateAccount(renewed, "operator", "second-op");
  ApiClient second_op(server_->url(), second.token);
  const Json other =
      second_op.Expect(200, "POST", "/v1/accounts/" + std::to_string(second.id) + "/token");
  EXPECT_FALSE(other.contains("token_file")) << other.dump();
  const Json for_consumer = renewed.Expect(
      200, "POST", "/v1/accounts/" + std::to_string(market_.consumer.id) + "/token");
  EXPECT_FALSE(for_consumer.contains("token_file")) << for_consumer.dump();
  EXPECT_EQ(read_file(), rotated["token"]);
}

class ApiRateLimitTest : public ExchangeTest {};

TEST_F(ApiRateLimitTest, AnonymousSignUpIsLimitedPerAddress) {
  ApiClient anonymous(server_->url());
  int created = 0;
  Reply limited;
  for (int i = 0; i < 60 && limited.status == 0; ++i) {
    Reply reply = anonymous.Call("POST", "/v1/accounts", Json{{"name", UniqueName("signup")}});
    if (reply.status == 201) {
      ++created;
    } else {
      limited = reply;
    }
  }
  // A burst of 20, then 5 per second.
  EXPECT_GE(created, 20);
  EXPECT_LT(created, 60);
  EXPECT_EQ(limited.status, 429) << limited;
  EXPECT_EQ(limited.ErrorCode(), "rate_limited");
  EXPECT_GE(std::atoi(limited.Header("retry-after").c_str()), 1) << limited.Header("retry-after");
  // The operator's calls count against its account's (much larger) limit instead.
  for (int i = 0; i < 30; ++i) {
    EXPECT_NE(CreateAccount(*op_, "consumer", "by-operator").id, 0u);
  }
}

}  // namespace
}  // namespace ocx::api_test
