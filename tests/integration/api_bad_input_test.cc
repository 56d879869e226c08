// Bad input of every kind: each refused with the documented status, error code and JSON
// error body ({"error":{"code","message"}}), and none of them changing anything.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

struct BadRequest {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  int status;
  std::string code;
  std::string content_type = "application/json";
  Headers headers = {};
};

std::string Dump(Json j) { return j.dump(); }

class ApiBadInputTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
    consumer_ = ClientFor(market_.consumer);
    order_ = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 2))["order"]["id"]
                 .get<uint64_t>();
    balances_ = GetBalances(*consumer_, market_.consumer.id);
    orders_ = ListAll(*consumer_, "/v1/orders");
    ledger_ = ListAll(*op_, "/v1/accounts/" + std::to_string(market_.consumer.id) + "/ledger");
  }

  void TearDown() override {
    if (consumer_) {
      // Whatever was refused changed nothing.
      EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id), balances_);
      EXPECT_EQ(ListAll(*consumer_, "/v1/orders"), orders_);
      EXPECT_EQ(ListAll(*op_, "/v1/accounts/" + std::to_string(market_.consumer.id) + "/ledger"),
                ledger_);
      EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/markets/cpu/book")["bids"],
                Json::parse(R"([["0.04",2]])"));
    }
    ExchangeTest::TearDown();
  }

  void Check(ApiClient& client, const std::vector<BadRequest>& cases) {
    for (const BadRequest& c : cases) {
      SCOPED_TRACE(c.name + ": " + c.method + " " + c.target + " " + c.body.substr(0, 200));
      Reply reply = client.Raw(c.method, c.target, c.body, c.headers, c.content_type);
      EXPECT_EQ(reply.status, c.status) << reply;
      EXPECT_EQ(reply.ErrorCode(), c.code) << reply;
      EXPECT_TRUE(reply.IsErrorBody()) << reply;
      EXPECT_NE(reply.Header("content-type").find("application/json"), std::string::npos)
          << reply.Header("content-type");
    }
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_;
  uint64_t order_ = 0;
  Balances balances_;
  std::vector<Json> orders_;
  std::vector<Json> ledger_;
};

TEST_F(ApiBadInputTest, MalformedOrderBodiesAreRefused) {
  Json good = BuyOrder("0.05", 1);
  auto with = [&](const char* key, Json value) {
    Json body = good;
    body[key] = std::move(value);
    return body.dump();
  };
  auto without = [&](const char* key) {
    Json body = good;
    body.erase(key);
    return body.dump();
  };
  Check(
      *consumer_,
      {
          {"invalid JSON", "POST", "/v1/orders", R"({"market":"cpu",)", 400, "invalid_json"},
          {"not JSON at all", "POST", "/v1/orders", "hello", 400, "invalid_json"},
          {"a JSON array", "POST", "/v1/orders", Dump(Json::array({good})), 400, "invalid_json"},
          {"a JSON string", "POST", "/v1/orders", R"("order")", 400, "invalid_json"},
          {"text/plain", "POST", "/v1/orders", good.dump(), 415, "unsupported_media_type",
           "text/plain"},
          {"form encoded", "POST", "/v1/orders", "market=cpu", 415, "unsupported_media_type",
           "application/x-www-form-urlencoded"},
          {"missing quantity", "POST", "/v1/orders", without("quantity"), 400, "missing_field"},
          {"missing market", "POST", "/v1/orders", without("market"), 400, "missing_field"},
          {"missing side", "POST", "/v1/orders", without("side"), 400, "missing_field"},
          {"limit without price", "POST", "/v1/orders", without("price"), 400, "missing_field"},
          {"sell without machine", "POST", "/v1/orders", with("side", "sell"), 400,
           "missing_field"},
          {"price as a JSON number", "POST", "/v1/orders", with("price", 0.05), 400,
           "invalid_field"},
          {"quantity as a string", "POST", "/v1/orders", with("quantity", "1"), 400,
           "invalid_field"},
          {"quantity as a fraction", "POST", "/v1/orders", with("quantity", 1.5), 400,
           "invalid_field"},
          {"zero quantity", "POST", "/v1/orders", with("quantity", 0), 400, "invalid_field"},
          {"negative quantity", "POST", "/v1/orders", with("quantity", -3), 400, "invalid_field"},
          {"huge quantity", "POST", "/v1/orders", with("quantity", uint64_t{1} << 63), 400,
           "invalid_field"},
          {"price with 7 decimals", "POST", "/v1/orders", with("price", "0.0500001"), 400,
           "invalid_field"},
          {"price with an exponent", "POST", "/v1/orders", with("price", "5e-2"), 400,
           "invalid_field"},
          {"price not a number", "POST", "/v1/orders", with("price", "cheap"), 400,
           "invalid_field"},
          {"unknown side", "POST", "/v1/orders", with("side", "hold"), 400, "invalid_field"},
          {"unknown type", "POST", "/v1/orders", with("type", "stop"), 400, "invalid_field"},
          {"unknown tif", "POST", "/v1/orders", with("tif", "day"), 400, "invalid_field"},
          {"market order with a price", "POST", "/v1/orders", with("type", "market"), 400,
           "invalid_field"},
          {"zero max_hours", "POST", "/v1/orders", with("max_hours", 0), 400, "invalid_field"},
          {"unknown field", "POST", "/v1/orders", with("colour", "blue"), 400, "unknown_field"},
          {"misspelt field", "POST", "/v1/orders", with("quantitty", 1), 400, "unknown_field"},
          {"off-tick price", "POST", "/v1/orders", with("price", "0.05005"), 422, "off_tick"},
          {"unknown market", "POST", "/v1/orders", with("market", "tpu"), 404, "unknown_market"},
          {"too expensive", "POST", "/v1/orders", with("price", "1000"), 422, "insufficient_funds"},
          {"idempotency key too long",
           "POST",
           "/v1/orders",
           good.dump(),
           400,
           "invalid_idempotency_key",
           "application/json",
           {{"Idempotency-Key", std::string(65, 'k')}}},
          {"idempotency key with a space",
           "POST",
           "/v1/orders",
           good.dump(),
           400,
           "invalid_idempotency_key",
           "application/json",
           {{"Idempotency-Key", "a b"}}},
          {"idempotency key in the exchange's own namespace",
           "POST",
           "/v1/orders",
           good.dump(),
           400,
           "invalid_idempotency_key",
           "application/json",
           {{"Idempotency-Key", "auto-0123456789abcdef-1"}}},
      });
}

