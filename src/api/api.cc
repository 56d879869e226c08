#include "src/api/api.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <shared_mutex>

#include "src/agent/task_spec.h"
#include "src/api/offers.h"
#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/base/files.h"
#include "src/base/json_string.h"
#include "src/core/exchange.h"
#include "src/query/query.h"

namespace ocx::api {
namespace {

using Json = nlohmann::json;

constexpr size_t kDefaultPageLimit = 100;
constexpr size_t kBookDepthDefault = 50;
constexpr size_t kBookDepthMax = 1000;
constexpr size_t kIdempotencyKeyMax = 64;
constexpr size_t kConstraintsBytesMax = 4096;
constexpr size_t kWorkerThreads = 2;
constexpr size_t kWorkerQueueMax = 4096;

std::string Money(int64_t micros) { return base::FormatMicros(micros); }

std::string_view SideName(engine::Side side) { return side == engine::Side::kBuy ? "buy" : "sell"; }

bool ParseUint(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

// Reads a JSON object's fields with types checked; remembers the first problem and refuses
// fields it was not asked about.
class Fields {
 public:
  explicit Fields(const Json& object) : object_(object) {}

  bool Has(const char* key) { return Find(key) != nullptr; }
  std::string Str(const char* key, bool required, size_t max_length = 256) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (required) Missing(key);
      return {};
    }
    if (!v->is_string()) return Invalid(key, "a string"), std::string();
    const std::string& s = v->get_ref<const std::string&>();
    if (s.size() > max_length) return Invalid(key, "a shorter string"), std::string();
    return s;
  }
  int64_t Int(const char* key, bool required, int64_t fallback, int64_t min, int64_t max) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (required) Missing(key);
      return fallback;
    }
    if (!v->is_number_integer()) return Invalid(key, "an integer"), fallback;
    const int64_t value =
        v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX ? max + 1 : v->get<int64_t>();
    if (value < min || value > max) {
      Invalid(key,
              ("an integer from " + std::to_string(min) + " to " + std::to_string(max)).c_str());
      return fallback;
    }
    return value;
  }
  // A decimal string of credits ("1.25"): never a JSON number (it would pass through double).
  int64_t Money(const char* key, bool required) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (required) Missing(key);
      return 0;
    }
    if (!v->is_string()) {
      return Invalid(key, "a decimal string such as \"1.25\" (money is never a JSON number)"), 0;
    }
    const base::ParsedMicros parsed = base::ParseMicros(v->get_ref<const std::string&>());
    if (!parsed.ok()) return Invalid(key, "a decimal with at most 6 fractional digits"), 0;
    return parsed.micros;
  }
  const Json* Object(const char* key, bool required) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (required) Missing(key);
      return nullptr;
    }
    if (!v->is_object()) return Invalid(key, "an object"), nullptr;
    return v;
  }
  // OK when every field was asked for and valid.
  bool Finish() {
    if (!error_code_.empty()) return false;
    for (const auto& [key, value] : object_.items()) {
      if (std::find(seen_.begin(), seen_.end(), key) == seen_.end()) {
        error_code_ = "unknown_field";
        error_message_ = "The field '" + key + "' is not part of this request.";
        return false;
      }
    }
    return true;
  }
  HttpResponse Error() const { return ErrorResponse(400, error_code_, error_message_); }

 private:
  // The field's value, or nullptr when it is absent or null; the key counts as known to
  // Finish either way. One lookup per field (each request's body is read through here).
  const Json* Find(const char* key) {
    seen_.emplace_back(key);
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  void Missing(const char* key) {
    if (!error_code_.empty()) return;
    error_code_ = "missing_field";
    error_message_ = std::string("The field '") + key + "' is required.";
  }
  void Invalid(const char* key, const char* what) {
    if (!error_code_.empty()) return;
    error_code_ = "invalid_field";
    error_message_ = std::string("The field '") + key + "' must be " + what + ".";
  }

  const Json& object_;
  std::vector<std::string_view> seen_;  // Keys asked for (string literals of the callers).
  std::string error_code_;
  std::string error_message_;
};

Json AccountJson(const store::AccountRow& a) {
  return Json{{"id", a.id},
              {"name", a.name},
              {"role", core::RoleName(a.role)},
              {"created_time", a.created_time}};
}

Json BalanceRefJson(const core::BalanceRef& ref) {
  return Json{{"account", ref.owner}, {"balance", core::BalanceKindName(ref.kind)}};
}

Json LedgerJson(const store::LedgerEntryRow& e) {
  return Json{{"entry", e.entry},
              {"sequence", e.sequence},
              {"time", e.time},
              {"from", BalanceRefJson(e.from)},
              {"to", BalanceRefJson(e.to)},
              {"amount", Money(e.amount)},
              {"kind", core::TransferKindName(e.kind)},
              {"reference", e.reference}};
}

Json TradeJson(const store::TradeRow& t) {
  return Json{{"id", t.id},
              {"sequence", t.sequence},
              {"time", t.time},
              {"market", t.market},
              {"price", Money(t.price)},
              {"quantity", t.quantity},
              {"taker_side", SideName(t.taker_side)},
              {"taker_order", t.taker_order},
              {"maker_order", t.maker_order},
              {"buyer", t.buyer},
              {"seller", t.seller},
              {"machine", t.machine},
              {"lease", t.lease}};
}

Json OrderJson(const store::OrderRow& o) {
  Json j{{"id", o.id},
         {"market", o.market},
         {"side", SideName(o.side)},
         {"account", o.account},
         {"quantity", o.quantity},
         {"remaining", o.remaining},
         {"filled", o.filled},
         {"status", store::OrderStatusName(o.status)},
         {"created_time", o.created_time},
         {"updated_time", o.updated_time}};
  j["price"] = o.price > 0 ? Json(Money(o.price)) : Json(nullptr);
  if (!o.cancel_reason.empty()) j["cancel_reason"] = o.cancel_reason;
  return j;
}

Json LeaseJson(const store::LeaseRow& l) {
  Json j{{"id", l.id},
         {"buyer", l.buyer},
         {"seller", l.seller},
         {"machine", l.machine},
         {"market", l.market},
         {"slots", l.slots},
         {"price", Money(l.price)},
         {"max_hours", l.max_hours},
         {"start", l.start},
         {"escrow", Money(l.escrow)},
         {"buy_order", l.buy_order},
         {"sell_order", l.sell_order},
         {"billed_total", Money(l.billed_total)},
         {"billed_seconds", l.billed_seconds},
         {"reported_wall_seconds", l.reported_wall_seconds},
         {"status", store::LeaseStatusName(l.status)}};
  if (l.end_reason) {
    j["end_reason"] = core::LeaseEndReasonName(*l.end_reason);
    j["end_time"] = l.end_time;
    j["refunded"] = Money(l.refunded);
  }
  return j;
}

Json UsageJson(const store::UsageRow& u) {
  return Json{{"lease", u.lease},
              {"sequence", u.sequence},
              {"time", u.time},
              {"wall_seconds", u.wall_seconds},
              {"cpu_seconds", u.cpu_seconds},
              {"gpu_seconds", u.gpu_seconds},
              {"peak_memory_mib", u.peak_memory_mib},
              {"billed_total", Money(u.billed_total)}};
}

Json AttributeJson(const core::AttributeValue& value) {
  if (!value.is_number) return value.text;
  if (value.number_micros % base::kMicrosPerUnit == 0) {
    return value.number_micros / base::kMicrosPerUnit;
  }
  // Exact decimal text, read back as a JSON number for people and scripts.
  return Json::parse(base::FormatMicros(value.number_micros));
}

Json MachineJson(const core::Exchange& x, const core::Machine& m) {
  Json attributes = Json::object();
  for (const auto& [key, value] : m.spec.attributes) attributes[key] = AttributeJson(value);
  Json capacity = Json::object();
  Json offered = Json::object();
  Json leased = Json::object();
  for (size_t i = 0; i < x.config().markets.size(); ++i) {
    const std::string& name = x.config().markets[i].name;
    if (m.capacity[i] == 0 && m.offered[i] == 0 && m.leased[i] == 0) continue;
    capacity[name] = m.capacity[i];
    offered[name] = m.offered[i];
    leased[name] = m.leased[i];
  }
  return Json{{"id", m.id},
              {"owner", m.owner},
              {"name", m.spec.name},
              {"online", m.online},
              {"last_heartbeat", m.last_heartbeat},
              {"public_key", m.spec.public_key},
              {"attributes", attributes},
              {"capacity", capacity},
              {"offered", offered},
              {"leased", leased},
              {"active_leases", m.leases.size()},
              {"leases_ended", m.leases_ended},
              {"leases_failed", m.leases_failed},
              {"reputation", Money(core::ReputationMicros(m))}};
}

template <typename Row, typename Key>
Json Page(const std::vector<Row>& rows, size_t limit, Key key,
          const std::function<Json(const Row&)>& to_json) {
  Json items = Json::array();
  for (const Row& row : rows) items.push_back(to_json(row));
  Json page{{"items", std::move(items)}};
  page["next_after"] =
      rows.size() == limit && !rows.empty() ? Json(key(rows.back())) : Json(nullptr);
  return page;
}

HttpResponse StatusError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return ErrorResponse(404, "not_found", std::string(status.message()));
    case absl::StatusCode::kInvalidArgument:
      return ErrorResponse(400, "bad_request", std::string(status.message()));
    case absl::StatusCode::kResourceExhausted:
      return ErrorResponse(413, "too_large", std::string(status.message()));
    default:
      return ErrorResponse(503, "unavailable", "The query store is not available.");
  }
}

}  // namespace

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = Json{{"error", {{"code", code}, {"message", message}}}}.dump();
  return response;
}

HttpResponse JsonResponse(int status, const Json& body) {
  HttpResponse response;
  response.status = status;
  response.body = body.dump();
  return response;
}

int StatusForReason(std::string_view code) {
  if (code == "not_authorized") return 403;
  if (code.starts_with("unknown_")) return 404;
  if (code == "name_taken" || code == "duplicate_client_order_id" || code == "duplicate_id" ||
      code == "task_already_assigned" || code == "job_order" ||
      code == "duplicate_client_job_id") {
    return 409;
  }
  if (code == "task_too_large") return 413;
  return 422;
}

