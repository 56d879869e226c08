#include "src/client/exchange_client.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_join.h"
#include "src/base/json.h"
#include "src/base/status.h"
#include "src/client/json_fields.h"
#include "src/client/strings_internal.h"
#include "src/client/url.h"

namespace ocx::client {
namespace {

// Status payload key under which ApiErrorToStatus stores the ApiError (as JSON).
constexpr char kApiErrorPayloadUrl[] = "type.ocx.dev/ocx.client.ApiError";
// How much of a non-JSON error body is kept in the message.
constexpr size_t kErrorBodyExcerptBytes = 200;

// Invalid UTF-8 in a string is replaced rather than thrown on (our code throws nothing).
std::string Dump(const nlohmann::json& value) { return base::DumpJson(value); }

}  // namespace

ApiError ParseApiError(int http_status, std::string_view body) {
  ApiError error;
  error.http_status = http_status;
  const std::optional<nlohmann::json> parsed = ParseExchangeJson(body);
  const nlohmann::json* refusal = parsed ? ObjectField(*parsed, "error") : nullptr;
  if (std::optional<std::string> code = refusal ? StringField(*refusal, "code") : std::nullopt) {
    error.code = std::move(*code);
    error.message = StringField(*refusal, "message").value_or("");
    return error;
  }
  error.code = internal::Cat("http_", http_status);
  error.message = std::string(body.substr(0, kErrorBodyExcerptBytes));
  return error;
}

absl::Status ApiErrorToStatus(const ApiError& error) {
  absl::Status status(
      StatusCodeForHttpStatus(error.http_status),
      internal::Cat(error.code, ": ", error.message, " (HTTP ", error.http_status, ")"));
  const nlohmann::json payload = {
      {"http_status", error.http_status}, {"code", error.code}, {"message", error.message}};
  status.SetPayload(kApiErrorPayloadUrl, absl::Cord(Dump(payload)));
  return status;
}

std::optional<ApiError> GetApiError(const absl::Status& status) {
  auto payload = status.GetPayload(kApiErrorPayloadUrl);  // absl::optional here.
  if (!payload) return std::nullopt;
  const std::optional<nlohmann::json> parsed = ParseExchangeJson(std::string(*payload));
  if (!parsed || !parsed->is_object()) return std::nullopt;
  ApiError error;
  error.http_status = static_cast<int>(Int64Field(*parsed, "http_status").value_or(0));
  error.code = StringField(*parsed, "code").value_or("");
  error.message = StringField(*parsed, "message").value_or("");
  return error;
}

ExchangeClient::ExchangeClient(std::unique_ptr<HttpClient> http) : http_(std::move(http)) {}

absl::StatusOr<std::unique_ptr<ExchangeClient>> ExchangeClient::Connect(std::string_view url,
                                                                        HttpClientOptions options) {
  OCX_ASSIGN_OR_RETURN(Endpoint endpoint, ParseUrl(url));
  OCX_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> http,
                       HttpClient::Connect(endpoint, std::move(options)));
  return std::make_unique<ExchangeClient>(std::move(http));
}

absl::StatusOr<nlohmann::json> ExchangeClient::Call(std::string_view method,
                                                    std::string_view target,
                                                    const nlohmann::json* body,
                                                    std::initializer_list<int> expected_statuses,
                                                    const Headers& extra_headers) {
  const std::string payload = body != nullptr ? Dump(*body) : std::string();
  OCX_ASSIGN_OR_RETURN(HttpResponse response,
                       http_->Request(method, target, payload, extra_headers));
  const bool success = response.status >= 200 && response.status < 300;
  const bool expected = expected_statuses.size() == 0
                            ? success
                            : std::find(expected_statuses.begin(), expected_statuses.end(),
                                        response.status) != expected_statuses.end();
  if (!expected) {
    if (!success) return ApiErrorToStatus(ParseApiError(response.status, response.body));
    return absl::InternalError(internal::Cat(method, " ", target, ": unexpected HTTP ",
                                             response.status, " (expected ",
                                             absl::StrJoin(expected_statuses, " or "), ")"));
  }
  if (response.body.empty()) return nlohmann::json(nullptr);
  // Strictly: the answer comes from outside this process (json_fields.h).
  std::optional<nlohmann::json> parsed = ParseExchangeJson(response.body);
  if (!parsed) {
    return absl::InternalError(
        internal::Cat(method, " ", target, ": HTTP ", response.status,
                      " answer is not JSON: ", response.body.substr(0, kErrorBodyExcerptBytes)));
  }
  return std::move(*parsed);
}

}  // namespace ocx::client
