// What operators and tools read: /openapi.json (generated from the route table), /metrics
// (Prometheus text) and /healthz.
#include <sys/stat.h>

#include <set>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

// The route table of src/api/api.cc, written out here on purpose: a route removed (or added)
// there without this list changing is noticed.
const std::set<std::pair<std::string, std::string>>& RouteTable() {
  static const std::set<std::pair<std::string, std::string>> routes = {
      {"get", "/healthz"},
      {"get", "/metrics"},
      {"get", "/openapi.json"},
      {"post", "/v1/accounts"},
      {"get", "/v1/accounts"},
      {"get", "/v1/accounts/{id}"},
      {"get", "/v1/me"},
      {"post", "/v1/accounts/{id}/token"},
      {"post", "/v1/accounts/{id}/deposits"},
      {"post", "/v1/accounts/{id}/withdrawals"},
      {"get", "/v1/accounts/{id}/ledger"},
      {"get", "/v1/accounts/{id}/statement"},
      {"get", "/v1/ledger"},
      {"get", "/v1/markets"},
      {"get", "/v1/markets/{market}/book"},
      {"get", "/v1/markets/{market}/trades"},
      {"post", "/v1/orders"},
      {"get", "/v1/orders"},
      {"get", "/v1/orders/{id}"},
      {"delete", "/v1/orders/{id}"},
      {"patch", "/v1/orders/{id}"},
      {"post", "/v1/machines"},
      {"get", "/v1/machines"},
      {"get", "/v1/machines/{id}"},
      {"get", "/v1/offers"},
      {"get", "/v1/leases"},
      {"get", "/v1/leases/{id}"},
      {"get", "/v1/leases/{id}/usage"},
      {"post", "/v1/leases/{id}/task"},
      {"get", "/v1/leases/{id}/task"},
      {"post", "/v1/leases/{id}/release"},
      {"post", "/v1/leases/{id}/reclaim"},
      {"post", "/v1/jobs"},
      {"get", "/v1/jobs"},
      {"get", "/v1/jobs/{id}"},
      {"delete", "/v1/jobs/{id}"},
      {"post", "/v1/blobs"},
      {"put", "/v1/blobs/{sha256}"},
      {"get", "/v1/blobs/{sha256}"},
      {"get", "/v1/stream"},
      {"get", "/v1/agent"},
  };
  return routes;
}

class ApiOperationsTest : public ExchangeTest {};

TEST_F(ApiOperationsTest, OpenApiListsExactlyTheRouteTable) {
  ApiClient anonymous(server_->url());
  Reply reply = anonymous.Call("GET", "/openapi.json");
  ASSERT_EQ(reply.status, 200) << reply;
  ASSERT_TRUE(reply.body.is_object()) << "not JSON: " << reply;
  EXPECT_TRUE(reply.body["openapi"].is_string());
  EXPECT_TRUE(reply.body["openapi"].get<std::string>().starts_with("3.0")) << reply.body["openapi"];
  EXPECT_TRUE(reply.body["info"].is_object());
  ASSERT_TRUE(reply.body["paths"].is_object());
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, operations] : reply.body["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) {
      documented.insert({method, path});
      EXPECT_TRUE(operation.contains("responses")) << method << " " << path;
      EXPECT_TRUE(operation.contains("operationId")) << method << " " << path;
    }
  }
  for (const auto& route : RouteTable()) {
    EXPECT_TRUE(documented.contains(route)) << "missing: " << route.first << " " << route.second;
  }
  for (const auto& route : documented) {
    EXPECT_TRUE(RouteTable().contains(route)) << "extra: " << route.first << " " << route.second;
  }
}

TEST_F(ApiOperationsTest, EveryRouteOfTheTableIsServed) {
  // No route of the table answers "no such route" (404 not_found) or 405.
  ApiClient client(server_->url(), server_->operator_token());
  for (const auto& [method, pattern] : RouteTable()) {
    std::string path = pattern;
    for (const auto& [name, value] : {std::pair<std::string, std::string>{"{id}", "1"},
                                      {"{market}", "cpu"},
                                      {"{sha256}", std::string(64, '0')}}) {
      if (const size_t at = path.find(name); at != std::string::npos) {
        path.replace(at, name.size(), value);
      }
    }
    std::string upper = method;
    for (char& c : upper) c = static_cast<char>(std::toupper(c));
    Reply reply =
        client.Call(upper, path, method == "get" || method == "delete" ? Json() : Json::object());
    SCOPED_TRACE(upper + " " + path);
    EXPECT_NE(reply.status, 405) << reply;
    EXPECT_FALSE(reply.status == 404 && reply.ErrorCode() == "not_found") << reply;
    EXPECT_NE(reply.status, 0) << reply;
  }
}

TEST_F(ApiOperationsTest, MetricsCountRequestsAndJournalSyncs) {
  // A mutating call makes the journal sync at least once.
  op_->Expect(201, "POST", "/v1/accounts", Json{{"name", "metrics-probe"}});
  ApiClient anonymous(server_->url());
  Reply reply = anonymous.Call("GET", "/metrics");
  ASSERT_EQ(reply.status, 200) << reply;
  EXPECT_NE(reply.Header("content-type").find("text/plain"), std::string::npos);
  const std::string& text = reply.raw;
  EXPECT_NE(text.find("# TYPE ocx_http_requests_total counter"), std::string::npos) << text;
  EXPECT_NE(
      text.find("ocx_http_requests_total{method=\"POST\",route=\"/v1/accounts\",status=\"2xx\"} 1"),
      std::string::npos)
      << text.substr(0, 3000);
  EXPECT_NE(text.find("ocx_journal_sync_seconds_bucket"), std::string::npos);
  EXPECT_NE(text.find("ocx_journal_sync_seconds_count"), std::string::npos);
  // The count of journal syncs is positive.
  const size_t at = text.find("\nocx_journal_sync_seconds_count");
  ASSERT_NE(at, std::string::npos);
  const size_t space = text.find(' ', at + 1);
  EXPECT_GT(std::strtoll(text.c_str() + space + 1, nullptr, 10), 0) << text.substr(at, 80);
}

TEST_F(ApiOperationsTest, HealthzIsOkWithTheDurableSequence) {
  ApiClient anonymous(server_->url());
  Json health = anonymous.Expect(200, "GET", "/healthz");
  EXPECT_EQ(health["status"], "ok");
  const uint64_t sequence = health["sequence"].get<uint64_t>();
  EXPECT_GT(sequence, 0u);  // The operator's account was created.
  op_->Expect(201, "POST", "/v1/accounts", Json{{"name", "health-probe"}});
  EXPECT_GT(anonymous.Expect(200, "GET", "/healthz")["sequence"].get<uint64_t>(), sequence);
}

TEST_F(ApiOperationsTest, OperatorTokenFileIsPrivate) {
  struct stat info {};
  ASSERT_EQ(::stat((server_->data_dir() + "/operator.token").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
}

}  // namespace
}  // namespace ocx::api_test