TEST_F(ApiBadInputTest, MalformedReplacesAndCancelsAreRefused) {
  const std::string path = "/v1/orders/" + std::to_string(order_);
  Check(*consumer_,
        {
            {"replace with nothing", "PATCH", path, "{}", 400, "missing_field"},
            {"replace price as number", "PATCH", path, R"({"price":0.03})", 400, "invalid_field"},
            {"replace unknown field", "PATCH", path, R"({"side":"sell"})", 400, "unknown_field"},
            {"replace off tick", "PATCH", path, R"({"price":"0.03333"})", 422, "off_tick"},
            {"replace unknown order", "PATCH", "/v1/orders/999999", R"({"quantity":1})", 404,
             "unknown_order"},
            {"cancel unknown order", "DELETE", "/v1/orders/999999", "", 404, "unknown_order"},
            {"cancel id zero", "DELETE", "/v1/orders/0", "", 400, "bad_request"},
        });
}

TEST_F(ApiBadInputTest, BadPathsMethodsAndQueriesAreRefused) {
  Check(*consumer_,
        {
            {"non-numeric id", "GET", "/v1/orders/abc", "", 400, "bad_request"},
            {"negative id", "GET", "/v1/orders/-1", "", 400, "bad_request"},
            {"id too long", "GET", "/v1/orders/123456789012345678901", "", 400, "bad_request"},
            {"unknown order", "GET", "/v1/orders/424242", "", 404, "unknown_order"},
            {"unknown lease", "GET", "/v1/leases/424242", "", 404, "unknown_lease"},
            {"unknown machine", "GET", "/v1/machines/424242", "", 404, "unknown_machine"},
            {"unknown route", "GET", "/v1/nothing-here", "", 404, "not_found"},
            {"unknown version", "GET", "/v2/orders", "", 404, "not_found"},
            {"unknown market book", "GET", "/v1/markets/tpu/book", "", 404, "unknown_market"},
            {"unknown market trades", "GET", "/v1/markets/tpu/trades", "", 404, "unknown_market"},
            {"wrong method", "PUT", "/v1/orders", "{}", 405, "method_not_allowed"},
            {"wrong method on an id", "POST", "/v1/orders/1", "{}", 405, "method_not_allowed"},
            {"delete markets", "DELETE", "/v1/markets", "", 405, "method_not_allowed"},
            {"limit=0", "GET", "/v1/orders?limit=0", "", 400, "bad_request"},
            {"limit=1001", "GET", "/v1/orders?limit=1001", "", 400, "bad_request"},
            {"limit=x", "GET", "/v1/orders?limit=x", "", 400, "bad_request"},
            {"after=-1", "GET", "/v1/orders?after=-1", "", 400, "bad_request"},
            {"after=1.5", "GET", "/v1/markets/cpu/trades?after=1.5", "", 400, "bad_request"},
            {"unknown status", "GET", "/v1/orders?status=done", "", 400, "bad_request"},
            {"depth=0", "GET", "/v1/markets/cpu/book?depth=0", "", 400, "bad_request"},
            {"depth=1001", "GET", "/v1/markets/cpu/book?depth=1001", "", 400, "bad_request"},
            {"statement from after to", "GET",
             "/v1/accounts/" + std::to_string(market_.consumer.id) + "/statement?from=5&to=4", "",
             400, "bad_request"},
            {"statement bad time", "GET",
             "/v1/accounts/" + std::to_string(market_.consumer.id) + "/statement?from=yesterday",
             "", 400, "bad_request"},
            {"stream without upgrade", "GET", "/v1/stream", "", 426, "upgrade_required"},
        });
  // The limits themselves are fine.
  consumer_->Expect(200, "GET", "/v1/orders?limit=1");
  consumer_->Expect(200, "GET", "/v1/orders?limit=1000&after=0");
}

