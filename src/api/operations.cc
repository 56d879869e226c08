// Operations: liveness, Prometheus metrics and the OpenAPI document (public).
#include "src/api/api.h"

namespace ocx::api {
namespace {

void Healthz(Api& api, const CallPtr& call) {
  const absl::Status status = api.deps().gateway->status();
  if (!status.ok()) {
    return call->Respond(Refuse(Refusal::kUnavailable, "The sequencer stopped."));
  }
  call->Respond(JsonResponse(200, Json{{"status", "ok"},
                                       {"sequence", api.deps().gateway->durable_sequence()},
                                       {"projected", api.deps().store->last_projected_sequence()}}));
}

void Metrics(Api& api, const CallPtr& call) {
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = api.deps().metrics->RenderPrometheus();
  call->Respond(std::move(response));
}

void OpenApi(Api&, const CallPtr& call) {
  static const std::string document = Api::OpenApiJson();
  HttpResponse response;
  response.body = document;
  call->Respond(std::move(response));
}

}  // namespace

void AddOperationRoutes(std::vector<Route>* routes) {
  routes->insert(routes->end(),
                 {
                     {"GET", "/healthz", "Liveness and the last durable sequence", Auth::kNone,
                      200, Body::kNone, false, &Healthz},
                     {"GET", "/metrics", "Prometheus metrics", Auth::kNone, 200, Body::kNone,
                      false, &Metrics},
                     {"GET", "/openapi.json", "This API's OpenAPI 3.0 description", Auth::kNone,
                      200, Body::kNone, false, &OpenApi},
                 });
}

}  // namespace ocx::api
