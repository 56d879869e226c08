// The exchange's API: routes, authentication, authorization, validation and JSON, for HTTP
// requests and WebSocket sessions (docs/api.md). Independent of Boost.Beast and of the server:
// http_server.cc hands it parsed requests and connections, and it reaches the core only
// through core::CommandGateway (commands) and the views published after each batch
// (core::MachineDirectory), never the lock the sequencer applies commands under.
//
// A request goes through two steps:
// - Admit, as soon as its header has arrived (before its body is read): routing, 404/405,
//   authentication, the route's Auth requirement, rate limits (per account, or per address
//   when anonymous), the declared body size against the route's limit, and for uploads the
//   account's blob quota and the disk's free-space watermark. A refused request costs no
//   more than its header.
// - Handle, with the body: the route's handler parses, validates, builds a core command and
//   Submits it (the answer goes out once it is durable), or reads the query store on the
//   worker pool, or reads a view.
// One exception boundary: whatever a handler, a reply built on the delivery thread, a store
// read or a WebSocket message throws becomes a 500 internal_error (or an error message) with
// a logged incident id; the request is answered once and the exchange goes on.
//
// The routes live in one file per resource (accounts.cc, orders.cc, machines.cc, leases.cc,
// jobs.cc, blobs.cc, markets.cc, offers.cc, operations.cc, streams.cc); each registers its
// routes with their Auth requirement. Read-side authorization rules: authorization.h.
//
// Thread-safety: Admit, Handle and OpenWebSocket may be called from any thread, concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/api/authorization.h"
#include "src/api/blob_store.h"
#include "src/api/errors.h"
#include "src/api/http_types.h"
#include "src/api/identity_registry.h"
#include "src/api/market_data.h"
#include "src/api/metrics.h"
#include "src/api/rate_limiter.h"
#include "src/api/server_config.h"
#include "src/api/web_assets.h"
#include "src/api/worker_pool.h"
#include "src/base/clock.h"
#include "src/core/gateway.h"
#include "src/core/machine_directory.h"
#include "src/store/store.h"

namespace ocx::api {

class OfferIndex;  // src/api/offer_index.h

// The WebSocket side of a connection, implemented by the server. Thread-safe.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues a text message (never blocks; over the outbound bounds the connection closes).
  virtual void SendText(std::shared_ptr<const std::string> text) = 0;
  // Sends a close frame with this reason and ends the connection.
  virtual void Close(std::string reason) = 0;
};

// What the API does with one WebSocket connection's messages. The server calls it on the
// connection's strand, one call at a time.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void OnOpen() = 0;
  virtual void OnMessage(std::string text) = 0;
  virtual void OnClose() = 0;
  // Asked every few seconds: true ends the connection (an idle anonymous stream).
  virtual bool IdleExpired(std::chrono::steady_clock::time_point /*now*/) { return false; }
};

struct ApiDeps {
  core::CommandGateway* gateway = nullptr;
  const core::MachineDirectory* machines = nullptr;
  store::Store* store = nullptr;
  BlobStore* blobs = nullptr;
  IdentityRegistry* identities = nullptr;
  MarketData* market_data = nullptr;
  MetricsRegistry* metrics = nullptr;
  const base::Clock* clock = nullptr;  // For rate limits.
  ServerConfig config;
  core::ExchangeConfig exchange;  // Markets, as the core has them.
  // The last durable command handed to the query store. A store read waits until the store
  // has projected what this was when the request arrived. It advances before the command's
  // stream messages go out, so a client that saw an event and then reads sees its effects.
  const std::atomic<uint64_t>* store_target_sequence = nullptr;
  // The dashboard's files, served at "/" and "/assets/..."; null when they were not built
  // (then `web_unavailable` says why, and "/" answers 404 dashboard_not_built).
  const WebAssets* web = nullptr;
  std::string web_unavailable;
  // Where the bootstrap operator's token is kept; a rotation of that operator's token
  // rewrites it. Empty: no such file.
  std::string operator_token_path;
};