struct Api::Call {
  HttpRequest request;
  Respond respond;
  std::vector<std::string> params;  // Path captures, in order.
  std::optional<AccountIdentity> caller;
  uint64_t durable_at_arrival = 0;
};

struct Api::RouteMetrics {
  Counter* by_class[6] = {};  // 1xx..5xx (index 1..5).
  Histogram* latency = nullptr;
};

namespace {

struct Route {
  RouteInfo info;
  Api::Handler handler;
};

const std::vector<Route>& RouteTable();

// Matches "/v1/orders/7" against "/v1/orders/{id}", collecting captures.
bool Match(std::string_view pattern, std::string_view path, std::vector<std::string>* params) {
  params->clear();
  while (true) {
    if (pattern.empty() || path.empty()) return pattern.empty() && path.empty();
    if (pattern[0] != '/' || path[0] != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const size_t pattern_end = std::min(pattern.find('/'), pattern.size());
    const size_t path_end = std::min(path.find('/'), path.size());
    const std::string_view segment = pattern.substr(0, pattern_end);
    const std::string_view actual = path.substr(0, path_end);
    if (segment.starts_with('{')) {
      if (actual.empty()) return false;
      params->emplace_back(actual);
    } else if (segment != actual) {
      return false;
    }
    pattern.remove_prefix(pattern_end);
    path.remove_prefix(path_end);
  }
}

}  // namespace

Api::Api(ApiDeps deps)
    : deps_(std::move(deps)),
      account_limiter_(deps_.config.rate_per_second, deps_.config.rate_burst, 1'000'000),
      ip_limiter_(deps_.config.signup_rate_per_second, deps_.config.signup_rate_burst, 100'000),
      workers_(kWorkerThreads, kWorkerQueueMax) {
  OCX_ASSERT(deps_.sequencer && deps_.store && deps_.blobs && deps_.identities &&
             deps_.market_data && deps_.metrics && deps_.clock && deps_.store_target_sequence);
  const auto& routes = RouteTable();
  // One entry per route, then "unmatched", then "dashboard" (the static files).
  for (size_t i = 0; i <= routes.size() + 1; ++i) {
    auto m = std::make_unique<RouteMetrics>();
    const std::string route = i < routes.size()    ? routes[i].info.pattern
                              : i == routes.size() ? "unmatched"
                                                   : "dashboard";
    const std::string method = i < routes.size() ? routes[i].info.method : "any";
    const std::string labels = "method=\"" + method + "\",route=\"" + route + "\"";
    for (int c = 1; c <= 5; ++c) {
      m->by_class[c] = &deps_.metrics->AddCounter(
          "ocx_http_requests_total", "HTTP requests answered, by route and status class.",
          labels + ",status=\"" + std::to_string(c) + "xx\"");
    }
    m->latency =
        &deps_.metrics->AddHistogram("ocx_http_request_duration_seconds",
                                     "Time from a request's arrival to its response, by route.",
                                     LatencyBucketsSeconds(), labels);
    route_metrics_.push_back(std::move(m));
  }
  deps_.sequencer->Read([this](const core::Exchange& x) {
    offers_ = std::make_unique<OfferIndex>(x.config());
  });
  orders_placed_ = &deps_.metrics->AddCounter("ocx_orders_placed_total",
                                              "Orders the exchange accepted over the API.");
  orders_refused_ = &deps_.metrics->AddCounter(
      "ocx_orders_refused_total", "Orders the exchange refused (a reason code was returned).");
}

Api::~Api() { workers_.Stop(); }

size_t Api::BodyLimitFor(std::string_view path) const {
  return path.starts_with("/v1/blobs") ? deps_.config.blob_bytes_max : deps_.config.body_bytes_max;
}

void Api::Handle(HttpRequest request, Respond respond) {
  const auto started = std::chrono::steady_clock::now();
  const auto& routes = RouteTable();
  size_t route_index = routes.size();
  bool path_matched = false;
  std::vector<std::string> params;
  for (size_t i = 0; i < routes.size(); ++i) {
    if (!Match(routes[i].info.pattern, request.path, &params)) continue;
    path_matched = true;
    if (routes[i].info.method == request.method ||
        (request.method == "HEAD" && routes[i].info.method == "GET")) {
      route_index = i;
      break;
    }
  }
  if (route_index == routes.size()) {
    // Captures of the last partial match are irrelevant now.
    params.clear();
    // Reads of paths outside the API are the dashboard's.
    if (!path_matched && (request.method == "GET" || request.method == "HEAD") &&
        !request.path.starts_with("/v1/")) {
      route_index = routes.size() + 1;
    }
  }
  RouteMetrics* metrics = route_metrics_[route_index].get();
  auto call = std::make_shared<Call>();
  call->params = std::move(params);
  call->durable_at_arrival = deps_.store_target_sequence->load(std::memory_order_acquire);
  call->respond = [metrics, started, respond = std::move(respond)](HttpResponse response) {
    const int status_class = std::clamp(response.status / 100, 1, 5);
    metrics->by_class[status_class]->Add();
    metrics->latency->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    respond(std::move(response));
  };
  call->request = std::move(request);

  if (route_index == routes.size() + 1) return ServeDashboard(call);
  if (route_index == routes.size()) {
    if (path_matched) {
      return call->respond(
          ErrorResponse(405, "method_not_allowed", "This resource does not support this method."));
    }
    return call->respond(ErrorResponse(404, "not_found", "No resource has this path."));
  }
  if (shutting_down_.load()) {
    return call->respond(ErrorResponse(503, "unavailable", "The exchange is shutting down."));
  }
  const Route& route = routes[route_index];
  const std::string& authorization = call->request.Header("authorization");
  if (!authorization.empty() && !Authenticate(call)) return;
  if (route.info.auth == "account" || route.info.auth == "operator") {
    if (!call->caller) {
      return call->respond(ErrorResponse(401, "unauthenticated",
                                         "This call needs an API token: Authorization: Bearer "
                                         "ocx_..."));
    }
    if (route.info.auth == "operator" && !RequireOperator(call)) return;
  }
  // Rate limits: per account when authenticated; per address for what anyone may call that
  // creates something (sign-up).
  const int64_t now = deps_.clock->NowMicros();
  int64_t wait_micros = 0;
  if (call->caller) {
    wait_micros = account_limiter_.Acquire(call->caller->id, now);
  } else if (call->request.method != "GET" && call->request.method != "HEAD") {
    wait_micros = ip_limiter_.Acquire(std::hash<std::string>{}(call->request.remote_address), now);
  }
  if (wait_micros > 0) {
    HttpResponse refused =
        ErrorResponse(429, "rate_limited", "Too many requests; retry after the given seconds.");
    refused.headers.emplace_back(
        "Retry-After", std::to_string(std::max<int64_t>(1, (wait_micros + 999'999) / 1'000'000)));
    return call->respond(std::move(refused));
  }
  (this->*route.handler)(call);
}

void Api::ServeDashboard(const CallPtr& call) {
  if (deps_.web == nullptr && call->request.path == "/") {
    return call->respond(ErrorResponse(404, "dashboard_not_built",
                                       "This exchange serves no dashboard: " +
                                           deps_.web_unavailable));
  }
  std::optional<HttpResponse> asset;
  if (deps_.web != nullptr) {
    asset = deps_.web->Serve(call->request.path, call->request.Header("if-none-match"));
  }
  if (!asset) return call->respond(ErrorResponse(404, "not_found", "No resource has this path."));
  call->respond(std::move(*asset));
}

bool Api::Authenticate(const CallPtr& call) {
  const std::string& authorization = call->request.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) {
    call->respond(ErrorResponse(401, "unauthenticated",
                                "The Authorization header must be 'Bearer <token>'."));
    return false;
  }
  call->caller =
      deps_.identities->FindByToken(std::string_view(authorization).substr(kBearer.size()));
  if (!call->caller) {
    call->respond(ErrorResponse(401, "unauthenticated", "The API token is not valid."));
    return false;
  }
  return true;
}

bool Api::RequireOperator(const CallPtr& call) {
  if (call->caller && call->caller->role == core::Role::kOperator) return true;
  call->respond(ErrorResponse(403, "forbidden", "Only an operator may do this."));
  return false;
}

bool Api::ParseBody(const CallPtr& call, Json* body) {
  const std::string& content_type = call->request.Header("content-type");
  if (!content_type.starts_with("application/json")) {
    call->respond(ErrorResponse(415, "unsupported_media_type",
                                "The body must be JSON (Content-Type: application/json)."));
    return false;
  }
  *body = Json::parse(call->request.body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    call->respond(ErrorResponse(400, "invalid_json", "The body is not valid JSON."));
    return false;
  }
  if (!body->is_object()) {
    call->respond(ErrorResponse(400, "invalid_json", "The body must be a JSON object."));
    return false;
  }
  return true;
}

void Api::ReadStore(const CallPtr& call, std::function<HttpResponse()> read) {
  const uint64_t target = call->durable_at_arrival;
  store::Store* store = deps_.store;
  const bool posted = workers_.TryPost([call, target, store, read = std::move(read)] {
    if (store->last_projected_sequence() < target) {
      const absl::Status flushed = store->Flush();
      if (!flushed.ok()) {
        return call->respond(ErrorResponse(503, "unavailable", "The query store stopped."));
      }
    }
    call->respond(read());
  });
  if (!posted) {
    call->respond(ErrorResponse(503, "unavailable", "The exchange is busy; retry shortly."));
  }
}

void Api::OnWorker(const CallPtr& call, std::function<HttpResponse()> work) {
  const bool posted = workers_.TryPost([call, work = std::move(work)] { call->respond(work()); });
  if (!posted) {
    call->respond(ErrorResponse(503, "unavailable", "The exchange is busy; retry shortly."));
  }
}

namespace {
// The answer when the sequencer would not take a command (it answered nothing then).
void RefuseIfNotSubmitted(const Api::CallPtr& call, const absl::Status& submitted) {
  if (submitted.code() == absl::StatusCode::kInvalidArgument) {
    call->respond(ErrorResponse(400, "invalid_text", "Text fields must be valid UTF-8."));
  } else if (!submitted.ok()) {
    call->respond(ErrorResponse(503, "unavailable", "The exchange is not accepting commands."));
  }
}
}  // namespace

void Api::SubmitCommand(const CallPtr& call, core::CommandBody command,
                        std::function<HttpResponse(const server::Acked&)> reply) {
  const absl::Status submitted = deps_.sequencer->Submit(
      std::move(command), [call, reply = std::move(reply)](const server::Acked& acked) {
        call->respond(reply(acked));
      });
  RefuseIfNotSubmitted(call, submitted);
}

namespace {

// The refusal of a rejected command, with the core's code and sentence.
HttpResponse Refused(const core::CommandResult& result) {
  return ErrorResponse(StatusForReason(result.code), result.code, result.message);
}

bool PageParams(const HttpRequest& request, uint64_t* after, size_t* limit, HttpResponse* error) {
  *after = 0;
  *limit = kDefaultPageLimit;
  if (const auto it = request.query.find("after"); it != request.query.end()) {
    if (!ParseUint(it->second, after)) {
      *error = ErrorResponse(400, "bad_request", "'after' must be a non-negative integer.");
      return false;
    }
  }
  if (const auto it = request.query.find("limit"); it != request.query.end()) {
    uint64_t value = 0;
    if (!ParseUint(it->second, &value) || value < 1 || value > store::kListLimitMax) {
      *error = ErrorResponse(400, "bad_request", "'limit' must be an integer from 1 to 1000.");
      return false;
    }
    *limit = value;
  }
  return true;
}

bool IdParam(const std::string& text, uint64_t* id, HttpResponse* error) {
  if (!ParseUint(text, id) || *id == 0) {
    *error = ErrorResponse(400, "bad_request", "The id in the path must be a positive integer.");
    return false;
  }
  return true;
}

// An account id in the path: as IdParam, and one past the ids accounts can have
// (core::AccountId is 32 bits) is no account's, rather than another account's once narrowed.
bool AccountIdParam(const std::string& text, uint64_t* id, HttpResponse* error) {
  if (!IdParam(text, id, error)) return false;
  if (*id > std::numeric_limits<core::AccountId>::max()) {
    *error = ErrorResponse(404, "unknown_account", "No account has this id.");
    return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- operations

void Api::Healthz(const CallPtr& call) {
  const absl::Status status = deps_.sequencer->status();
  if (!status.ok()) {
    return call->respond(ErrorResponse(503, "unavailable", "The sequencer stopped."));
  }
  call->respond(JsonResponse(200, Json{{"status", "ok"},
                                       {"sequence", deps_.sequencer->durable_sequence()},
                                       {"projected", deps_.store->last_projected_sequence()}}));
}

void Api::Metrics(const CallPtr& call) {
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = deps_.metrics->RenderPrometheus();
  call->respond(std::move(response));
}

void Api::OpenApi(const CallPtr& call) {
  static const std::string document = OpenApiJson();
  HttpResponse response;
  response.body = document;
  call->respond(std::move(response));
}

void Api::WebSocketOnly(const CallPtr& call) {
  call->respond(ErrorResponse(426, "upgrade_required", "This path is a WebSocket endpoint."));
}

// ---------------------------------------------------------------- accounts

void Api::CreateAccount(const CallPtr& call) {
  Json body;
  if (!ParseBody(call, &body)) return;
  Fields f(body);
  const std::string name = f.Str("name", true, 64);
  const std::string role_text = f.Str("role", false);
  if (!f.Finish()) return call->respond(f.Error());
  core::Role role = core::Role::kConsumer;
  if (role_text == "provider") {
    role = core::Role::kProvider;
  } else if (role_text == "operator") {
    role = core::Role::kOperator;
  } else if (!role_text.empty() && role_text != "consumer") {
    return call->respond(ErrorResponse(400, "invalid_field",
                                       "The field 'role' must be consumer, provider or operator."));
  }
  const bool by_operator = call->caller && call->caller->role == core::Role::kOperator;
  if (role == core::Role::kOperator && !by_operator) {
    return call->respond(
        ErrorResponse(403, "forbidden", "Only an operator may create an operator account."));
  }
  if (!by_operator && !deps_.config.allow_signup) {
    return call->respond(ErrorResponse(403, "signup_disabled",
                                       "This exchange creates accounts only for its operator."));
  }
  const std::string token = NewApiToken();
  core::CreateAccount command{by_operator ? call->caller->id : 0, name, role, TokenHash(token)};
  SubmitCommand(call, std::move(command), [token, name, role](const server::Acked& acked) {
    if (!acked.output.result.accepted) return Refused(acked.output.result);
    return JsonResponse(
        201,
        Json{
            {"account",
             {{"id", acked.output.result.account}, {"name", name}, {"role", core::RoleName(role)}}},
            {"token", token},
            {"sequence", acked.sequence}});
  });
}

void Api::ListAccounts(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  ReadStore(call, [store, after, limit] {
    const auto rows = store->ListAccounts(
        static_cast<core::AccountId>(std::min<uint64_t>(after, UINT32_MAX)), limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::AccountRow>(
                                 *rows, limit, [](const auto& r) { return r.id; }, AccountJson));
  });
}

namespace {
// The caller may see account `id`: its owner or an operator.
bool OwnsOrOperates(const std::optional<AccountIdentity>& caller, uint64_t id) {
  return caller && (caller->id == id || caller->role == core::Role::kOperator);
}
}  // namespace

void Api::GetAccount(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->respond(error);
  if (!OwnsOrOperates(call->caller, id)) {
    return call->respond(ErrorResponse(403, "forbidden", "This is not your account."));
  }
  RespondAccount(call, id);
}

void Api::GetMe(const CallPtr& call) { RespondAccount(call, call->caller->id); }

void Api::RotateToken(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->respond(error);
  if (!OwnsOrOperates(call->caller, id)) {
    return call->respond(ErrorResponse(403, "forbidden", "This is not your account."));
  }
  // Like account creation: the token is made here, shown once in the answer, and only its
  // hash is journaled. The answer comes once the command is durable, and by then the
  // registry (fed before the answer) no longer knows the old token.
  const std::string token = NewApiToken();
  // The operator whose token <data_dir>/operator.token holds gets the new one written there
  // too: were the answer lost, the only operator would otherwise be locked out for good.
  std::string token_file = deps_.operator_token_path;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string held;
    std::getline(in, held);
    const auto holder = deps_.identities->FindByToken(held);
    if (!holder || holder->id != id) token_file.clear();
  }
  SubmitCommand(call,
                core::RotateToken{call->caller->id, static_cast<core::AccountId>(id),
                                  TokenHash(token)},
                [token, id, token_file](const server::Acked& acked) {
                  if (!acked.output.result.accepted) return Refused(acked.output.result);
                  Json body{{"account", id}, {"token", token}, {"sequence", acked.sequence}};
                  if (!token_file.empty()) {
                    const absl::Status written =
                        base::WriteFileAtomically(token_file, token + "\n", 0600);
                    body["token_file"] = written.ok() ? "written" : "not_written";
                  }
                  return JsonResponse(200, body);
                });
}

void Api::RespondAccount(const CallPtr& call, uint64_t id) {
  store::Store* store = deps_.store;
  ReadStore(call, [store, id] {
    const auto rows = store->ListAccounts(static_cast<core::AccountId>(id - 1), 1);
    if (!rows.ok()) return StatusError(rows.status());
    if (rows->empty() || rows->front().id != id) {
      return ErrorResponse(404, "unknown_account", "No account has this id.");
    }
    const auto balances = store->Balances(static_cast<core::AccountId>(id));
    if (!balances.ok()) return StatusError(balances.status());
    Json b{{"available", "0"}, {"held", "0"}, {"escrow", "0"}, {"earnings", "0"}};
    for (const store::BalanceRow& row : *balances) {
      b[std::string(core::BalanceKindName(row.kind))] = Money(row.amount);
    }
    Json account = AccountJson(rows->front());
    account["balances"] = b;
    return JsonResponse(200, Json{{"account", account}});
  });
}

void Api::LedgerSummary(const CallPtr& call) {
  if (!RequireOperator(call)) return;
  // Read from the core itself (one consistent state): per kind over every account, the
  // system balances, and whether the whole ledger sums to zero.
  Json kinds = Json::object();
  core::Micros sum = 0, deposits = 0, withdrawals = 0;
  uint64_t sequence = 0;
  size_t accounts = 0;
  deps_.sequencer->Read([&](const core::Exchange& x) {
    std::map<core::BalanceKind, core::Micros> totals;
    for (const auto& [ref, amount] : x.balances()) {
      totals[ref.kind] += amount;
      sum += amount;
    }
    for (const auto& [kind, amount] : totals) {
      kinds[std::string(core::BalanceKindName(kind))] = Money(amount);
    }
    deposits = x.deposits();
    withdrawals = x.withdrawals();
    sequence = x.last_sequence();
    accounts = x.accounts().size();
  });
  call->respond(JsonResponse(200, Json{{"totals", kinds},
                                       {"sum", Money(sum)},
                                       {"balanced", sum == 0},
                                       {"deposits", Money(deposits)},
                                       {"withdrawals", Money(withdrawals)},
                                       {"accounts", accounts},
                                       {"sequence", sequence}}));
}

void Api::DepositTo(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->respond(error);
  Json body;
  if (!ParseBody(call, &body)) return;
  Fields f(body);
  const int64_t amount = f.Money("amount", true);
  if (!f.Finish()) return call->respond(f.Error());
  SubmitCommand(
      call, core::Deposit{call->caller->id, static_cast<core::AccountId>(id), amount},
      [id, amount](const server::Acked& acked) {
        if (!acked.output.result.accepted) return Refused(acked.output.result);
        return JsonResponse(
            201, Json{{"account", id}, {"amount", Money(amount)}, {"sequence", acked.sequence}});
      });
}

void Api::WithdrawFrom(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->respond(error);
  Json body;
  if (!ParseBody(call, &body)) return;
  Fields f(body);
  const int64_t amount = f.Money("amount", true);
  const std::string from = f.Str("from", false);
  if (!f.Finish()) return call->respond(f.Error());
  core::BalanceKind kind = core::BalanceKind::kAvailable;
  if (from == "earnings") {
    kind = core::BalanceKind::kEarnings;
  } else if (!from.empty() && from != "available") {
    return call->respond(
        ErrorResponse(400, "invalid_field", "The field 'from' must be available or earnings."));
  }
  SubmitCommand(
      call, core::Withdraw{call->caller->id, static_cast<core::AccountId>(id), amount, kind},
      [id, amount](const server::Acked& acked) {
        if (!acked.output.result.accepted) return Refused(acked.output.result);
        return JsonResponse(
            201, Json{{"account", id}, {"amount", Money(amount)}, {"sequence", acked.sequence}});
      });
}

void Api::AccountLedger(const CallPtr& call) {
  uint64_t id = 0, after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error) ||
      !PageParams(call->request, &after, &limit, &error)) {
    return call->respond(error);
  }
  if (!OwnsOrOperates(call->caller, id)) {
    return call->respond(ErrorResponse(403, "forbidden", "This is not your account."));
  }
  store::Store* store = deps_.store;
  ReadStore(call, [store, id, after, limit] {
    const auto rows = store->ListLedgerEntries(static_cast<core::AccountId>(id), after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::LedgerEntryRow>(
                                 *rows, limit, [](const auto& r) { return r.entry; }, LedgerJson));
  });
}

void Api::AccountStatement(const CallPtr& call) {
  uint64_t id = 0, from = 0, to = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->respond(error);
  if (!OwnsOrOperates(call->caller, id)) {
    return call->respond(ErrorResponse(403, "forbidden", "This is not your account."));
  }
  to = static_cast<uint64_t>(INT64_MAX);
  if (const auto it = call->request.query.find("from");
      it != call->request.query.end() && !ParseUint(it->second, &from)) {
    return call->respond(
        ErrorResponse(400, "bad_request", "'from' is microseconds since the epoch."));
  }
  if (const auto it = call->request.query.find("to");
      it != call->request.query.end() && !ParseUint(it->second, &to)) {
    return call->respond(
        ErrorResponse(400, "bad_request", "'to' is microseconds since the epoch."));
  }
  if (from > to || to > static_cast<uint64_t>(INT64_MAX)) {
    return call->respond(ErrorResponse(400, "bad_request", "'from' must not be after 'to'."));
  }
  store::Store* store = deps_.store;
  ReadStore(call, [store, id, from, to] {
    const auto statement = store->Statement(static_cast<core::AccountId>(id),
                                            static_cast<int64_t>(from), static_cast<int64_t>(to));
    if (!statement.ok()) return StatusError(statement.status());
    Json lines = Json::array();
    for (const store::StatementLine& l : statement->lines) {
      lines.push_back({{"balance", core::BalanceKindName(l.kind)},
                       {"opening", Money(l.opening)},
                       {"closing", Money(l.closing)}});
    }
    Json entries = Json::array();
    for (const auto& e : statement->entries) entries.push_back(LedgerJson(e));
    return JsonResponse(200, Json{{"account", id},
                                  {"from", statement->from_time},
                                  {"to", statement->to_time},
                                  {"balances", lines},
                                  {"entries", entries},
                                  {"truncated", statement->truncated}});
  });
}

// ---------------------------------------------------------------- markets

void Api::ListMarkets(const CallPtr& call) {
  Json markets = Json::array();
  for (const core::MarketConfig& m : deps_.exchange.markets) {
    Json market{{"name", m.name},
                {"tick", Money(m.tick_micros)},
                {"taker_fee_bps", m.taker_fee_bps},
                {"maker_fee_bps", m.maker_fee_bps},
                {"slot",
                 {{"vcpus", m.slot.vcpus},
                  {"mem_mib", m.slot.mem_mib},
                  {"disk_gib", m.slot.disk_gib},
                  {"gpus", m.slot.gpus},
                  {"gpu_model", m.slot.gpu_model}}}};
    const auto depth = deps_.market_data->Depth(m.name, 1);
    market["best_bid"] = depth && !depth->bids.empty() ? Json(Money(depth->bids[0].price)) : Json();
    market["best_ask"] = depth && !depth->asks.empty() ? Json(Money(depth->asks[0].price)) : Json();
    const auto last = deps_.market_data->Last(m.name);
    market["last_trade"] = last ? Json{{"price", Money(last->price)},
                                       {"quantity", last->quantity},
                                       {"time", last->time}}
                                : Json();
    markets.push_back(std::move(market));
  }
  call->respond(JsonResponse(200, Json{{"items", markets}}));
}

void Api::MarketBook(const CallPtr& call) {
  size_t levels = kBookDepthDefault;
  if (const auto it = call->request.query.find("depth"); it != call->request.query.end()) {
    uint64_t value = 0;
    if (!ParseUint(it->second, &value) || value < 1 || value > kBookDepthMax) {
      return call->respond(
          ErrorResponse(400, "bad_request", "'depth' must be an integer from 1 to 1000."));
    }
    levels = value;
  }
  const auto depth = deps_.market_data->Depth(call->params[0], levels);
  if (!depth)
    return call->respond(ErrorResponse(404, "unknown_market", "No market has this name."));
  auto levels_json = [](const std::vector<Level>& side) {
    Json out = Json::array();
    for (const Level& l : side) out.push_back(Json::array({Money(l.price), l.quantity}));
    return out;
  };
  call->respond(JsonResponse(200, Json{{"market", call->params[0]},
                                       {"sequence", depth->sequence},
                                       {"bids", levels_json(depth->bids)},
                                       {"asks", levels_json(depth->asks)}}));
}

void Api::MarketTrades(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  const std::string market = call->params[0];
  if (!deps_.market_data->Depth(market, 1)) {
    return call->respond(ErrorResponse(404, "unknown_market", "No market has this name."));
  }
  store::Store* store = deps_.store;
  ReadStore(call, [store, market, after, limit] {
    const auto rows = store->ListTrades(market, after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::TradeRow>(
                                 *rows, limit, [](const auto& r) { return r.id; }, TradeJson));
  });
}

// ---------------------------------------------------------------- orders

namespace {
bool PrintableAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}
}  // namespace

namespace {

// What a placed order's answer says, from the command and the events it caused.
struct PlacedOrderSummary {
  struct Fill {
    core::OrderId maker_order = 0;
    core::PriceMicros price = 0;
    core::Quantity quantity = 0;
    core::LeaseId lease = 0;
  };
  core::OrderId id = 0;
  core::Quantity filled = 0;
  core::Quantity remaining = 0;
  std::string_view status;
  std::string_view cancel_reason;  // Only for a cancelled order; may be empty.
  std::vector<Fill> fills;
};

PlacedOrderSummary SummarizePlacedOrder(const core::PlaceOrder& c, const server::Acked& acked) {
  PlacedOrderSummary summary;
  const core::OrderId id = acked.output.result.order;
  summary.id = id;
  core::Quantity cancelled = 0;
  std::string_view cancel_reason;
  // Which lease each fill made: the LeaseStarted events of this order, by the other side's
  // order (a sweep can have many fills: one pass, then a lookup per fill).
  std::map<core::OrderId, core::LeaseId> lease_by_maker;
  const bool buys = c.side == engine::Side::kBuy;
  for (const core::CoreEvent& event : acked.output.events) {
    if (const auto* started = std::get_if<core::LeaseStarted>(&event)) {
      if (buys && started->buy_order == id) lease_by_maker[started->sell_order] = started->lease;
      if (!buys && started->sell_order == id) lease_by_maker[started->buy_order] = started->lease;
    }
  }
  for (const core::CoreEvent& event : acked.output.events) {
    const auto* order_event = std::get_if<core::OrderEvent>(&event);
    if (order_event == nullptr || order_event->event.id != id) continue;
    const engine::Event& e = order_event->event;
    if (e.type == engine::EventType::kTrade) {
      summary.filled += e.quantity;
      const auto lease = lease_by_maker.find(e.maker_id);
      summary.fills.push_back(
          {e.maker_id, e.price, e.quantity, lease == lease_by_maker.end() ? 0 : lease->second});
    } else if (e.type == engine::EventType::kCancelled || e.type == engine::EventType::kExpired) {
      cancelled += e.quantity;
      cancel_reason = engine::ReasonCode(e.cancel);
    }
  }
  summary.remaining = c.quantity - summary.filled - cancelled;
  summary.status = summary.remaining > 0          ? "open"
                   : summary.filled == c.quantity ? "filled"
                                                  : "cancelled";
  if (summary.status == "cancelled") summary.cancel_reason = cancel_reason;
  return summary;
}

using base::AppendJsonString;

void AppendJsonInt(std::string* out, int64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out->append(digits, end);
}

}  // namespace

Json PlacedOrderJson(const core::PlaceOrder& c, const server::Acked& acked) {
  const PlacedOrderSummary summary = SummarizePlacedOrder(c, acked);
  Json fills = Json::array();
  for (const PlacedOrderSummary::Fill& fill : summary.fills) {
    fills.push_back({{"maker_order", fill.maker_order},
                     {"price", Money(fill.price)},
                     {"quantity", fill.quantity},
                     {"lease", fill.lease}});
  }
  Json order{{"id", summary.id},
             {"client_order_id", c.client_order_id},
             {"market", c.market},
             {"side", SideName(c.side)},
             {"type", c.type == engine::OrderType::kLimit ? "limit" : "market"},
             {"quantity", c.quantity},
             {"remaining", summary.remaining},
             {"filled", summary.filled},
             {"status", summary.status},
             {"account", c.actor}};
  order["price"] = c.type == engine::OrderType::kLimit ? Json(Money(c.price)) : Json();
  if (!summary.cancel_reason.empty()) order["cancel_reason"] = summary.cancel_reason;
  return Json{{"order", order}, {"fills", fills}, {"sequence", acked.sequence}};
}

std::string PlacedOrderBody(const core::PlaceOrder& c, const server::Acked& acked) {
  // Every order answer goes through here, on the sequencer's delivery thread: written
  // directly, with the keys in the order PlacedOrderJson(...).dump() gives them (sorted),
  // byte for byte.
  const PlacedOrderSummary summary = SummarizePlacedOrder(c, acked);
  std::string out;
  out.reserve(256 + c.client_order_id.size() + c.market.size() + 96 * summary.fills.size());
  out += "{\"fills\":[";
  for (size_t i = 0; i < summary.fills.size(); ++i) {
    const PlacedOrderSummary::Fill& fill = summary.fills[i];
    if (i > 0) out += ',';
    out += "{\"lease\":";
    AppendJsonInt(&out, static_cast<int64_t>(fill.lease));
    out += ",\"maker_order\":";
    AppendJsonInt(&out, fill.maker_order);
    out += ",\"price\":";
    AppendJsonString(&out, Money(fill.price));
    out += ",\"quantity\":";
    AppendJsonInt(&out, fill.quantity);
    out += '}';
  }
  out += "],\"order\":{\"account\":";
  AppendJsonInt(&out, c.actor);
  if (!summary.cancel_reason.empty()) {
    out += ",\"cancel_reason\":";
    AppendJsonString(&out, summary.cancel_reason);
  }
  out += ",\"client_order_id\":";
  AppendJsonString(&out, c.client_order_id);
  out += ",\"filled\":";
  AppendJsonInt(&out, summary.filled);
  out += ",\"id\":";
  AppendJsonInt(&out, summary.id);
  out += ",\"market\":";
  AppendJsonString(&out, c.market);
  out += ",\"price\":";
  if (c.type == engine::OrderType::kLimit) {
    AppendJsonString(&out, Money(c.price));
  } else {
    out += "null";
  }
  out += ",\"quantity\":";
  AppendJsonInt(&out, c.quantity);
  out += ",\"remaining\":";
  AppendJsonInt(&out, summary.remaining);
  out += ",\"side\":";
  AppendJsonString(&out, SideName(c.side));
  out += ",\"status\":";
  AppendJsonString(&out, summary.status);
  out += ",\"type\":";
  AppendJsonString(&out, c.type == engine::OrderType::kLimit ? "limit" : "market");
  out += "},\"sequence\":";
  AppendJsonInt(&out, static_cast<int64_t>(acked.sequence));
  out += '}';
  return out;
}

std::optional<core::PlaceOrder> ParseOrder(const Json& body, core::AccountId actor,
                                           HttpResponse* error) {
  Fields f(body);
  core::PlaceOrder c;
  c.actor = actor;
  c.market = f.Str("market", true, 64);
  const std::string side = f.Str("side", true);
  const std::string type = f.Str("type", false);
  const std::string tif = f.Str("tif", false);
  const bool has_price = f.Has("price");
  c.price = f.Money("price", false);
  c.quantity = f.Int("quantity", true, 0, 1, 1'000'000'000);
  c.lot = f.Int("lot", false, 1, 1, 1'000'000'000);
  c.max_hours = static_cast<int32_t>(f.Int("max_hours", false, 1, 1, 24 * 366));
  const bool has_expiry = f.Has("expiry");
  const int64_t expiry = f.Int("expiry", false, 0, 0, INT64_MAX);
  c.machine = static_cast<core::MachineId>(f.Int("machine", false, 0, 0, INT64_MAX));
  const std::string constraints = f.Str("constraints", false, kConstraintsBytesMax);
  if (!f.Finish()) {
    *error = f.Error();
    return std::nullopt;
  }
  auto refuse = [&](std::string_view code, std::string_view message) {
    *error = ErrorResponse(400, code, message);
    return std::nullopt;
  };
  if (side == "buy") {
    c.side = engine::Side::kBuy;
  } else if (side == "sell") {
    c.side = engine::Side::kSell;
  } else {
    return refuse("invalid_field", "The field 'side' must be buy or sell.");
  }
  if (type.empty() || type == "limit") {
    c.type = engine::OrderType::kLimit;
    if (!has_price) return refuse("missing_field", "A limit order needs a 'price'.");
  } else if (type == "market") {
    c.type = engine::OrderType::kMarket;
    if (has_price) return refuse("invalid_field", "A market order has no 'price'.");
  } else {
    return refuse("invalid_field", "The field 'type' must be limit or market.");
  }
  static const std::map<std::string, engine::TimeInForce> kTifs = {
      {"", engine::TimeInForce::kGtc},
      {"gtc", engine::TimeInForce::kGtc},
      {"ioc", engine::TimeInForce::kIoc},
      {"fok", engine::TimeInForce::kFok},
      {"gtd", engine::TimeInForce::kGtd}};
  const auto tif_it = kTifs.find(tif);
  if (tif_it == kTifs.end()) {
    return refuse("invalid_field", "The field 'tif' must be gtc, ioc, fok or gtd.");
  }
  c.tif = tif_it->second;
  if (has_expiry) c.expiry = expiry;
  if (c.side == engine::Side::kSell && c.machine == 0) {
    return refuse("missing_field", "A sell order names its 'machine'.");
  }
  if (!constraints.empty()) {
    if (c.side != engine::Side::kBuy) {
      return refuse("invalid_constraints", "Only a buy order has 'constraints'.");
    }
    if (!CanonicalConstraints(constraints, &c.constraints, error)) return std::nullopt;
  }
  return c;
}

bool CanonicalConstraints(const std::string& text, std::string* canonical, HttpResponse* error) {
  auto parsed = query::Query::Parse(text);
  if (const auto* syntax = std::get_if<query::SyntaxError>(&parsed)) {
    *error = JsonResponse(400, Json{{"error",
                                     {{"code", "invalid_constraints"},
                                      {"message", "The constraints are not a valid query: column " +
                                                      std::to_string(syntax->column) + ": " +
                                                      syntax->message},
                                      {"column", syntax->column}}}});
    return false;
  }
  // The canonical text is journaled: equal queries give equal bytes.
  *canonical = std::get<query::Query>(parsed).Canonical();
  return true;
}

std::string AutoClientOrderId() {
  static const std::string prefix =
      std::string(core::kAutoClientOrderIdPrefix) + RandomHex(8) + "-";
  static std::atomic<uint64_t> counter{0};
  return prefix + std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

bool ValidIdempotencyKey(std::string_view key) {
  return !key.empty() && key.size() <= kIdempotencyKeyMax && PrintableAscii(key) &&
         !key.starts_with(core::kAutoClientOrderIdPrefix);
}

void Api::PlaceOrder(const CallPtr& call) {
  Json body;
  if (!ParseBody(call, &body)) return;
  HttpResponse error;
  std::optional<core::PlaceOrder> parsed = ParseOrder(body, call->caller->id, &error);
  if (!parsed) return call->respond(std::move(error));
  core::PlaceOrder& c = *parsed;

  const std::string& key = call->request.Header("idempotency-key");
  const bool keyed = !key.empty();
  if (keyed) {
    if (!ValidIdempotencyKey(key)) {
      return call->respond(ErrorResponse(
          400, "invalid_idempotency_key",
          "The Idempotency-Key header is 1 to 64 printable ASCII characters without spaces, "
          "not starting with \"auto-\" (the exchange's own)."));
    }
    c.client_order_id = key;
  } else {
    c.client_order_id = AutoClientOrderId();
  }

  Counter* placed = orders_placed_;
  Counter* refused = orders_refused_;
  store::Store* store = deps_.store;
  WorkerPool* workers = &workers_;
  const core::PlaceOrder command = c;
  const absl::Status submitted = deps_.sequencer->Submit(
      c, [call, command, keyed, placed, refused, store, workers](const server::Acked& acked) {
        const core::CommandResult& result = acked.output.result;
        if (result.accepted) {
          placed->Add();
          HttpResponse response;
          response.status = 201;
          response.body = PlacedOrderBody(command, acked);
          return call->respond(std::move(response));
        }
        if (!(keyed && result.code == "duplicate_client_order_id" && result.order != 0)) {
          refused->Add();
          return call->respond(Refused(result));
        }
        // An idempotent retry: answer with the order the key placed, as it is now, if the
        // request asks for the same thing.
        const core::OrderId original = result.order;
        const uint64_t target = acked.sequence;
        const bool posted = workers->TryPost([call, command, original, target, store] {
          if (store->last_projected_sequence() < target && !store->Flush().ok()) {
            return call->respond(ErrorResponse(503, "unavailable", "The query store stopped."));
          }
          const auto rows = store->ListOrders(command.actor, std::nullopt, original - 1, 1);
          if (!rows.ok()) return call->respond(StatusError(rows.status()));
          if (rows->empty() || rows->front().id != original) {
            return call->respond(ErrorResponse(409, "idempotency_key_reused",
                                               "This Idempotency-Key was used by a request that "
                                               "placed no order."));
          }
          const store::OrderRow& row = rows->front();
          // The row keeps the order's current limit price; a client retries a placement
          // before it replaces the order, so the price is compared too.
          const core::PriceMicros price =
              command.type == engine::OrderType::kLimit ? command.price : 0;
          if (row.market != command.market || row.side != command.side ||
              row.quantity != command.quantity || row.price != price) {
            return call->respond(
                ErrorResponse(409, "idempotency_key_reused",
                              "This Idempotency-Key already placed a different order."));
          }
          Json order = OrderJson(row);
          order["client_order_id"] = command.client_order_id;
          call->respond(JsonResponse(200, Json{{"order", order}, {"idempotent_replay", true}}));
        });
        if (!posted) {
          call->respond(ErrorResponse(503, "unavailable", "The exchange is busy; retry shortly."));
        }
      });
  RefuseIfNotSubmitted(call, submitted);
}

void Api::ListOrders(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  std::optional<store::OrderStatus> status;
  if (const auto it = call->request.query.find("status"); it != call->request.query.end()) {
    static const std::map<std::string, store::OrderStatus> kStatuses = {
        {"open", store::OrderStatus::kOpen},
        {"filled", store::OrderStatus::kFilled},
        {"cancelled", store::OrderStatus::kCancelled},
        {"expired", store::OrderStatus::kExpired}};
    const auto found = kStatuses.find(it->second);
    if (found == kStatuses.end()) {
      return call->respond(ErrorResponse(400, "bad_request",
                                         "'status' must be open, filled, cancelled or expired."));
    }
    status = found->second;
  }
  store::Store* store = deps_.store;
  const core::AccountId account = call->caller->id;
  ReadStore(call, [store, account, status, after, limit] {
    const auto rows = store->ListOrders(account, status, after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::OrderRow>(
                                 *rows, limit, [](const auto& r) { return r.id; }, OrderJson));
  });
}

void Api::GetOrder(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const core::AccountId account = call->caller->id;
  ReadStore(call, [store, account, id] {
    const auto rows =
        store->ListOrders(account, std::nullopt, static_cast<core::OrderId>(id) - 1, 1);
    if (!rows.ok()) return StatusError(rows.status());
    if (rows->empty() || rows->front().id != static_cast<core::OrderId>(id)) {
      // Another account's order is as unknown as one that never existed.
      return ErrorResponse(404, "unknown_order", "You have no order with this id.");
    }
    return JsonResponse(200, Json{{"order", OrderJson(rows->front())}});
  });
}

void Api::CancelOrder(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  const auto order = static_cast<core::OrderId>(id);
  SubmitCommand(
      call, core::CancelOrder{call->caller->id, order}, [order](const server::Acked& acked) {
        if (!acked.output.result.accepted) return Refused(acked.output.result);
        core::Quantity cancelled = 0;
        for (const auto& event : acked.output.events) {
          const auto* e = std::get_if<core::OrderEvent>(&event);
          if (e && e->event.id == order && e->event.type == engine::EventType::kCancelled) {
            cancelled += e->event.quantity;
          }
        }
        return JsonResponse(200, Json{{"order", order},
                                      {"status", "cancelled"},
                                      {"cancelled_quantity", cancelled},
                                      {"sequence", acked.sequence}});
      });
}

void Api::ReplaceOrder(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  Json body;
  if (!ParseBody(call, &body)) return;
  Fields f(body);
  core::ReplaceOrder c;
  c.actor = call->caller->id;
  c.order = static_cast<core::OrderId>(id);
  if (f.Has("price")) c.price = f.Money("price", true);
  if (f.Has("quantity")) c.quantity = f.Int("quantity", true, 0, 0, 1'000'000'000);
  if (!f.Finish()) return call->respond(f.Error());
  if (!c.price && !c.quantity) {
    return call->respond(
        ErrorResponse(400, "missing_field", "A replace changes 'price', 'quantity' or both."));
  }
  const auto order = static_cast<core::OrderId>(id);
  SubmitCommand(call, c, [order](const server::Acked& acked) {
    if (!acked.output.result.accepted) return Refused(acked.output.result);
    Json body{{"order", order}, {"sequence", acked.sequence}};
    for (const auto& event : acked.output.events) {
      const auto* e = std::get_if<core::OrderEvent>(&event);
      if (e == nullptr || e->event.id != order) continue;
      if (e->event.type == engine::EventType::kReplaced) {
        body["status"] = "replaced";
        body["price"] = Money(e->event.price);
        body["remaining"] = e->event.quantity;
        body["priority_kept"] = e->event.priority_kept;
      } else if (e->event.type == engine::EventType::kCancelled) {
        body["status"] = "cancelled";
        body["remaining"] = 0;
      }
    }
    return JsonResponse(200, body);
  });
}

// ---------------------------------------------------------------- machines

void Api::RegisterMachine(const CallPtr& call) {
  Json body;
  if (!ParseBody(call, &body)) return;
  Fields f(body);
  core::RegisterMachine c;
  c.actor = call->caller->id;
  c.spec.name = f.Str("name", true, 64);
  c.spec.public_key = f.Str("public_key", true, 64);
  const Json* attributes = f.Object("attributes", false);
  const Json* capacity = f.Object("capacity", true);
  if (!f.Finish()) return call->respond(f.Error());
  if (call->caller->role != core::Role::kProvider) {
    return call->respond(
        ErrorResponse(403, "forbidden", "Only a provider account may register a machine."));
  }
  if (attributes != nullptr) {
    for (const auto& [key, value] : attributes->items()) {
      core::AttributeValue attribute;
      if (key.empty() || key.size() > 64) {
        return call->respond(
            ErrorResponse(400, "invalid_field", "Attribute names are 1 to 64 characters."));
      }
      if (value.is_string()) {
        attribute.text = value.get<std::string>();
        if (attribute.text.size() > 256) {
          return call->respond(
              ErrorResponse(400, "invalid_field", "Attribute values are at most 256 characters."));
        }
      } else if (value.is_number()) {
        // The number's shortest decimal text, read exactly into micro-units.
        const base::ParsedMicros parsed = base::ParseMicros(value.dump());
        if (!parsed.ok()) {
          return call->respond(ErrorResponse(
              400, "invalid_field",
              "Attribute '" + key + "' must be a number with at most 6 fractional digits."));
        }
        attribute.is_number = true;
        attribute.number_micros = parsed.micros;
      } else {
        return call->respond(ErrorResponse(
            400, "invalid_field", "Attribute '" + key + "' must be a string or a number."));
      }
      c.spec.attributes[key] = attribute;
    }
  }
  for (const auto& [market, slots] : capacity->items()) {
    if (!slots.is_number_integer()) {
      return call->respond(ErrorResponse(400, "invalid_field",
                                         "Capacity is an integer number of slots per market."));
    }
    c.spec.capacity[market] = slots.get<int64_t>();
  }
  SubmitCommand(call, c, [](const server::Acked& acked) {
    if (!acked.output.result.accepted) return Refused(acked.output.result);
    return JsonResponse(201, Json{{"machine", {{"id", acked.output.result.machine}}},
                                  {"sequence", acked.sequence}});
  });
}

void Api::ListMachines(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  Json items = Json::array();
  core::MachineId last = 0;
  deps_.sequencer->Read([&](const core::Exchange& x) {
    for (auto it = x.machines().upper_bound(after);
         it != x.machines().end() && items.size() < limit; ++it) {
      items.push_back(MachineJson(x, it->second));
      last = it->first;
    }
  });
  Json page{{"items", items}};
  page["next_after"] = items.size() == limit ? Json(last) : Json();
  call->respond(JsonResponse(200, page));
}

void Api::GetMachine(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  Json machine;
  deps_.sequencer->Read([&](const core::Exchange& x) {
    const auto it = x.machines().find(id);
    if (it != x.machines().end()) machine = MachineJson(x, it->second);
  });
  if (machine.is_null()) {
    return call->respond(ErrorResponse(404, "unknown_machine", "No machine has this id."));
  }
  call->respond(JsonResponse(200, Json{{"machine", machine}}));
}

// ---------------------------------------------------------------- discovery

namespace {
HttpResponse QueryError(std::string_view code, std::string_view what, std::string_view text,
                        const query::SyntaxError& error) {
  return JsonResponse(400, Json{{"error",
                                 {{"code", code},
                                  {"message", std::string(what) + ", column " +
                                                  std::to_string(error.column) + ": " +
                                                  error.message},
                                  {"column", error.column},
                                  {"display", query::FormatSyntaxError(text, error)}}}});
}
}  // namespace

void Api::ListOffers(const CallPtr& call) {
  const auto& params = call->request.query;
  auto param = [&](const char* name) -> std::string {
    const auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  };
  const std::string text = param("q");
  const std::string sort_text = params.contains("sort") ? param("sort") : "price";
  const std::string market_name = params.contains("market") ? param("market") : "cpu";
  const bool explain = param("explain") == "1" || param("explain") == "true";
  uint64_t offset = 0, limit = kDefaultPageLimit;
  if ((params.contains("offset") && !ParseUint(param("offset"), &offset)) ||
      (params.contains("limit") &&
       (!ParseUint(param("limit"), &limit) || limit < 1 || limit > store::kListLimitMax))) {
    return call->respond(ErrorResponse(
        400, "bad_request", "'offset' is a non-negative integer and 'limit' one from 1 to 1000."));
  }
  if (text.size() > query::kQueryBytesMax) {
    return call->respond(ErrorResponse(400, "invalid_query",
                                       "A query is at most 4096 bytes."));
  }
  auto parsed = query::Query::Parse(text);
  if (const auto* error = std::get_if<query::SyntaxError>(&parsed)) {
    return call->respond(QueryError("invalid_query", "The query is not valid", text, *error));
  }
  auto sort = query::ParseSort(sort_text);
  if (const auto* error = std::get_if<query::SyntaxError>(&sort)) {
    return call->respond(QueryError("invalid_sort", "The sort is not valid", sort_text, *error));
  }
  const int market = offers_->MarketIndex(market_name);
  if (market < 0) {
    return call->respond(ErrorResponse(404, "unknown_market", "No market has this name."));
  }
  const query::Query query = std::move(std::get<query::Query>(parsed));
  query::MachineIndex::SearchOptions options;
  options.sort = std::move(std::get<std::vector<query::SortKey>>(sort));
  options.limit = limit;
  options.offset = offset;
  // Bring the index up to what is acknowledged now, then search outside the sequencer.
  OfferIndex::Changes changes;
  deps_.sequencer->Read([&](const core::Exchange& x) { changes = offers_->Collect(x); });
  offers_->Apply(std::move(changes));
  query::MachineIndex::SearchResult found;
  std::vector<query::MachineIndex::ClauseReport> reports;
  size_t machines = 0;
  {
    std::shared_lock lock(offers_->mutex());
    const query::MachineIndex& index = *offers_->Index(static_cast<size_t>(market));
    found = index.Search(query, options);
    if (explain) reports = index.Explain(query);
    machines = index.size();
  }
  Json items = Json::array();
  deps_.sequencer->Read([&](const core::Exchange& x) {
    for (const core::MachineId id : found.machines) {
      const auto it = x.machines().find(id);
      if (it == x.machines().end()) continue;
      Json item = MachineJson(x, it->second);
      const core::PriceMicros ask = x.BestAsk(it->second, static_cast<size_t>(market));
      item["ask"] = ask > 0 ? Json(Money(ask)) : Json();
      items.push_back(std::move(item));
    }
  });
  Json body{{"items", std::move(items)},
            {"total_matching", found.total_matching},
            {"machines_online", machines},
            {"market", market_name},
            {"query", query.Canonical()},
            {"sort", query::FormatSort(options.sort)}};
  if (explain) {
    Json clauses = Json::array();
    for (const auto& r : reports) {
      clauses.push_back({{"clause", r.clause},
                         {"matching_alone", r.matching_alone},
                         {"ruled_out_alone", r.ruled_out_alone},
                         {"remaining_after", r.remaining_after}});
    }
    body["explain"] = std::move(clauses);
  }
  call->respond(JsonResponse(200, body));
}

// ---------------------------------------------------------------- leases

void Api::ListLeases(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const core::AccountId account = call->caller->id;
  ReadStore(call, [store, account, after, limit] {
    const auto rows = store->ListLeases(account, after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::LeaseRow>(
                                 *rows, limit, [](const auto& r) { return r.id; }, LeaseJson));
  });
}

namespace {
bool MayReadLease(const std::optional<AccountIdentity>& caller, const store::LeaseRow& lease) {
  return caller && (caller->id == lease.buyer || caller->id == lease.seller ||
                    caller->role == core::Role::kOperator);
}
}  // namespace

void Api::GetLease(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const auto caller = call->caller;
  ReadStore(call, [store, caller, id] {
    const auto lease = store->GetLease(id);
    if (!lease.ok() || !MayReadLease(caller, *lease)) {
      if (!lease.ok() && lease.status().code() != absl::StatusCode::kNotFound) {
        return StatusError(lease.status());
      }
      return ErrorResponse(404, "unknown_lease", "You have no lease with this id.");
    }
    return JsonResponse(200, Json{{"lease", LeaseJson(*lease)}});
  });
}

void Api::LeaseUsage(const CallPtr& call) {
  uint64_t id = 0, after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error) ||
      !PageParams(call->request, &after, &limit, &error)) {
    return call->respond(error);
  }
  store::Store* store = deps_.store;
  const auto caller = call->caller;
  ReadStore(call, [store, caller, id, after, limit] {
    const auto lease = store->GetLease(id);
    if (!lease.ok() || !MayReadLease(caller, *lease)) {
      return ErrorResponse(404, "unknown_lease", "You have no lease with this id.");
    }
    const auto rows = store->ListUsage(id, after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200,
                        Page<store::UsageRow>(
                            *rows, limit, [](const auto& r) { return r.sequence; }, UsageJson));
  });
}

void Api::AssignTask(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  Json body;
  if (!ParseBody(call, &body)) return;
  const auto spec = agent::ParseTaskSpec(call->request.body);
  if (!spec.ok()) {
    return call->respond(
        ErrorResponse(400, "invalid_task", std::string(spec.status().message())));
  }
  // The canonical form is journaled: the same spec always gives the same bytes.
  std::string canonical = agent::TaskSpecToJson(*spec).dump();
  SubmitCommand(call, core::AssignTask{call->caller->id, id, std::move(canonical)},
                [id](const server::Acked& acked) {
                  if (!acked.output.result.accepted) return Refused(acked.output.result);
                  return JsonResponse(201, Json{{"lease", id},
                                                {"status", "running"},
                                                {"sequence", acked.sequence}});
                });
}

void Api::GetTask(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const auto caller = call->caller;
  ReadStore(call, [store, caller, id] {
    const auto lease = store->GetLease(id);
    if (!lease.ok() || !MayReadLease(caller, *lease)) {
      return ErrorResponse(404, "unknown_lease", "You have no lease with this id.");
    }
    const auto task = store->GetTask(id);
    if (!task.ok()) {
      if (task.status().code() != absl::StatusCode::kNotFound) return StatusError(task.status());
      return ErrorResponse(404, "unknown_task", "This lease has no task yet.");
    }
    Json out{{"lease", task->lease},
             {"machine", task->machine},
             {"status", task->status},
             {"spec", TaskDocumentJson(task->spec)},
             {"assigned_sequence", task->assigned_sequence},
             {"assigned_time", task->assigned_time}};
    if (!task->result.empty()) out["result"] = TaskDocumentJson(task->result);
    if (task->finished_sequence != 0) {
      out["finished_sequence"] = task->finished_sequence;
      out["finished_time"] = task->finished_time;
    }
    return JsonResponse(200, Json{{"task", out}});
  });
}

namespace {
HttpResponse LeaseEndedReply(core::LeaseId id, const server::Acked& acked) {
  if (!acked.output.result.accepted) return Refused(acked.output.result);
  Json body{{"lease", id}, {"sequence", acked.sequence}};
  for (const auto& event : acked.output.events) {
    if (const auto* ended = std::get_if<core::LeaseEnded>(&event); ended && ended->lease == id) {
      body["status"] = "ended";
      body["reason"] = core::LeaseEndReasonName(ended->reason);
      body["billed_seconds"] = ended->billed_seconds;
      body["billed_total"] = Money(ended->billed_total);
      body["refunded"] = Money(ended->refunded);
    }
  }
  return JsonResponse(200, body);
}
}  // namespace

void Api::ReleaseLease(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  SubmitCommand(call, core::EndLease{call->caller->id, 0, id, core::LeaseEndReason::kReleased},
                [id](const server::Acked& acked) { return LeaseEndedReply(id, acked); });
}

void Api::ReclaimLease(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  SubmitCommand(call, core::EndLease{call->caller->id, 0, id, core::LeaseEndReason::kReclaimed},
                [id](const server::Acked& acked) { return LeaseEndedReply(id, acked); });
}

// ---------------------------------------------------------------- blobs

void Api::UploadBlob(const CallPtr& call) {
  BlobStore* blobs = deps_.blobs;
  OnWorker(call, [call, blobs] {
    const auto info = blobs->Put(call->request.body, std::nullopt);
    if (!info.ok()) return StatusError(info.status());
    return JsonResponse(201, Json{{"sha256", info->sha256}, {"size", info->size}});
  });
}

namespace {
HttpResponse BadDigest() {
  return ErrorResponse(400, "bad_request", "A blob is named by its SHA-256: 64 lowercase hex digits.");
}
}  // namespace

void Api::PutBlob(const CallPtr& call) {
  const std::string digest = call->params[0];
  if (!BlobStore::IsValidDigest(digest)) return call->respond(BadDigest());
  BlobStore* blobs = deps_.blobs;
  OnWorker(call, [call, blobs, digest] {
    const auto info = blobs->Put(call->request.body, digest);
    if (!info.ok()) {
      if (info.status().code() == absl::StatusCode::kInvalidArgument) {
        return ErrorResponse(400, "digest_mismatch",
                             "The body's SHA-256 is not the digest in the path; nothing was kept.");
      }
      return StatusError(info.status());
    }
    return JsonResponse(201, Json{{"sha256", info->sha256}, {"size", info->size}});
  });
}

void Api::GetBlob(const CallPtr& call) {
  const std::string digest = call->params[0];
  if (!BlobStore::IsValidDigest(digest)) return call->respond(BadDigest());
  BlobStore* blobs = deps_.blobs;
  const bool head = call->request.method == "HEAD";
  OnWorker(call, [blobs, digest, head] {
    HttpResponse response;
    if (head) {
      const auto size = blobs->Size(digest);
      if (!size.ok()) return ErrorResponse(404, "unknown_blob", "No blob has this digest.");
      response.headers.emplace_back("X-Blob-Size", std::to_string(*size));
    } else {
      auto data = blobs->Get(digest);
      if (!data.ok()) return ErrorResponse(404, "unknown_blob", "No blob has this digest.");
      response.body = std::move(*data);
    }
    response.content_type = "application/octet-stream";
    // Content-addressed: the bytes behind a digest never change.
    response.headers.emplace_back("Cache-Control", "private, max-age=31536000, immutable");
    response.headers.emplace_back("ETag", "\"" + digest + "\"");
    return response;
  });
}

// ---------------------------------------------------------------- jobs

namespace {

Json JobTaskJson(const store::JobTaskRow& t) {
  return Json{{"index", t.index},
              {"state", core::JobTaskStateName(t.state)},
              {"attempts", t.attempts},
              {"order", t.order},
              {"lease", t.lease},
              {"machine", t.machine}};
}

Json JobJson(const store::JobRow& j) {
  Json out{{"id", j.id},
           {"owner", j.owner},
           {"client_job_id", j.client_job_id},
           {"market", j.market},
           {"tasks_count", j.tasks_count},
           {"slots_per_task", j.slots_per_task},
           {"max_price", Money(j.max_price)},
           {"max_hours", j.max_hours},
           {"constraints", j.constraints},
           {"state", core::JobStateName(j.state)},
           {"submitted_sequence", j.submitted_sequence},
           {"submitted_time", j.submitted_time}};
  if (j.end_sequence != 0) {
    out["end_sequence"] = j.end_sequence;
    out["end_time"] = j.end_time;
  }
  if (!j.tasks.empty()) {
    Json tasks = Json::array();
    for (const store::JobTaskRow& t : j.tasks) tasks.push_back(JobTaskJson(t));
    out["tasks"] = std::move(tasks);
    out["task_spec"] = TaskDocumentJson(j.task_spec);
  }
  return out;
}

// The job as the submission's events left it.
Json SubmittedJobJson(const core::SubmitJob& c, const server::Acked& acked) {
  store::JobRow row;
  row.id = acked.output.result.job;
  row.owner = c.actor;
  row.client_job_id = c.client_job_id;
  row.market = c.market;
  row.tasks_count = c.tasks;
  row.slots_per_task = c.slots_per_task;
  row.max_price = c.max_price;
  row.max_hours = c.max_hours;
  row.constraints = c.constraints;
  row.task_spec = c.task_spec;
  row.submitted_sequence = acked.sequence;
  row.tasks.resize(static_cast<size_t>(c.tasks));
  for (int32_t i = 0; i < c.tasks; ++i) row.tasks[i].index = i;
  for (const core::CoreEvent& event : acked.output.events) {
    if (const auto* t = std::get_if<core::JobTaskChanged>(&event); t && t->job == row.id) {
      row.tasks[t->task_index] = store::JobTaskRow{t->task_index, t->state, t->attempts,
                                                   t->order, t->lease, t->machine};
    } else if (const auto* s = std::get_if<core::JobSubmitted>(&event); s && s->job == row.id) {
      row.submitted_time = s->submitted;
    } else if (const auto* e = std::get_if<core::JobEnded>(&event); e && e->job == row.id) {
      row.state = e->state;
      row.end_sequence = acked.sequence;
      row.end_time = e->end;
    }
  }
  return JobJson(row);
}

}  // namespace

std::optional<core::SubmitJob> ParseJob(const Json& body, core::AccountId actor,
                                        HttpResponse* error) {
  Fields f(body);
  core::SubmitJob c;
  c.actor = actor;
  c.market = f.Str("market", false, 64);
  if (c.market.empty()) c.market = "cpu";
  c.tasks = static_cast<int32_t>(f.Int("tasks", false, 1, 1, core::kJobTasksMax));
  c.slots_per_task = f.Int("slots_per_task", false, 1, 1, 1'000'000);
  c.max_price = f.Money("max_price", true);
  c.max_hours = static_cast<int32_t>(f.Int("max_hours", false, 1, 1, 24 * 31));
  const std::string constraints = f.Str("constraints", false, kConstraintsBytesMax);
  const bool has_task = f.Has("task");
  if (!f.Finish()) {
    *error = f.Error();
    return std::nullopt;
  }
  if (!has_task || !body["task"].is_object()) {
    *error = ErrorResponse(400, "missing_field",
                           "A job needs its 'task': a task spec object (docs/formats/task.md).");
    return std::nullopt;
  }
  const auto spec = agent::ParseTaskSpec(body["task"].dump());
  if (!spec.ok()) {
    *error = ErrorResponse(400, "invalid_task", std::string(spec.status().message()));
    return std::nullopt;
  }
  c.task_spec = agent::TaskSpecToJson(*spec).dump();
  if (!constraints.empty() && !CanonicalConstraints(constraints, &c.constraints, error)) {
    return std::nullopt;
  }
  return c;
}

void Api::SubmitJob(const CallPtr& call) {
  Json body;
  if (!ParseBody(call, &body)) return;
  HttpResponse error;
  std::optional<core::SubmitJob> parsed = ParseJob(body, call->caller->id, &error);
  if (!parsed) return call->respond(std::move(error));
  const std::string& key = call->request.Header("idempotency-key");
  if (!key.empty() && !ValidIdempotencyKey(key)) {
    return call->respond(ErrorResponse(
        400, "invalid_idempotency_key",
        "The Idempotency-Key header is 1 to 64 printable ASCII characters without spaces, "
        "not starting with \"auto-\" (the exchange's own)."));
  }
  parsed->client_job_id = key.empty() ? AutoClientOrderId() : key;
  const core::SubmitJob command = *parsed;
  store::Store* store = deps_.store;
  WorkerPool* workers = &workers_;
  const absl::Status submitted = deps_.sequencer->Submit(
      command, [call, command, store, workers](const server::Acked& acked) {
        const core::CommandResult& result = acked.output.result;
        if (result.accepted) {
          return call->respond(JsonResponse(
              201, Json{{"job", SubmittedJobJson(command, acked)}, {"sequence", acked.sequence}}));
        }
        if (result.code != "duplicate_client_job_id" || result.job == 0) {
          return call->respond(Refused(result));
        }
        // An idempotent retry: answer with the job the key submitted, if it asked the same.
        const core::JobId original = result.job;
        const uint64_t target = acked.sequence;
        const bool posted = workers->TryPost([call, original, target, store, command] {
          if (store->last_projected_sequence() < target && !store->Flush().ok()) {
            return call->respond(ErrorResponse(503, "unavailable", "The query store stopped."));
          }
          const auto job = store->GetJob(original);
          if (!job.ok()) return call->respond(StatusError(job.status()));
          if (job->market != command.market || job->tasks_count != command.tasks ||
              job->task_spec != command.task_spec || job->max_price != command.max_price) {
            return call->respond(ErrorResponse(409, "idempotency_key_reused",
                                               "This Idempotency-Key already submitted another "
                                               "job."));
          }
          call->respond(
              JsonResponse(200, Json{{"job", JobJson(*job)}, {"idempotent_replay", true}}));
        });
        if (!posted) {
          call->respond(ErrorResponse(503, "unavailable", "The exchange is busy; retry shortly."));
        }
      });
  RefuseIfNotSubmitted(call, submitted);
}

void Api::ListJobs(const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const core::AccountId account = call->caller->id;
  ReadStore(call, [store, account, after, limit] {
    const auto rows = store->ListJobs(account, after, limit);
    if (!rows.ok()) return StatusError(rows.status());
    return JsonResponse(200, Page<store::JobRow>(
                                 *rows, limit, [](const auto& r) { return r.id; }, JobJson));
  });
}

void Api::GetJob(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  store::Store* store = deps_.store;
  const auto caller = call->caller;
  ReadStore(call, [store, caller, id] {
    const auto job = store->GetJob(id);
    if (!job.ok() ||
        !(caller && (caller->id == job->owner || caller->role == core::Role::kOperator))) {
      if (!job.ok() && job.status().code() != absl::StatusCode::kNotFound) {
        return StatusError(job.status());
      }
      return ErrorResponse(404, "unknown_job", "You have no job with this id.");
    }
    return JsonResponse(200, Json{{"job", JobJson(*job)}});
  });
}

void Api::CancelJob(const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->respond(error);
  SubmitCommand(call, core::CancelJob{call->caller->id, id}, [id](const server::Acked& acked) {
    if (!acked.output.result.accepted) {
      // Another account's job reads as unknown, as on GET.
      if (acked.output.result.code == "not_authorized") {
        return ErrorResponse(404, "unknown_job", "You have no running job with this id.");
      }
      return Refused(acked.output.result);
    }
    return JsonResponse(200, Json{{"job", id}, {"state", "cancelled"},
                                  {"sequence", acked.sequence}});
  });
}

// ---------------------------------------------------------------- the route table

namespace {

const std::vector<Route>& RouteTable() {
  static const std::vector<Route> routes = {
      {{"GET", "/healthz", "Liveness and the last durable sequence", "none"}, &Api::Healthz},
      {{"GET", "/metrics", "Prometheus metrics", "none"}, &Api::Metrics},
      {{"GET", "/openapi.json", "This API's OpenAPI 3.0 description", "none"}, &Api::OpenApi},
      {{"POST", "/v1/accounts", "Create an account; returns its API token once", "none", 201},
       &Api::CreateAccount},
      {{"GET", "/v1/accounts", "List accounts", "operator"}, &Api::ListAccounts},
      {{"GET", "/v1/accounts/{id}", "An account with its balances", "account"}, &Api::GetAccount},
      {{"GET", "/v1/me", "The caller's own account with its balances", "account"}, &Api::GetMe},
      {{"POST", "/v1/accounts/{id}/token",
        "Replace the account's API token; returns the new one once, the old one stops working",
        "account"},
       &Api::RotateToken},
      {{"POST", "/v1/accounts/{id}/deposits", "Deposit credits", "operator", 201}, &Api::DepositTo},
      {{"POST", "/v1/accounts/{id}/withdrawals", "Withdraw credits", "operator", 201},
       &Api::WithdrawFrom},
      {{"GET", "/v1/accounts/{id}/ledger", "Ledger entries of an account", "account"},
       &Api::AccountLedger},
      {{"GET", "/v1/accounts/{id}/statement", "Opening/closing balances and entries", "account"},
       &Api::AccountStatement},
      {{"GET", "/v1/ledger", "The whole ledger's totals per balance kind and its check",
        "operator"},
       &Api::LedgerSummary},
      {{"GET", "/v1/markets", "Markets with best bid, best ask and last trade", "none"},
       &Api::ListMarkets},
      {{"GET", "/v1/markets/{market}/book", "Aggregated order book depth", "none"},
       &Api::MarketBook},
      {{"GET", "/v1/markets/{market}/trades", "Trades of a market", "none"}, &Api::MarketTrades},
      {{"POST", "/v1/orders", "Place an order (Idempotency-Key header)", "account", 201},
       &Api::PlaceOrder},
      {{"GET", "/v1/orders", "My orders", "account"}, &Api::ListOrders},
      {{"GET", "/v1/orders/{id}", "One of my orders", "account"}, &Api::GetOrder},
      {{"DELETE", "/v1/orders/{id}", "Cancel an order", "account"}, &Api::CancelOrder},
      {{"PATCH", "/v1/orders/{id}", "Replace an order's price and/or quantity", "account"},
       &Api::ReplaceOrder},
      {{"POST", "/v1/machines", "Register a machine (provider)", "account", 201}, &Api::RegisterMachine},
      {{"GET", "/v1/machines", "Machines with attributes, capacity and status", "none"},
       &Api::ListMachines},
      {{"GET", "/v1/machines/{id}", "One machine", "none"}, &Api::GetMachine},
      {{"GET", "/v1/offers",
        "Discovery: online machines matching a query (q, sort, market, explain; "
        "docs/formats/query.md)",
        "none"},
       &Api::ListOffers},
      {{"GET", "/v1/leases", "Leases where I am buyer or seller", "account"}, &Api::ListLeases},
      {{"GET", "/v1/leases/{id}", "One lease", "account"}, &Api::GetLease},
      {{"GET", "/v1/leases/{id}/usage", "Usage reports of a lease", "account"}, &Api::LeaseUsage},
      {{"POST", "/v1/leases/{id}/task", "Give an active lease its task (docs/formats/task.md)",
        "account", 201},
       &Api::AssignTask},
      {{"GET", "/v1/leases/{id}/task", "A lease's task: spec, status and result", "account"},
       &Api::GetTask},
      {{"POST", "/v1/leases/{id}/release", "End a lease as its buyer", "account"},
       &Api::ReleaseLease},
      {{"POST", "/v1/leases/{id}/reclaim", "Take the machine back as the lease's seller",
        "account"},
       &Api::ReclaimLease},
      {{"POST", "/v1/jobs", "Submit a job (docs/formats/job.md; Idempotency-Key header)",
        "account", 201},
       &Api::SubmitJob},
      {{"GET", "/v1/jobs", "My jobs", "account"}, &Api::ListJobs},
      {{"GET", "/v1/jobs/{id}", "One of my jobs with its tasks", "account"}, &Api::GetJob},
      {{"DELETE", "/v1/jobs/{id}", "Cancel a job: its orders and running tasks", "account"},
       &Api::CancelJob},
      {{"POST", "/v1/blobs", "Upload a blob; returns its SHA-256", "account", 201}, &Api::UploadBlob},
      {{"PUT", "/v1/blobs/{sha256}", "Upload a blob checked against its SHA-256", "account",
        201},
       &Api::PutBlob},
      {{"GET", "/v1/blobs/{sha256}", "Download a blob (also HEAD)", "account"}, &Api::GetBlob},
      {{"GET", "/v1/stream", "WebSocket: market data and my orders and leases", "none", 101,
        true},
       &Api::WebSocketOnly},
      {{"GET", "/v1/agent", "WebSocket: a provider machine's agent channel", "machine",
        101, true},
       &Api::WebSocketOnly},
  };
  return routes;
}

}  // namespace

const std::vector<RouteInfo>& Api::Routes() {
  static const std::vector<RouteInfo> infos = [] {
    std::vector<RouteInfo> out;
    for (const Route& r : RouteTable()) out.push_back(r.info);
    return out;
  }();
  return infos;
}

}  // namespace ocx::api
