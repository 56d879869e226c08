#include "src/client/exchange_client.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "src/client/fake_servers.h"

namespace ocx::client {
namespace {

// Answers /status/<code> with that HTTP status and the exchange's error body, and a few
// canned targets with other answers.
FakeResponse Canned(const FakeRequest& request) {
  const std::string& target = request.target;
  if (target.rfind("/status/", 0) == 0) {
    const int status = std::stoi(target.substr(8));
    return FakeResponse{status,
                        R"({"error":{"code":"code_)" + std::to_string(status) +
                            R"(","message":"Refused for a reason."}})",
                        {{"Content-Type", "application/json"}}};
  }
  if (target == "/html") return FakeResponse{502, "<html>Bad Gateway</html>", {}};
  if (target == "/created") return FakeResponse{201, R"({"order":{"id":7}})", {}};
  if (target == "/empty") return FakeResponse{204, "", {}};
  if (target == "/not-json") return FakeResponse{200, "hello", {}};
  if (target == "/echo") return FakeResponse{200, request.body, {}};
  return FakeResponse{404, R"({"error":{"code":"not_found","message":"No such route."}})", {}};
}

class ExchangeClientTest : public ::testing::Test {
 protected:
  ExchangeClientTest() : server_(Canned) {
    HttpClientOptions options;
    options.timeout_ms = 10'000;
    options.bearer_token = "ocx_token";
    absl::StatusOr<std::unique_ptr<ExchangeClient>> client =
        ExchangeClient::Connect(server_.url(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (client.ok()) client_ = std::move(*client);
  }

  FakeHttpServer server_;
  std::unique_ptr<ExchangeClient> client_;
};

TEST_F(ExchangeClientTest, ExpectedStatusReturnsParsedJson) {
  ASSERT_NE(client_, nullptr);
  absl::StatusOr<nlohmann::json> answer = client_->Call("POST", "/created", nullptr, {201});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ((*answer)["order"]["id"], 7);
}

TEST_F(ExchangeClientTest, BodyIsSentAsJsonWithHeaders) {
  ASSERT_NE(client_, nullptr);
  const nlohmann::json body = {{"market", "cpu"}, {"price", "0.05"}, {"quantity", 4}};
  absl::StatusOr<nlohmann::json> answer =
      client_->Call("POST", "/echo", &body, {}, {{"Idempotency-Key", "k-1"}});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, body);
  const std::vector<FakeRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.at("content-type"), "application/json");
  EXPECT_EQ(requests[0].headers.at("idempotency-key"), "k-1");
  EXPECT_EQ(requests[0].headers.at("authorization"), "Bearer ocx_token");
}

TEST_F(ExchangeClientTest, EmptyAnswerIsNull) {
  ASSERT_NE(client_, nullptr);
  absl::StatusOr<nlohmann::json> answer = client_->Call("DELETE", "/empty");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(answer->is_null());
}

TEST_F(ExchangeClientTest, ApiErrorsMapToStatusCodesAndKeepTheirDetails) {
  ASSERT_NE(client_, nullptr);
  const std::pair<int, absl::StatusCode> cases[] = {
      {400, absl::StatusCode::kInvalidArgument},   {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},  {404, absl::StatusCode::kNotFound},
      {409, absl::StatusCode::kAlreadyExists},     {422, absl::StatusCode::kFailedPrecondition},
      {429, absl::StatusCode::kResourceExhausted}, {500, absl::StatusCode::kUnavailable},
      {503, absl::StatusCode::kUnavailable},
  };
  for (const auto& [http_status, code] : cases) {
    SCOPED_TRACE(http_status);
    absl::StatusOr<nlohmann::json> answer =
        client_->Call("GET", "/status/" + std::to_string(http_status));
    ASSERT_FALSE(answer.ok());
    EXPECT_EQ(answer.status().code(), code) << answer.status();
    const std::string expected_code = "code_" + std::to_string(http_status);
    EXPECT_EQ(answer.status().message().substr(0, expected_code.size()), expected_code)
        << answer.status();
    std::optional<ApiError> error = GetApiError(answer.status());
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->http_status, http_status);
    EXPECT_EQ(error->code, expected_code);
    EXPECT_EQ(error->message, "Refused for a reason.");
  }
}

TEST_F(ExchangeClientTest, NonJsonErrorBodyGetsHttpStatusCode) {
  ASSERT_NE(client_, nullptr);
  absl::StatusOr<nlohmann::json> answer = client_->Call("GET", "/html");
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kUnavailable);
  std::optional<ApiError> error = GetApiError(answer.status());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->http_status, 502);
  EXPECT_EQ(error->code, "http_502");
  EXPECT_EQ(error->message, "<html>Bad Gateway</html>");
}

TEST_F(ExchangeClientTest, UnexpectedSuccessStatusIsInternal) {
  ASSERT_NE(client_, nullptr);
  absl::StatusOr<nlohmann::json> answer = client_->Call("POST", "/created", nullptr, {200});
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kInternal) << answer.status();
  EXPECT_FALSE(GetApiError(answer.status()).has_value());
}

TEST_F(ExchangeClientTest, AnswerThatIsNotJsonIsInternal) {
  ASSERT_NE(client_, nullptr);
  absl::StatusOr<nlohmann::json> answer = client_->Call("GET", "/not-json");
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kInternal) << answer.status();
}

TEST(ExchangeClientStandaloneTest, ConnectRefusesBadUrl) {
  absl::StatusOr<std::unique_ptr<ExchangeClient>> client = ExchangeClient::Connect("nope");
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExchangeClientStandaloneTest, GetApiErrorIsEmptyForOtherStatuses) {
  EXPECT_FALSE(GetApiError(absl::OkStatus()).has_value());
  EXPECT_FALSE(GetApiError(absl::UnavailableError("connection refused")).has_value());
}

TEST(ExchangeClientStandaloneTest, ParseApiErrorToleratesOddBodies) {
  EXPECT_EQ(ParseApiError(400, "").code, "http_400");
  EXPECT_EQ(ParseApiError(400, R"({"error":"flat"})").code, "http_400");
  EXPECT_EQ(ParseApiError(400, R"({"error":{"code":5}})").code, "http_400");
  ApiError no_message = ParseApiError(409, R"({"error":{"code":"name_taken"}})");
  EXPECT_EQ(no_message.code, "name_taken");
  EXPECT_EQ(no_message.message, "");
  EXPECT_EQ(ParseApiError(500, std::string(1000, 'x')).message.size(), 200u);
}

}  // namespace
}  // namespace ocx::client