TEST_F(ApiBadInputTest, BadMoneyAndAccountsAreRefused) {
  const std::string deposits = "/v1/accounts/" + std::to_string(market_.consumer.id) + "/deposits";
  // Account ids are 32 bits: this one, cut to 32 bits, would be the consumer's.
  const std::string wide = "/v1/accounts/" + std::to_string((uint64_t{1} << 32) + market_.consumer.id);
  Check(*op_,
        {
            {"amount as a number", "POST", deposits, R"({"amount":5})", 400, "invalid_field"},
            {"amount with 7 decimals", "POST", deposits, R"({"amount":"0.0000001"})", 400,
             "invalid_field"},
            {"amount missing", "POST", deposits, "{}", 400, "missing_field"},
            {"amount zero", "POST", deposits, R"({"amount":"0"})", 422, "invalid_amount"},
            {"amount negative", "POST", deposits, R"({"amount":"-5"})", 422, "invalid_amount"},
            {"deposit to nobody", "POST", "/v1/accounts/99999/deposits", R"({"amount":"5"})", 404,
             "unknown_account"},
            {"deposit past 32 bits", "POST", wide + "/deposits", R"({"amount":"5"})", 404,
             "unknown_account"},
            {"withdrawal past 32 bits", "POST", wide + "/withdrawals", R"({"amount":"5"})", 404,
             "unknown_account"},
            {"ledger past 32 bits", "GET", wide + "/ledger", "", 404, "unknown_account"},
            {"statement past 32 bits", "GET", wide + "/statement", "", 404, "unknown_account"},
            {"new token past 32 bits", "POST", wide + "/token", "", 404, "unknown_account"},
            {"withdraw from nowhere", "POST",
             "/v1/accounts/" + std::to_string(market_.consumer.id) + "/withdrawals",
             R"({"amount":"5","from":"escrow"})", 400, "invalid_field"},
            {"account without a name", "POST", "/v1/accounts", R"({"role":"consumer"})", 400,
             "missing_field"},
            {"account with a bad role", "POST", "/v1/accounts", R"({"name":"x1","role":"admin"})",
             400, "invalid_field"},
            {"account name taken", "POST", "/v1/accounts",
             Json{{"name", market_.consumer.name}}.dump(), 409, "name_taken"},
            {"unknown account", "GET", "/v1/accounts/99999", "", 404, "unknown_account"},
        });
}

TEST_F(ApiBadInputTest, AFokBuyWhoseConstraintsRuleOutEveryAskIsRefused) {
  // Once a way to stop the exchange: the fok check ignored the constraints, the engine did
  // not, and the core's assertion ended the process.
  auto provider = ClientFor(market_.provider);
  provider->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 2, market_.machine.id));
  Json fok = BuyOrder("0.05", 2);
  fok["tif"] = "fok";
  fok["constraints"] = R"(region == "nowhere")";
  Check(*consumer_, {{"fok buy, no ask allowed", "POST", "/v1/orders", fok.dump(), 422,
                      "fok_unfillable"}});
  EXPECT_EQ(consumer_->Expect(200, "GET", "/healthz")["status"], "ok");
}

TEST_F(ApiBadInputTest, BadMachinesAreRefused) {
  auto provider = ClientFor(market_.provider);
  const std::string key = protocol::NewMachineKeyPair().public_key_hex;
  Check(*provider,
        {
            {"no capacity", "POST", "/v1/machines",
             Json{{"name", "m1"}, {"public_key", key}}.dump(), 400, "missing_field"},
            {"capacity not a number", "POST", "/v1/machines",
             Json{{"name", "m1"}, {"public_key", key}, {"capacity", {{"cpu", "8"}}}}.dump(), 400,
             "invalid_field"},
            {"attribute of a bad type", "POST", "/v1/machines",
             Json{{"name", "m1"},
                  {"public_key", key},
                  {"attributes", {{"gpu", true}}},
                  {"capacity", {{"cpu", 8}}}}
                 .dump(),
             400, "invalid_field"},
            {"public key not hex", "POST", "/v1/machines",
             Json{{"name", "m1"}, {"public_key", std::string(64, 'z')}, {"capacity", {{"cpu", 8}}}}
                 .dump(),
             422, "invalid_public_key"},
            {"unknown market capacity", "POST", "/v1/machines",
             Json{{"name", "m1"}, {"public_key", key}, {"capacity", {{"tpu", 8}}}}.dump(), 404,
             "unknown_market"},
        });
}

