#include "src/api/errors.h"

#include "spdlog/spdlog.h"
#include "src/protocol/identity.h"

namespace ocx::api {

HttpResponse JsonResponse(int status, const Json& body) {
  HttpResponse response;
  response.status = status;
  response.body = base::DumpJson(body);
  return response;
}

Json RefusalJson(Refusal refusal, std::string_view message) {
  return Json{{"code", protocol::Code(refusal)},
              {"message", message.empty() ? protocol::Sentence(refusal) : message}};
}

HttpResponse Refuse(Refusal refusal, std::string_view message) {
  return JsonResponse(protocol::HttpStatus(refusal), Json{{"error", RefusalJson(refusal, message)}});
}

HttpResponse Refuse(Refusal refusal, std::string_view message, const Json& details) {
  Json error = RefusalJson(refusal, message);
  for (const auto& [key, value] : details.items()) error[key] = value;
  return JsonResponse(protocol::HttpStatus(refusal), Json{{"error", error}});
}

HttpResponse Refuse(const core::CommandResult& result) {
  return Refuse(result.refusal, result.message);
}

HttpResponse StoreError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return Refuse(Refusal::kNotFound, std::string(status.message()));
    case absl::StatusCode::kInvalidArgument:
      return Refuse(Refusal::kBadRequest, std::string(status.message()));
    case absl::StatusCode::kResourceExhausted:
      return Refuse(Refusal::kTooLarge, std::string(status.message()));
    default:
      return Refuse(Refusal::kUnavailable, "The query store is not available.");
  }
}

std::string LogIncident(std::string_view what) {
  const std::string id = protocol::RandomHex(8);
  spdlog::error("incident {}: {}", id, what);
  return id;
}

HttpResponse InternalError(std::string_view what) {
  const std::string id = LogIncident(what);
  return Refuse(Refusal::kInternalError,
                "The exchange failed to answer this request (incident " + id + ").",
                Json{{"incident", id}});
}

}  // namespace ocx::api
