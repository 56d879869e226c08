#include "src/api/api.h"

#include <algorithm>
#include <exception>

#include "src/api/offer_index.h"
#include "src/base/assert.h"
#include "src/base/decimal.h"

namespace ocx::api {
namespace {

constexpr size_t kWorkerThreads = 2;
constexpr size_t kWorkerQueueMax = 4096;
// What a route without a body may still send (and have ignored): some clients send a few.
constexpr uint64_t kNoBodyBytesMax = 1024;

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

std::string Described(const std::exception& e) { return e.what(); }

// Runs `body`; whatever it throws is answered as a 500 with an incident id.
template <typename F>
void Guarded(const CallPtr& call, const char* where, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    call->Respond(InternalError(std::string(where) + " threw: " + Described(e)));
  } catch (...) {
    call->Respond(InternalError(std::string(where) + " threw a non-standard exception"));
  }
}

// The GET of a path outside the API that no route has: the dashboard's files.
void ServeDashboard(Api& api, const CallPtr& call) {
  const ApiDeps& deps = api.deps();
  if (deps.web == nullptr && call->request.path == "/") {
    return call->Respond(Refuse(Refusal::kDashboardNotBuilt,
                                "This exchange serves no dashboard: " + deps.web_unavailable));
  }
  std::optional<HttpResponse> asset;
  if (deps.web != nullptr) {
    asset = deps.web->Serve(call->request.path, call->request.Header("if-none-match"));
  }
  if (!asset) return call->Respond(Refuse(Refusal::kNotFound));
  call->Respond(std::move(*asset));
}

const Route& DashboardRoute() {
  static const Route route{"GET", "/", "The dashboard's files", Auth::kNone, 200,
                           Body::kNone, false, &ServeDashboard};
  return route;
}

}  // namespace

std::string_view AuthName(Auth auth) {
  switch (auth) {
    case Auth::kNone: return "none";
    case Auth::kAccount: return "account";
    case Auth::kOperator: return "operator";
    case Auth::kMachine: return "machine";
  }
  return "none";
}

std::string Money(int64_t micros) { return base::FormatMicros(micros); }

void Call::Respond(HttpResponse response) {
  if (answered_.exchange(true)) return;
  sink(std::move(response));
}

struct Api::RouteMetrics {
  Counter* by_class[6] = {};  // 1xx..5xx (index 1..5).
  Histogram* latency = nullptr;
};

struct Api::Admission {
  CallPtr call;
  uint64_t body_limit = 0;
  std::string body_directory;
  std::chrono::steady_clock::time_point started;
  RouteMetrics* metrics = nullptr;
};

const std::vector<Route>& Api::Routes() {
  static const std::vector<Route> routes = [] {
    std::vector<Route> all;
    AddOperationRoutes(&all);
    AddAccountRoutes(&all);
    AddMarketRoutes(&all);
    AddOrderRoutes(&all);
    AddMachineRoutes(&all);
    AddOfferRoutes(&all);
    AddLeaseRoutes(&all);
    AddJobRoutes(&all);
    AddBlobRoutes(&all);
    AddStreamRoutes(&all);
    for (const Route& route : all) OCX_ASSERT(route.handler != nullptr);
    return all;
  }();
  return routes;
}