TEST_F(ApiBadInputTest, BlobsWithABadDigestAreRefused) {
  const std::string data = "some blob";
  const std::string wrong = Sha256Hex("other blob");
  Check(*consumer_, {
                        {"digest mismatch", "PUT", "/v1/blobs/" + wrong, data, 400,
                         "digest_mismatch", "application/octet-stream"},
                        {"non-hex digest", "PUT", "/v1/blobs/" + std::string(64, 'g'), data, 400,
                         "bad_request", "application/octet-stream"},
                        {"short digest", "PUT", "/v1/blobs/abc123", data, 400, "bad_request",
                         "application/octet-stream"},
                        {"uppercase digest", "GET", "/v1/blobs/" + std::string(64, 'A'), "", 400,
                         "bad_request", ""},
                        {"unknown blob", "GET", "/v1/blobs/" + wrong, "", 404, "unknown_blob", ""},
                    });
  // Nothing of the mismatched upload was kept under either name.
  EXPECT_EQ(consumer_->Call("GET", "/v1/blobs/" + wrong).status, 404);
  EXPECT_EQ(consumer_->Call("GET", "/v1/blobs/" + Sha256Hex(data)).status, 404);
}

TEST_F(ApiBadInputTest, BodyOverOneMebibyteIs413) {
  const std::string head =
      "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
      market_.consumer.token +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string((1 << 20) + 1) +
      "\r\n\r\n";
  const std::string response = RawHttp(server_->port(), head, (1 << 20) + 1);
  EXPECT_EQ(RawStatus(response), 413) << response.substr(0, 300);
  Json body = Json::parse(RawBody(response), nullptr, false);
  EXPECT_EQ(body.is_object() ? body["error"]["code"] : Json(), "body_too_large") << response;
}

TEST_F(ApiBadInputTest, HeadersOver16KiBAre431) {
  const std::string head = "GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                           market_.consumer.token +
                           "\r\nX-Padding: " + std::string(17 * 1024, 'p') + "\r\n\r\n";
  const std::string response = RawHttp(server_->port(), head, 0);
  EXPECT_EQ(RawStatus(response), 431) << response.substr(0, 300);
  Json body = Json::parse(RawBody(response), nullptr, false);
  EXPECT_EQ(body.is_object() ? body["error"]["code"] : Json(), "headers_too_large") << response;
}

TEST_F(ApiBadInputTest, MalformedHttpIs400) {
  const std::string response = RawHttp(server_->port(), "THIS IS NOT HTTP\r\n\r\n", 0);
  EXPECT_EQ(RawStatus(response), 400) << response;
}

// A JSON body of 16 KiB to 1 MiB is within the documented 1 MiB limit.
TEST_F(ApiBadInputTest, JsonBodyOfTwentyKiBIsWithinTheLimit) {
  std::string body = BuyOrder("0.04", 1).dump();
  body.insert(1, std::string(20 * 1024, ' '));  // Whitespace is valid JSON.
  Reply reply = consumer_->Raw("POST", "/v1/orders", body);
  EXPECT_EQ(reply.status, 201) << reply;
  if (reply.status == 201) {
    // Put things back as the fixture expects them.
    consumer_->Expect(200, "DELETE",
                      "/v1/orders/" + std::to_string(reply.body["order"]["id"].get<uint64_t>()));
    balances_ = GetBalances(*consumer_, market_.consumer.id);
    orders_ = ListAll(*consumer_, "/v1/orders");
    ledger_ = ListAll(*op_, "/v1/accounts/" + std::to_string(market_.consumer.id) + "/ledger");
  }
}

// Blobs may be up to 64 MiB (docs/api.md).
TEST_F(ApiBadInputTest, BlobOfOneHundredKiBUploads) {
  const std::string data(100 * 1024, 'b');
  Reply reply = consumer_->Raw("POST", "/v1/blobs", data, {}, "application/octet-stream");
  EXPECT_EQ(reply.status, 201) << reply;
  EXPECT_EQ(reply.body.is_object() ? reply.body["sha256"] : Json(), Sha256Hex(data));
  Reply read = consumer_->Call("GET", "/v1/blobs/" + Sha256Hex(data));
  EXPECT_EQ(read.status, 200) << read;
  EXPECT_EQ(read.raw.size(), data.size());
}

}  // namespace
}  // namespace ocx::api_test
