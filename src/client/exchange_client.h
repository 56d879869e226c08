// ExchangeClient: the JSON layer over HttpClient for the exchange's API (docs/api.md). It
// sends JSON, parses JSON answers and turns the exchange's refusals,
// {"error":{"code","message"}}, into absl::Status values that keep the HTTP status and the
// stable error code (GetApiError), so callers can branch on `code` rather than on text.
//
// Deliberately thin: typed helpers for particular endpoints belong to their callers (CLI,
// agent, tests, benchmark) until several share them.
//
// Ownership: owns its HttpClient. Thread-safety: none, like HttpClient; one per thread.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/client/http_client.h"

namespace ocx::client {

// A refusal by the exchange (or by something in front of it).
struct ApiError {
  int http_status = 0;
  std::string code;     // Stable snake_case code, e.g. "insufficient_funds".
  std::string message;  // The server's sentence.
};

// Parses an error body. When it is not the exchange's error JSON (a proxy's HTML page, an
// empty body), the code is "http_<status>" and the message the start of the body.
ApiError ParseApiError(int http_status, std::string_view body);

// The Status for a refusal: code from StatusCodeForHttpStatus, message
// "<code>: <message> (HTTP <status>)", and the ApiError attached as a payload.
absl::Status ApiErrorToStatus(const ApiError& error);

// The ApiError attached by ApiErrorToStatus; nullopt for any other Status (transport
// errors, OK).
std::optional<ApiError> GetApiError(const absl::Status& status);

class ExchangeClient {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  explicit ExchangeClient(std::unique_ptr<HttpClient> http);
  // ParseUrl + HttpClient::Connect.
  static absl::StatusOr<std::unique_ptr<ExchangeClient>> Connect(std::string_view url,
                                                                 HttpClientOptions options = {});

  // Sends `body` (if not null) as JSON and returns the parsed answer (null for an empty
  // body). The answer's HTTP status must be one of `expected_statuses` (any 2xx when the
  // list is empty). A non-2xx answer becomes ApiErrorToStatus; an unexpected 2xx, or an
  // expected answer that is not JSON, is Internal (the server broke the contract).
  // Transport errors pass through from HttpClient.
  absl::StatusOr<nlohmann::json> Call(std::string_view method, std::string_view target,
                                      const nlohmann::json* body = nullptr,
                                      std::initializer_list<int> expected_statuses = {},
                                      const Headers& extra_headers = {});

  HttpClient& http() { return *http_; }

 private:
  std::unique_ptr<HttpClient> http_;
};

}  // namespace ocx::client
