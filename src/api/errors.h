// The API's answers: JSON bodies written so that they never throw, and every refusal as
// {"error":{"code","message"}} with the status of the refusal table (src/protocol/refusal.h).
// Thread-safe: free functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "src/api/http_types.h"
#include "src/base/json.h"
#include "src/core/events.h"
#include "src/protocol/refusal.h"

namespace ocx::api {

using Json = base::Json;
using protocol::Refusal;

// `body` with this status (invalid UTF-8 in it is replaced, never thrown on).
HttpResponse JsonResponse(int status, const Json& body);
// The refusal with its table status and code; `message` replaces the table's sentence when
// not empty.
HttpResponse Refuse(Refusal refusal, std::string_view message = {});
// The refusal with extra fields in its "error" object (a query's column, say).
HttpResponse Refuse(Refusal refusal, std::string_view message, const Json& details);
// A failed query-store read: 404 not_found, 400 bad_request, 413 too_large, or 503.
HttpResponse StoreError(const absl::Status& status);
// A core refusal as the core worded it.
HttpResponse Refuse(const core::CommandResult& result);
// The JSON of a refusal: {"code","message"} (+ details), for WebSocket error messages.
Json RefusalJson(Refusal refusal, std::string_view message = {});

// Something failed that should not have (an exception from a library, a broken invariant of
// a reply): logs `what` with a fresh incident id and answers 500 internal_error naming it,
// so that the operator can find the log line. Never says more than the id to the client.
HttpResponse InternalError(std::string_view what);
// Logs `what` with a fresh incident id and returns the id.
std::string LogIncident(std::string_view what);

}  // namespace ocx::api
