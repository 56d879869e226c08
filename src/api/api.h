// The exchange's API: routes, authentication, authorization, validation and JSON, for HTTP
// requests and WebSocket sessions (docs/api.md). Independent of Boost.Beast: http_server.cc
// hands it parsed requests and connections.
//
// A request is handled on the I/O thread that read it as far as it can without blocking:
// parse, authenticate, rate-limit, validate, build a core command, Submit it to the
// sequencer. The reply is sent from the sequencer's durable callback (acknowledged means
// durable). Reads of the query store and blob files run on a WorkerPool, after waiting for
// the store to project every command that was durable when the request arrived (a client
// reads its own writes).
//
// Thread-safety: Handle and OpenWebSocket may be called from any thread, concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/api/auth.h"
#include "src/api/blob_store.h"
#include "src/api/http_types.h"
#include "src/api/market_data.h"
#include "src/api/metrics.h"
#include "src/api/rate_limiter.h"
#include "src/api/server_config.h"
#include "src/api/web_assets.h"
#include "src/api/worker_pool.h"
#include "src/base/clock.h"
#include "src/server/sequencer.h"
#include "src/store/store.h"

namespace ocx::api {

class OfferIndex;  // src/api/offers.h

// The WebSocket side of a connection, implemented by the server. Thread-safe.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues a text message (never blocks; over the outbound bound the connection closes).
  virtual void SendText(std::shared_ptr<const std::string> text) = 0;
  // Sends a close frame with this reason and ends the connection.
  virtual void Close(std::string reason) = 0;
};

// What the API does with one WebSocket connection's messages.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void OnOpen() = 0;
  virtual void OnMessage(std::string text) = 0;
  virtual void OnClose() = 0;
};

struct ApiDeps {
  server::Sequencer* sequencer = nullptr;
  store::Store* store = nullptr;
  BlobStore* blobs = nullptr;
  IdentityRegistry* identities = nullptr;
  MarketData* market_data = nullptr;
  MetricsRegistry* metrics = nullptr;
  const base::Clock* clock = nullptr;  // For rate limits.
  ServerConfig config;
  core::ExchangeConfig exchange;  // Markets, as the sequencer's core has them.
  // The last durable command handed to the query store. A store read waits until the store
  // has projected what this was when the request arrived. It advances before the command's
  // stream messages go out, so a client that saw an event and then reads sees its effects.
  const std::atomic<uint64_t>* store_target_sequence = nullptr;
  // The dashboard's files, served at "/" and "/assets/..."; null when they were not built
  // (then `web_unavailable` says why, and "/" answers 404 dashboard_not_built).
  const WebAssets* web = nullptr;
  std::string web_unavailable;
  // Where the bootstrap operator's token is kept (ExchangeServer::operator_token_path); a
  // rotation of that operator's token rewrites it. Empty: no such file.
  std::string operator_token_path;
};

// One route of the table that both dispatch and /openapi.json come from.
struct RouteInfo {
  std::string method;
  std::string pattern;  // "/v1/orders/{id}"
  std::string summary;
  std::string auth;  // "none", "account", "operator", "machine"
  int success_status = 200;  // What a success answers (OpenAPI): 201 where it creates.
  bool websocket = false;
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  void Handle(HttpRequest request, Respond respond);
  // For an upgrade request on a WebSocket route: the handler for the connection, or nullptr
  // with *refusal set (the server answers it instead of upgrading).
  std::shared_ptr<WsHandler> OpenWebSocket(const HttpRequest& request,
                                           std::shared_ptr<WsConnection> connection,
                                           HttpResponse* refusal);
  // The body size limit for a request to this path (blobs get the blob limit).
  size_t BodyLimitFor(std::string_view path) const;
  // New requests are refused with 503 from now on.
  void BeginShutdown() { shutting_down_.store(true); }
  // Waits for store reads and blob work in flight.
  void StopWorkers() { workers_.Stop(); }

  static const std::vector<RouteInfo>& Routes();
  static std::string OpenApiJson();

  // ---- Used by the handlers (api.cc, api_streams.cc).
  struct Call;
  using CallPtr = std::shared_ptr<Call>;
  using Handler = void (Api::*)(const CallPtr&);

