// /openapi.json, generated from the same route table Handle dispatches on, so that it
// lists every endpoint as implemented and nothing else.
#include "src/api/api.h"

namespace ocx::api {
namespace {


Json Ref(const char* name) { return Json{{"$ref", std::string("#/components/schemas/") + name}}; }

Json Schemas() {
  const Json money{{"type", "string"},
                   {"pattern", "^-?[0-9]+(\\.[0-9]{1,6})?$"},
                   {"description", "Credits as a decimal string (never a JSON number)."}};
  return Json{
      {"Money", money},
      {"Error",
       {{"type", "object"},
        {"required", {"error"}},
        {"properties",
         {{"error",
           {{"type", "object"},
            {"required", {"code", "message"}},
            {"properties",
             {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}}},
      {"NewAccount",
       {{"type", "object"},
        {"required", {"name"}},
        {"additionalProperties", false},
        {"properties",
         {{"name", {{"type", "string"}, {"maxLength", 64}}},
          {"role", {{"type", "string"}, {"enum", {"consumer", "provider", "operator"}}}}}}}},
      {"Amount",
       {{"type", "object"},
        {"required", {"amount"}},
        {"additionalProperties", false},
        {"properties",
         {{"amount", Ref("Money")},
          {"from", {{"type", "string"}, {"enum", {"available", "earnings"}}}}}}}},
      {"NewOrder",
       {{"type", "object"},
        {"required", {"market", "side", "quantity"}},
        {"additionalProperties", false},
        {"properties",
         {{"market", {{"type", "string"}}},
          {"side", {{"type", "string"}, {"enum", {"buy", "sell"}}}},
          {"type", {{"type", "string"}, {"enum", {"limit", "market"}}}},
          {"tif", {{"type", "string"}, {"enum", {"gtc", "ioc", "fok", "gtd"}}}},
          {"price", Ref("Money")},
          {"quantity", {{"type", "integer"}, {"minimum", 1}}},
          {"lot", {{"type", "integer"}, {"minimum", 1}}},
          {"max_hours", {{"type", "integer"}, {"minimum", 1}}},
          {"expiry", {{"type", "integer"}, {"description", "Microseconds since the epoch (gtd)."}}},
          {"machine", {{"type", "integer"}, {"description", "Sells: the machine backing it."}}}}}}},
      {"Replace",
       {{"type", "object"},
        {"additionalProperties", false},
        {"properties",
         {{"price", Ref("Money")}, {"quantity", {{"type", "integer"}, {"minimum", 0}}}}}}},
      {"NewMachine",
       {{"type", "object"},
        {"required", {"name", "public_key", "capacity"}},
        {"additionalProperties", false},
        {"properties",
         {{"name", {{"type", "string"}, {"maxLength", 64}}},
          {"public_key", {{"type", "string"}, {"pattern", "^[0-9a-f]{64}$"}}},
          {"attributes",
           {{"type", "object"},
            {"additionalProperties", {{"oneOf", {{{"type", "string"}}, {{"type", "number"}}}}}}}},
          {"capacity", {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}}}}}}},
  };
}

Json RequestBodyFor(const Route& route) {
  const std::string key = route.method + " " + route.pattern;
  const char* schema = nullptr;
  if (key == "POST /v1/accounts") schema = "NewAccount";
  if (key == "POST /v1/accounts/{id}/deposits" || key == "POST /v1/accounts/{id}/withdrawals") {
    schema = "Amount";
  }
  if (key == "POST /v1/orders") schema = "NewOrder";
  if (key == "PATCH /v1/orders/{id}") schema = "Replace";
  if (key == "POST /v1/machines") schema = "NewMachine";
  if (schema != nullptr) {
    return Json{{"required", true}, {"content", {{"application/json", {{"schema", Ref(schema)}}}}}};
  }
  if (route.body == Body::kBlob) {
    return Json{
        {"required", true},
        {"content",
         {{"application/octet-stream", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}};
  }
  return Json();
}

bool IsList(const Route& route) {
  static const std::vector<std::string> lists = {"/v1/accounts",
                                                 "/v1/accounts/{id}/ledger",
                                                 "/v1/markets/{market}/trades",
                                                 "/v1/orders",
                                                 "/v1/machines",
                                                 "/v1/leases",
                                                 "/v1/leases/{id}/usage"};
  return route.method == "GET" &&
         std::find(lists.begin(), lists.end(), route.pattern) != lists.end();
}

}  // namespace

std::string Api::OpenApiJson() {
  Json paths = Json::object();
  for (const Route& route : Routes()) {
    Json operation{{"summary", route.summary}};
    std::string operation_id;
    for (char c : route.method + route.pattern) {
      operation_id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    }
    operation["operationId"] = operation_id;
    Json parameters = Json::array();
    for (size_t open = route.pattern.find('{'); open != std::string::npos;
         open = route.pattern.find('{', open + 1)) {
      const size_t close = route.pattern.find('}', open);
      parameters.push_back({{"name", route.pattern.substr(open + 1, close - open - 1)},
                            {"in", "path"},
                            {"required", true},
                            {"schema", {{"type", "string"}}}});
    }
    if (IsList(route)) {
      parameters.push_back({{"name", "after"}, {"in", "query"}, {"schema", {{"type", "integer"}}}});
      parameters.push_back({{"name", "limit"},
                            {"in", "query"},
                            {"schema", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}}});
    }
    if (route.pattern == "/v1/orders" && route.method == "POST") {
      parameters.push_back({{"name", "Idempotency-Key"},
                            {"in", "header"},
                            {"schema", {{"type", "string"}, {"maxLength", 64}}}});
    }
    if (!parameters.empty()) operation["parameters"] = parameters;
    if (const Json body = RequestBodyFor(route); !body.is_null()) operation["requestBody"] = body;
    if (route.auth == Auth::kAccount || route.auth == Auth::kOperator) {
      operation["security"] = Json::array({{{"bearer", Json::array()}}});
    }
    Json error{{"description", "A refusal: docs/api.md lists the codes."},
               {"content", {{"application/json", {{"schema", Ref("Error")}}}}}};
    Json responses = Json::object();
    if (route.websocket) {
      responses[std::to_string(route.success_status)] = {
          {"description", "Switching to the WebSocket protocol (docs/api.md)."}};
      responses["426"] = error;
    } else {
      responses[std::to_string(route.success_status)] = {{"description", "Success."}};
      for (const char* status : {"400", "401", "403", "404", "413", "422", "429", "500", "503"}) {
        responses[status] = error;
      }
    }
    operation["responses"] = responses;
    std::string method = route.method;
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    paths[route.pattern][method] = operation;
  }
  Json document{
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "ocx exchange API"},
        {"version", "1"},
        {"description",
         "The Open Compute Exchange's HTTP API. Money is decimal strings; "
         "docs/api.md describes conventions, errors and WebSocket messages."}}},
      {"paths", paths},
      {"components",
       {{"schemas", Schemas()},
        {"securitySchemes",
         {{"bearer",
           {{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "ocx_<64 hex>"}}}}}}}};
  return document.dump(2, ' ', false, Json::error_handler_t::replace);
}

}  // namespace ocx::api