// Who may call a route at all (authorization.h has the rules about which resource).
enum class Auth {
  kNone,      // Anyone; a token, when given, must be valid.
  kAccount,   // Any account's API token.
  kOperator,  // An operator's API token.
  kMachine,   // A machine's Ed25519 key (the agent channel's challenge).
};
std::string_view AuthName(Auth auth);

// What a route's request carries.
enum class Body {
  kNone,  // Nothing (at most a few bytes are read and ignored).
  kJson,  // A JSON object, at most ServerConfig::body_bytes_max.
  kBlob,  // Raw bytes streamed to a file, at most ServerConfig::blob_bytes_max.
};

class Api;
struct Call;
using CallPtr = std::shared_ptr<Call>;
using Handler = void (*)(Api& api, const CallPtr& call);

// One route of the table that both dispatch and /openapi.json come from.
struct Route {
  std::string method;
  std::string pattern;  // "/v1/orders/{id}"
  std::string summary;
  Auth auth = Auth::kNone;
  int success_status = 200;  // What a success answers (OpenAPI): 201 where it creates.
  Body body = Body::kNone;
  bool websocket = false;
  Handler handler = nullptr;
};

// The routes of each resource (one file each).
void AddOperationRoutes(std::vector<Route>* routes);  // operations.cc
void AddAccountRoutes(std::vector<Route>* routes);    // accounts.cc
void AddMarketRoutes(std::vector<Route>* routes);     // markets.cc
void AddOrderRoutes(std::vector<Route>* routes);      // orders.cc
void AddMachineRoutes(std::vector<Route>* routes);    // machines.cc
void AddOfferRoutes(std::vector<Route>* routes);      // offers.cc
void AddLeaseRoutes(std::vector<Route>* routes);      // leases.cc
void AddJobRoutes(std::vector<Route>* routes);        // jobs.cc
void AddBlobRoutes(std::vector<Route>* routes);       // blobs.cc
void AddStreamRoutes(std::vector<Route>* routes);     // streams.cc

// One request being handled.
struct Call {
  HttpRequest request;
  const Route* route = nullptr;
  std::vector<std::string> params;  // Path captures, in order.
  Caller caller;
  uint64_t durable_at_arrival = 0;

  // Answers the request. Only the first answer goes out (a handler that answered and then
  // threw is answered once); may be called from any thread.
  void Respond(HttpResponse response);
  bool answered() const { return answered_.load(); }

  std::function<void(HttpResponse)> sink;  // Set by the Api.
 private:
  std::atomic<bool> answered_{false};
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  struct Admission;
  // Step one, with the request's header only (`head` has no body): nullptr with *refusal set
  // when the request is refused already.
  std::shared_ptr<Admission> Admit(HttpRequest head, HttpResponse* refusal);
  // The most body bytes the admitted request may send.
  static uint64_t BodyLimit(const Admission& admission);
  // Where the body goes: empty for memory, else a directory to stream it into a file.
  static const std::string& BodyFileDirectory(const Admission& admission);
  // Step two, once the body has arrived (in `body`, or streamed into `upload`).
  void Handle(std::shared_ptr<Admission> admission, std::string body,
              std::optional<UploadedFile> upload, Respond respond);
  // Both steps at once (tests, the fuzz harness): the request's body is in request.body.
  void Handle(HttpRequest request, Respond respond);

  // For an upgrade request on a WebSocket route: the handler for the connection, or nullptr
  // with *refusal set (the server answers it instead of upgrading).
  std::shared_ptr<WsHandler> OpenWebSocket(const HttpRequest& request,
                                           std::shared_ptr<WsConnection> connection,
                                           HttpResponse* refusal);
  // New requests are refused with 503 from now on.
  void BeginShutdown() { shutting_down_.store(true); }
  // Waits for store reads and blob work in flight.
  void StopWorkers() { workers_.Stop(); }

  static const std::vector<Route>& Routes();
  static std::string OpenApiJson();