  // The route handlers (public for the route table in api.cc; call Handle instead).
  void Healthz(const CallPtr& call);
  void Metrics(const CallPtr& call);
  void OpenApi(const CallPtr& call);
  void CreateAccount(const CallPtr& call);
  void ListAccounts(const CallPtr& call);
  void GetAccount(const CallPtr& call);
  void GetMe(const CallPtr& call);
  void RotateToken(const CallPtr& call);
  void LedgerSummary(const CallPtr& call);
  void DepositTo(const CallPtr& call);
  void WithdrawFrom(const CallPtr& call);
  void AccountLedger(const CallPtr& call);
  void AccountStatement(const CallPtr& call);
  void ListMarkets(const CallPtr& call);
  void MarketBook(const CallPtr& call);
  void MarketTrades(const CallPtr& call);
  void PlaceOrder(const CallPtr& call);
  void ListOrders(const CallPtr& call);
  void GetOrder(const CallPtr& call);
  void CancelOrder(const CallPtr& call);
  void ReplaceOrder(const CallPtr& call);
  void RegisterMachine(const CallPtr& call);
  void ListMachines(const CallPtr& call);
  void GetMachine(const CallPtr& call);
  void ListOffers(const CallPtr& call);
  void ListLeases(const CallPtr& call);
  void GetLease(const CallPtr& call);
  void LeaseUsage(const CallPtr& call);
  void AssignTask(const CallPtr& call);
  void GetTask(const CallPtr& call);
  void SubmitJob(const CallPtr& call);
  void ListJobs(const CallPtr& call);
  void GetJob(const CallPtr& call);
  void CancelJob(const CallPtr& call);
  void ReleaseLease(const CallPtr& call);
  void ReclaimLease(const CallPtr& call);
  void UploadBlob(const CallPtr& call);
  void PutBlob(const CallPtr& call);
  void GetBlob(const CallPtr& call);
  void WebSocketOnly(const CallPtr& call);

 private:
  friend class StreamHandler;
  friend class AgentHandler;

  bool Authenticate(const CallPtr& call);
  // GET of a path no route has: the dashboard's files.
  void ServeDashboard(const CallPtr& call);
  void RespondAccount(const CallPtr& call, uint64_t id);
  bool RequireOperator(const CallPtr& call);
  bool ParseBody(const CallPtr& call, nlohmann::json* body);
  // Runs `read` on the worker pool once the store has every command that was acknowledged
  // when the request arrived (read-your-writes).
  void ReadStore(const CallPtr& call, std::function<HttpResponse()> read);
  // Runs `work` on the worker pool (blob files).
  void OnWorker(const CallPtr& call, std::function<HttpResponse()> work);
  // Submits a command; `reply` builds the response from the durable acknowledgement.
  void SubmitCommand(const CallPtr& call, core::CommandBody command,
                     std::function<HttpResponse(const server::Acked&)> reply);

  ApiDeps deps_;
  RateLimiter account_limiter_;
  RateLimiter ip_limiter_;
  WorkerPool workers_;
  std::atomic<bool> shutting_down_{false};
  struct RouteMetrics;
  std::vector<std::unique_ptr<RouteMetrics>> route_metrics_;  // Per Routes() index, + 2.
  std::unique_ptr<OfferIndex> offers_;  // GET /v1/offers.
  Counter* orders_placed_ = nullptr;
  Counter* orders_refused_ = nullptr;
};

// {"error":{"code":..,"message":..}} with this status.
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);
HttpResponse JsonResponse(int status, const nlohmann::json& body);
// Reads an order request body (docs/api.md); nullopt with *error set when it is malformed.
// Shared by POST /v1/orders and the WebSocket order entry.
std::optional<core::PlaceOrder> ParseOrder(const nlohmann::json& body, core::AccountId actor,
                                           HttpResponse* error);
bool ValidIdempotencyKey(std::string_view key);
// Parses discovery-query constraints (docs/formats/query.md) into their canonical text; false
// with *error (400 invalid_constraints, with the column) when they are not a valid query.
bool CanonicalConstraints(const std::string& text, std::string* canonical, HttpResponse* error);
// Reads a job request body (docs/formats/job.md); nullopt with *error set when malformed.
std::optional<core::SubmitJob> ParseJob(const nlohmann::json& body, core::AccountId actor,
                                        HttpResponse* error);
// A client order id for an order placed without an Idempotency-Key: a random per-process
// prefix and a counter (unique without a system call per order).
std::string AutoClientOrderId();
// The answer to an accepted order: the order as the command's events left it, its fills.
nlohmann::json PlacedOrderJson(const core::PlaceOrder& command, const server::Acked& acked);
// The same answer as PlacedOrderJson(...).dump(), byte for byte, written without building it.
std::string PlacedOrderBody(const core::PlaceOrder& command, const server::Acked& acked);
// HTTP status for a core/engine reason code.
int StatusForReason(std::string_view code);

}  // namespace ocx::api