Api::Api(ApiDeps deps)
    : deps_(std::move(deps)),
      account_limiter_(deps_.config.rate_per_second, deps_.config.rate_burst, 1'000'000),
      anonymous_limiter_(deps_.config.anonymous_rate_per_second,
                         deps_.config.anonymous_rate_burst, 100'000),
      signup_limiter_(deps_.config.signup_rate_per_second, deps_.config.signup_rate_burst,
                      100'000),
      workers_(kWorkerThreads, kWorkerQueueMax) {
  OCX_ASSERT(deps_.gateway && deps_.machines && deps_.store && deps_.blobs &&
             deps_.identities && deps_.market_data && deps_.metrics && deps_.clock &&
             deps_.store_target_sequence);
  const auto& routes = Routes();
  // One entry per route, then "unmatched", then "dashboard" (the static files).
  for (size_t i = 0; i <= routes.size() + 1; ++i) {
    auto m = std::make_unique<RouteMetrics>();
    const std::string route = i < routes.size()    ? routes[i].pattern
                              : i == routes.size() ? "unmatched"
                                                   : "dashboard";
    const std::string method = i < routes.size() ? routes[i].method : "any";
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
  offers_ = std::make_unique<OfferIndex>(deps_.exchange);
  orders_placed_ = &deps_.metrics->AddCounter("ocx_orders_placed_total",
                                              "Orders the exchange accepted over the API.");
  orders_refused_ = &deps_.metrics->AddCounter(
      "ocx_orders_refused_total", "Orders the exchange refused (a reason code was returned).");
}

Api::~Api() { workers_.Stop(); }

const Route* Api::FindRoute(const HttpRequest& request, std::vector<std::string>* params,
                            bool* path_matched) const {
  *path_matched = false;
  for (const Route& route : Routes()) {
    if (!Match(route.pattern, request.path, params)) continue;
    *path_matched = true;
    if (route.method == request.method || (request.method == "HEAD" && route.method == "GET")) {
      return &route;
    }
  }
  params->clear();
  return nullptr;
}

bool Api::Authenticate(const HttpRequest& request, Caller* caller, HttpResponse* refusal) const {
  const std::string& authorization = request.Header("authorization");
  if (authorization.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) {
    *refusal = Refuse(Refusal::kUnauthenticated,
                      "The Authorization header must be 'Bearer <token>'.");
    return false;
  }
  *caller = deps_.identities->FindByToken(std::string_view(authorization).substr(kBearer.size()));
  if (!*caller) {
    *refusal = Refuse(Refusal::kUnauthenticated, "The API token is not valid.");
    return false;
  }
  return true;
}

uint64_t Api::AddressKey(const std::string& remote_address) const {
  return std::hash<std::string>{}(remote_address);
}

uint64_t Api::BodyLimit(const Admission& admission) { return admission.body_limit; }

const std::string& Api::BodyFileDirectory(const Admission& admission) {
  return admission.body_directory;
}

std::shared_ptr<Api::Admission> Api::Admit(HttpRequest head, HttpResponse* refusal) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::string> params;
  bool path_matched = false;
  const Route* route = FindRoute(head, &params, &path_matched);
  const auto& routes = Routes();
  size_t metrics_index = route != nullptr ? static_cast<size_t>(route - routes.data())
                                          : routes.size();
  if (route == nullptr && !path_matched && (head.method == "GET" || head.method == "HEAD") &&
      !head.path.starts_with("/v1/")) {
    route = &DashboardRoute();
    metrics_index = routes.size() + 1;
  }
  RouteMetrics* metrics = route_metrics_[metrics_index].get();
  auto refuse = [&](HttpResponse response) -> std::shared_ptr<Admission> {
    metrics->by_class[std::clamp(response.status / 100, 1, 5)]->Add();
    *refusal = std::move(response);
    return nullptr;
  };
  if (route == nullptr) {
    return refuse(path_matched ? Refuse(Refusal::kMethodNotAllowed) : Refuse(Refusal::kNotFound));
  }
  if (shutting_down_.load()) {
    return refuse(Refuse(Refusal::kUnavailable, "The exchange is shutting down."));
  }
  Caller caller;
  HttpResponse auth_refusal;
  if (!Authenticate(head, &caller, &auth_refusal)) return refuse(std::move(auth_refusal));
  if ((route->auth == Auth::kAccount || route->auth == Auth::kOperator) && !caller) {
    return refuse(Refuse(Refusal::kUnauthenticated,
                         "This call needs an API token: Authorization: Bearer ocx_..."));
  }
  if (route->auth == Auth::kOperator && !IsOperator(caller)) {
    return refuse(Refuse(Refusal::kForbidden, "Only an operator may do this."));
  }
  // Rate limits: per account when authenticated, per address otherwise (everything anyone
  // may call, reads included: an anonymous flood must not crowd out accounts); account
  // creation is also charged to the address whoever asks, operators excepted.
  const int64_t now = deps_.clock->NowMicros();
  int64_t wait_micros = 0;
  if (caller) {
    wait_micros = account_limiter_.Acquire(caller->id, now);
  } else if (head.path != "/healthz") {
    wait_micros = anonymous_limiter_.Acquire(AddressKey(head.remote_address), now);
  }
  if (wait_micros == 0 && head.method == "POST" && head.path == "/v1/accounts" &&
      !IsOperator(caller)) {
    wait_micros = signup_limiter_.Acquire(AddressKey(head.remote_address), now);
  }
  if (wait_micros > 0) {
    HttpResponse refused = Refuse(Refusal::kRateLimited);
    refused.headers.emplace_back("Retry-After", std::to_string(RetryAfterSeconds(wait_micros)));
    return refuse(std::move(refused));
  }
  auto admission = std::make_shared<Admission>();
  switch (route->body) {
    case Body::kNone: admission->body_limit = kNoBodyBytesMax; break;
    case Body::kJson: admission->body_limit = deps_.config.body_bytes_max; break;
    case Body::kBlob:
      admission->body_limit = deps_.config.blob_bytes_max;
      admission->body_directory = deps_.blobs->upload_dir();
      break;
  }
  if (head.content_length && *head.content_length > admission->body_limit) {
    return refuse(Refuse(Refusal::kBodyTooLarge,
                         "The request body exceeds this path's limit of " +
                             std::to_string(admission->body_limit) + " bytes."));
  }
  if (route->body == Body::kBlob) {
    // Before a byte of the upload is read: the account's quota and the disk's room.
    const absl::Status room =
        deps_.blobs->CheckRoom(caller ? caller->id : 0, head.content_length.value_or(0));
    if (!room.ok()) {
      return refuse(room.code() == absl::StatusCode::kResourceExhausted
                        ? Refuse(Refusal::kBlobQuotaExceeded, std::string(room.message()))
                        : Refuse(Refusal::kInsufficientStorage, std::string(room.message())));
    }
  }
  auto call = std::make_shared<Call>();
  call->route = route;
  call->params = std::move(params);
  call->caller = caller;
  call->durable_at_arrival = deps_.store_target_sequence->load(std::memory_order_acquire);
  call->request = std::move(head);
  admission->call = std::move(call);
  admission->started = started;
  admission->metrics = metrics;
  return admission;
}

void Api::Handle(std::shared_ptr<Admission> admission, std::string body,
                 std::optional<UploadedFile> upload, Respond respond) {
  OCX_ASSERT(admission != nullptr);
  CallPtr call = std::move(admission->call);
  RouteMetrics* metrics = admission->metrics;
  const auto started = admission->started;
  call->sink = [metrics, started, respond = std::move(respond)](HttpResponse response) {
    metrics->by_class[std::clamp(response.status / 100, 1, 5)]->Add();
    metrics->latency->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    respond(std::move(response));
  };
  call->request.body = std::move(body);
  call->request.upload = std::move(upload);
  Dispatch(call);
}

void Api::Handle(HttpRequest request, Respond respond) {
  std::string body = std::move(request.body);
  std::optional<UploadedFile> upload = std::move(request.upload);
  request.body.clear();
  request.upload.reset();
  if (!request.content_length) request.content_length = body.size();
  HttpResponse refusal;
  std::shared_ptr<Admission> admission = Admit(std::move(request), &refusal);
  if (!admission) return respond(std::move(refusal));
  if (body.size() > admission->body_limit) {
    return respond(Refuse(Refusal::kBodyTooLarge));
  }
  Handle(std::move(admission), std::move(body), std::move(upload), std::move(respond));
}

void Api::Dispatch(const CallPtr& call) {
  Guarded(call, call->route->pattern.c_str(), [&] { call->route->handler(*this, call); });
}

void Api::Submit(const CallPtr& call, core::CommandBody command,
                 std::function<HttpResponse(const core::Acked&)> reply) {
  SubmitRaw(call, std::move(command), [call, reply = std::move(reply)](const core::Acked& acked) {
    Guarded(call, "an answer", [&] { call->Respond(reply(acked)); });
  });
}

bool Api::SubmitRaw(const CallPtr& call, core::CommandBody command, core::AckCallback done) {
  const absl::Status submitted = deps_.gateway->Submit(std::move(command), std::move(done));
  if (submitted.ok()) return true;
  if (submitted.code() == absl::StatusCode::kInvalidArgument) {
    call->Respond(Refuse(Refusal::kInvalidText, "Text fields must be valid UTF-8."));
  } else {
    call->Respond(Refuse(Refusal::kUnavailable, "The exchange is not accepting commands."));
  }
  return false;
}

void Api::ReadStore(const CallPtr& call, std::function<HttpResponse()> read) {
  ReadStoreAt(call, call->durable_at_arrival, std::move(read));
}

void Api::ReadStoreAt(const CallPtr& call, uint64_t sequence, std::function<HttpResponse()> read) {
  store::Store* store = deps_.store;
  const bool posted = workers_.TryPost([call, sequence, store, read = std::move(read)] {
    Guarded(call, "a store read", [&] {
      if (store->last_projected_sequence() < sequence && !store->Flush().ok()) {
        return call->Respond(Refuse(Refusal::kUnavailable, "The query store stopped."));
      }
      call->Respond(read());
    });
  });
  if (!posted) call->Respond(Refuse(Refusal::kUnavailable, "The exchange is busy; retry shortly."));
}

void Api::OnWorker(const CallPtr& call, std::function<HttpResponse()> work) {
  const bool posted = workers_.TryPost([call, work = std::move(work)] {
    Guarded(call, "a worker task", [&] { call->Respond(work()); });
  });
  if (!posted) call->Respond(Refuse(Refusal::kUnavailable, "The exchange is busy; retry shortly."));
}

int64_t Api::ChargeMessage(const Caller& caller, const std::string& remote_address) {
  const int64_t now = deps_.clock->NowMicros();
  if (caller) return account_limiter_.Acquire(caller->id, now);
  return anonymous_limiter_.Acquire(AddressKey(remote_address), now);
}

int64_t Api::ChargeMachine(core::MachineId machine) {
  // Machines share the account limiter's buckets under keys no account id can have.
  return account_limiter_.Acquire((uint64_t{1} << 63) | machine, deps_.clock->NowMicros());
}

}  // namespace ocx::api