  // ---- For the route handlers and the WebSocket channels.
  const ApiDeps& deps() const { return deps_; }
  OfferIndex& offers() { return *offers_; }
  // Submits a command; `reply` builds the answer from the durable acknowledgement (on the
  // delivery thread; what it throws becomes a 500).
  void Submit(const CallPtr& call, core::CommandBody command,
              std::function<HttpResponse(const core::Acked&)> reply);
  // Submits a command whose acknowledgement the caller handles itself; false (the call
  // answered) when the gateway refused it.
  bool SubmitRaw(const CallPtr& call, core::CommandBody command, core::AckCallback done);
  // Runs `read` on the worker pool once the store has every command that was acknowledged
  // when the request arrived (read-your-writes).
  void ReadStore(const CallPtr& call, std::function<HttpResponse()> read);
  // The same for a store read that must include `sequence`.
  void ReadStoreAt(const CallPtr& call, uint64_t sequence, std::function<HttpResponse()> read);
  // Runs `work` on the worker pool (blob files).
  void OnWorker(const CallPtr& call, std::function<HttpResponse()> work);
  // Charges one message of a WebSocket stream to its account, or to its address when
  // anonymous: 0 when allowed, else microseconds to wait.
  int64_t ChargeMessage(const Caller& caller, const std::string& remote_address);
  // Charges one message of a machine's agent channel.
  int64_t ChargeMachine(core::MachineId machine);
  Counter& orders_placed() { return *orders_placed_; }
  Counter& orders_refused() { return *orders_refused_; }

 private:
  struct RouteMetrics;
  // The route for this method and path; *path_matched says whether another method has it.
  const Route* FindRoute(const HttpRequest& request, std::vector<std::string>* params,
                         bool* path_matched) const;
  // The account of the request's Authorization header: nullopt without one; false (with
  // *refusal) when it is not a valid token.
  bool Authenticate(const HttpRequest& request, Caller* caller, HttpResponse* refusal) const;
  uint64_t AddressKey(const std::string& remote_address) const;
  void Dispatch(const CallPtr& call);

  ApiDeps deps_;
  RateLimiter account_limiter_;
  RateLimiter anonymous_limiter_;  // Per address: anonymous requests and stream messages.
  RateLimiter signup_limiter_;     // Per address: account creation.
  WorkerPool workers_;
  std::atomic<bool> shutting_down_{false};
  std::vector<std::unique_ptr<RouteMetrics>> route_metrics_;  // Per Routes() index, + 2.
  std::unique_ptr<OfferIndex> offers_;
  Counter* orders_placed_ = nullptr;
  Counter* orders_refused_ = nullptr;
};

// ---- Shared by handlers of several resources.

// A machine as GET /v1/machines shows it.
Json MachineRecordJson(const core::MachineRecord& machine,
                       const std::vector<core::MarketConfig>& markets);
// A client order id for an order placed without an Idempotency-Key: a random per-process
// prefix and a counter (unique without a system call per order).
std::string AutoClientOrderId();
bool ValidIdempotencyKey(std::string_view key);
// Parses discovery-query constraints (docs/formats/query.md) into their canonical text; false
// with *error (400 invalid_constraints, with the column) when they are not a valid query.
bool CanonicalConstraints(const std::string& text, std::string* canonical, HttpResponse* error);
// Reads an order request body (docs/api.md); nullopt with *error set when it is malformed.
// Shared by POST /v1/orders and the WebSocket order entry.
std::optional<core::PlaceOrder> ParseOrder(const Json& body, core::AccountId actor,
                                           HttpResponse* error);
// The answer to an accepted order: the order as the command's events left it, its fills.
Json PlacedOrderJson(const core::PlaceOrder& command, const core::Acked& acked);
// The same answer as PlacedOrderJson(...).dump(), byte for byte, written without building it.
std::string PlacedOrderBody(const core::PlaceOrder& command, const core::Acked& acked);
std::string Money(int64_t micros);

}  // namespace ocx::api
