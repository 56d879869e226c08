// The API's WebSocket endpoints: /v1/stream (market data, my orders and leases, order entry)
// and /v1/agent (a provider machine's channel). docs/api.md specifies the messages.
//
// Every message is parsed strictly (ParseJsonMessage) and read through Fields, so a field of
// the wrong type, a number out of range or an unknown field is an error message, never an
// exception; every message is charged to the rate limit of its account (or machine, or the
// connection's address when anonymous).
#include <atomic>
#include <set>

#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/base/decimal.h"
#include "src/protocol/identity.h"

namespace ocx::api {
namespace {

constexpr size_t kChannelsPerConnectionMax = 64;
constexpr size_t kTokenBytesMax = 256;
constexpr size_t kSignatureBytesMax = 256;

std::shared_ptr<const std::string> Text(const Json& json) {
  return std::make_shared<const std::string>(base::DumpJson(json));
}

Json ErrorMessage(Refusal refusal, std::string_view message = {}, const Json* id = nullptr) {
  Json m{{"type", "error"}, {"error", RefusalJson(refusal, message)}};
  if (id != nullptr && !id->is_null()) m["id"] = *id;
  return m;
}

// The error message for a refusal built as an HTTP answer (its body's "error" object).
Json ErrorMessage(const HttpResponse& refusal, const Json* id) {
  Json body;
  Json m{{"type", "error"}};
  if (base::ParseJsonStrict(refusal.body, &body).ok() && body.is_object() &&
      body.contains("error")) {
    m["error"] = body["error"];
  } else {
    m["error"] = RefusalJson(Refusal::kInvalidMessage);
  }
  if (id != nullptr && !id->is_null()) m["id"] = *id;
  return m;
}

// The refusal of a command the gateway did not take: text the journal cannot hold, or the
// sequencer stopping.
Json NotSubmitted(const absl::Status& status, const Json* id) {
  return ErrorMessage(status.code() == absl::StatusCode::kInvalidArgument ? Refusal::kInvalidText
                                                                          : Refusal::kUnavailable,
                      {}, id);
}

// Runs a message handler; what it throws becomes an internal_error message.
template <typename F>
void GuardedMessage(const std::function<void(const Json&)>& reply, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    const std::string id = LogIncident(std::string("a WebSocket message threw: ") + e.what());
    reply(ErrorMessage(Refusal::kInternalError,
                       "The exchange failed to handle this message (incident " + id + ")."));
  }
}

void WebSocketOnly(Api&, const CallPtr& call) { call->Respond(Refuse(Refusal::kUpgradeRequired)); }

}  // namespace

// One /v1/stream connection. OnMessage runs on the connection's strand (one at a time);
// Deliver runs on the sequencer's delivery thread and only forwards to the connection.
class StreamHandler : public WsHandler,
                      public StreamSink,
                      public std::enable_shared_from_this<StreamHandler> {
 public:
  // `token_hash`: of the token the upgrade request carried and `caller` was found by (empty
  // and nullopt for an anonymous connection).
  StreamHandler(Api* api, std::weak_ptr<WsConnection> connection, Caller caller,
                std::string token_hash, std::string remote_address)
      : api_(api),
        connection_(std::move(connection)),
        caller_(caller),
        token_hash_(std::move(token_hash)),
        remote_address_(std::move(remote_address)),
        last_message_(std::chrono::steady_clock::now()) {}

  void OnOpen() override {}

  void OnMessage(std::string text) override {
    last_message_ = std::chrono::steady_clock::now();
    GuardedMessage([this](const Json& m) { Reply(m); }, [&] { HandleMessage(text); });
  }

  void OnClose() override { api_->deps().market_data->UnsubscribeAll(this); }

  bool IdleExpired(std::chrono::steady_clock::time_point now) override {
    // An anonymous connection that follows nothing and says nothing is only taking a slot.
    const auto idle = std::chrono::seconds(api_->deps().config.stream_idle_s);
    return !caller_ && channels_.empty() && now - last_message_ > idle;
  }

  void Deliver(std::shared_ptr<const std::string> message) override {
    if (auto connection = connection_.lock()) connection->SendText(std::move(message));
  }

  // The account's token was replaced: private streams end with the session (any thread;
  // once, though the orders and the leases channel are both revoked).
  void Revoke() override {
    if (revoked_.exchange(true)) return;
    Deliver(Text(ErrorMessage(Refusal::kTokenRevoked)));
    if (auto connection = connection_.lock()) connection->Close("token revoked");
  }

 private:
  void Reply(const Json& json) { Deliver(Text(json)); }

  void HandleMessage(const std::string& text) {
    if (api_->ChargeMessage(caller_, remote_address_) > 0) {
      return Reply(ErrorMessage(Refusal::kRateLimited, "Too many messages; slow down."));
    }
    HttpResponse error;
    const auto message = ParseJsonMessage(text, &error);
    if (!message) return Reply(ErrorMessage(error, nullptr));
    const auto op_it = message->find("op");
    if (op_it == message->end() || !op_it->is_string()) {
      return Reply(ErrorMessage(Refusal::kInvalidMessage,
                                "Messages are JSON objects with an \"op\" string."));
    }
    const std::string op = op_it->get<std::string>();
    if (op == "auth") return Authenticate(*message);
    if (op == "ping") return Reply(Json{{"type", "pong"}});
    if (op == "place_order" || op == "cancel_order") return EnterOrder(op, *message);
    if (op == "subscribe" || op == "unsubscribe") return Subscription(op, *message);
    Reply(ErrorMessage(Refusal::kInvalidMessage,
                       "op is subscribe, unsubscribe, auth, ping, place_order or cancel_order."));
  }

  void Authenticate(const Json& message) {
    Fields f(message);
    f.Str("op", true);
    const std::string token = f.Str("token", true, kTokenBytesMax);
    if (!f.Finish()) return Reply(ErrorMessage(f.Error(), nullptr));
    caller_ = api_->deps().identities->FindByToken(token);
    if (!caller_) {
      token_hash_.clear();
      return Reply(ErrorMessage(Refusal::kUnauthenticated, "The API token is not valid."));
    }
    token_hash_ = protocol::TokenHash(token);
    Reply(Json{{"type", "authenticated"}, {"account", caller_->id}});
  }

  void Subscription(const std::string& op, const Json& message) {
    Fields f(message);
    f.Str("op", true);
    const std::string channel = f.Str("channel", true);
    if (!f.Finish()) return Reply(ErrorMessage(f.Error(), nullptr));
    std::string internal;
    const bool private_channel = channel == "orders" || channel == "leases";
    if (private_channel) {
      if (!StillAuthenticated()) {
        return Reply(ErrorMessage(Refusal::kUnauthenticated,
                                  "Private channels need a token: send {\"op\":\"auth\"} first."));
      }
      internal = channel == "orders" ? MarketData::OrdersChannel(caller_->id)
                                     : MarketData::LeasesChannel(caller_->id);
    } else if (api_->deps().market_data->IsPublicChannel(channel)) {
      internal = channel;
    } else {
      return Reply(ErrorMessage(Refusal::kUnknownChannel));
    }
    if (op == "unsubscribe") {
      channels_.erase(internal);
      api_->deps().market_data->Unsubscribe(internal, this);
      return Reply(Json{{"type", "unsubscribed"}, {"channel", channel}});
    }
    if (!channels_.contains(internal) && channels_.size() >= kChannelsPerConnectionMax) {
      return Reply(ErrorMessage(Refusal::kTooManyChannels));
    }
    channels_.insert(internal);
    Reply(Json{{"type", "subscribed"}, {"channel", channel}});
    api_->deps().market_data->Subscribe(internal, shared_from_this());
    // The token may have been replaced between the check above and the subscription, after
    // the rotation revoked the channel's subscribers: the registry changes before the streams
    // hear of it, so looking again now catches that.
    if (private_channel && !StillAuthenticated()) {
      channels_.erase(internal);
      api_->deps().market_data->Unsubscribe(internal, this);
      Revoke();
    }
  }

  // Whether the token this connection authenticated with is still the account's token; a
  // replaced one signs the connection out.
  bool StillAuthenticated() {
    if (!caller_) return false;
    if (api_->deps().identities->FindByTokenHash(token_hash_)) return true;
    caller_.reset();
    token_hash_.clear();
    return false;
  }

  // Order entry over the stream: the same validation, rate limit and durability as
  // POST/DELETE /v1/orders; the answer carries the request's "id".
  void EnterOrder(const std::string& op, const Json& message) {
    Fields f(message);
    f.Str("op", true);
    const Json* id_field = f.Any("id");
    const Json id = id_field != nullptr ? *id_field : Json();
    if (!StillAuthenticated()) {
      return Reply(ErrorMessage(Refusal::kUnauthenticated,
                                "Order entry needs a token: send auth first.", &id));
    }
    core::CommandBody command;
    std::optional<core::PlaceOrder> placed;
    if (op == "place_order") {
      const Json* order = f.Object("order", true);
      const std::string key = f.Str("idempotency_key", false, 64);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      HttpResponse error;
      placed = ParseOrder(*order, caller_->id, &error);
      if (!placed) return Reply(ErrorMessage(error, &id));
      if (!key.empty() && !ValidIdempotencyKey(key)) {
        return Reply(ErrorMessage(Refusal::kInvalidIdempotencyKey, {}, &id));
      }
      placed->client_order_id = key.empty() ? AutoClientOrderId() : key;
      command = *placed;
    } else {
      const uint64_t order = f.Id("order", true);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      command = core::CancelOrder{caller_->id, static_cast<core::OrderId>(order)};
    }
    std::weak_ptr<StreamHandler> weak = weak_from_this();
    const absl::Status submitted = api_->deps().gateway->Submit(
        std::move(command), [weak, id, placed](const core::Acked& acked) {
          const auto self = weak.lock();
          if (!self) return;
          GuardedMessage([&](const Json& m) { self->Reply(m); },
                         [&] {
                           const core::CommandResult& result = acked.output.result;
                           if (!result.accepted) {
                             Json error = ErrorMessage(result.refusal, result.message, &id);
                             if (result.order != 0) error["order"] = result.order;
                             return self->Reply(error);
                           }
                           Json ack = placed ? PlacedOrderJson(*placed, acked)
                                             : Json{{"sequence", acked.sequence}};
                           ack["type"] = placed ? "order_placed" : "order_cancelled";
                           if (!id.is_null()) ack["id"] = id;
                           self->Reply(ack);
                         });
        });
    if (!submitted.ok()) Reply(NotSubmitted(submitted, &id));
  }

  Api* api_;
  std::weak_ptr<WsConnection> connection_;
  Caller caller_;           // Strand only.
  std::string token_hash_;  // Of caller_'s token. Strand only.
  const std::string remote_address_;
  std::set<std::string> channels_;                      // Strand only.
  std::chrono::steady_clock::time_point last_message_;  // Strand only.
  std::atomic<bool> revoked_{false};
};

// One /v1/agent connection: challenge-response with the machine's Ed25519 key, then
// heartbeats, signed usage reports and lease ends in; lease assignments out.
class AgentHandler : public WsHandler,
                     public StreamSink,
                     public std::enable_shared_from_this<AgentHandler> {
 public:
  AgentHandler(Api* api, std::weak_ptr<WsConnection> connection, std::string remote_address)
      : api_(api),
        connection_(std::move(connection)),
        remote_address_(std::move(remote_address)),
        nonce_(protocol::RandomHex(32)) {}

  void OnOpen() override { Reply(Json{{"type", "challenge"}, {"nonce", nonce_}}); }

  void OnMessage(std::string text) override {
    GuardedMessage([this](const Json& m) { Reply(m); }, [&] { HandleMessage(text); });
  }

  void OnClose() override { api_->deps().market_data->UnsubscribeAll(this); }

  void Deliver(std::shared_ptr<const std::string> message) override {
    if (auto connection = connection_.lock()) connection->SendText(std::move(message));
  }

 private:
  void Reply(const Json& json) { Deliver(Text(json)); }

  void HandleMessage(const std::string& text) {
    // Before the challenge is answered the address pays; after, the machine.
    const int64_t wait = machine_ == 0 ? api_->ChargeMessage(std::nullopt, remote_address_)
                                       : api_->ChargeMachine(machine_);
    if (wait > 0) {
      return Reply(ErrorMessage(Refusal::kRateLimited, "Too many messages from this machine."));
    }
    HttpResponse error;
    const auto message = ParseJsonMessage(text, &error);
    const auto type_it = message ? message->find("type") : Json::const_iterator();
    const bool typed = message && type_it != message->end() && type_it->is_string();
    if (typed && machine_ == 0) return Authenticate(type_it->get<std::string>(), *message);
    if (!message) {
      Reply(ErrorMessage(error, nullptr));
    } else if (!typed) {
      Reply(ErrorMessage(Refusal::kInvalidMessage,
                         "Messages are JSON objects with a \"type\" string."));
    }
    if (!typed) {
      // Before the challenge is answered there is one right message: anything else ends the
      // connection, so that a client without a key cannot hold a slot with malformed ones.
      if (machine_ == 0) CloseUnauthenticated();
      return;
    }
    const std::string type = type_it->get<std::string>();
    Fields f(*message);
    f.Str("type", true);
    const Json* id_field = f.Any("id");
    const Json id = id_field != nullptr ? *id_field : Json();
    auto invalid = [&](std::string_view why) {
      Reply(ErrorMessage(Refusal::kInvalidMessage, why, &id));
    };
    if (type == "heartbeat") {
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      return Submit(core::Heartbeat{machine_}, id);
    }
    if (type == "usage") {
      core::ReportUsage usage;
      usage.machine = machine_;
      usage.lease = f.Id("lease", true);
      usage.wall_seconds = f.Int("wall_seconds", true, 0, 0, INT64_MAX);
      usage.cpu_seconds = f.Int("cpu_seconds", true, 0, 0, INT64_MAX);
      usage.peak_memory_mib = f.Int("peak_memory_mib", true, 0, 0, INT64_MAX);
      usage.gpu_seconds = f.Int("gpu_seconds", true, 0, 0, INT64_MAX);
      const std::string signature = f.Str("signature", true, kSignatureBytesMax);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      const protocol::UsageFigures figures{usage.lease, usage.wall_seconds, usage.cpu_seconds,
                                           usage.peak_memory_mib, usage.gpu_seconds};
      if (!protocol::VerifySignatureHex(public_key_, protocol::UsageMessage(machine_, figures),
                                        signature)) {
        return Reply(ErrorMessage(Refusal::kBadSignature,
                                  "The usage report's signature does not verify with this "
                                  "machine's key; nothing was recorded.",
                                  &id));
      }
      return Submit(usage, id);
    }
    if (type == "end_lease") {
      const uint64_t lease = f.Id("lease", true);
      const std::string reason = f.Str("reason", true);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      if (reason != "finished" && reason != "reclaimed") {
        return invalid("end_lease's reason is finished or reclaimed.");
      }
      return Submit(core::EndLease{0, machine_, lease,
                                   reason == "finished" ? core::LeaseEndReason::kFinished
                                                        : core::LeaseEndReason::kReclaimed},
                    id);
    }
    if (type == "task_result") {
      const uint64_t lease = f.Id("lease", true);
      const Json* result = f.Object("result", true);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      return Submit(core::FinishTask{machine_, lease, base::DumpJson(*result)}, id);
    }
    if (type == "task_log") {
      // Live output for the buyer: relayed, not journaled (the whole streams come back as
      // blobs in the task result).
      const uint64_t lease = f.Id("lease", true);
      const std::string stream = f.Str("stream", true);
      const std::string data = f.Str("data", true, api_->deps().config.ws_message_bytes_max);
      if (!f.Finish()) return Reply(ErrorMessage(f.Error(), &id));
      if (stream != "stdout" && stream != "stderr") {
        return invalid("task_log's stream is stdout or stderr.");
      }
      const bool sent = api_->deps().market_data->SendToBuyer(
          lease, machine_,
          base::DumpJson(
              Json{{"type", "task_log"}, {"lease", lease}, {"stream", stream}, {"data", data}}));
      if (!sent) {
        return Reply(ErrorMessage(Refusal::kUnknownLease,
                                  "This machine has no active lease with this id.", &id));
      }
      return;
    }
    invalid("type is heartbeat, usage, end_lease, task_result or task_log.");
  }

  void CloseUnauthenticated() {
    if (auto connection = connection_.lock()) connection->Close("unauthenticated");
  }

  void Authenticate(const std::string& type, const Json& message) {
    auto refuse = [&](std::string_view why) {
      Reply(ErrorMessage(Refusal::kUnauthenticated, why));
      CloseUnauthenticated();
    };
    Fields f(message);
    f.Str("type", true);
    const uint64_t machine = f.Id("machine", true);
    const std::string signature = f.Str("signature", true, kSignatureBytesMax);
    if (type != "auth" || !f.Finish()) {
      return refuse("First answer the challenge: {\"type\":\"auth\",\"machine\",\"signature\"}.");
    }
    const auto identity = api_->deps().identities->FindMachine(machine);
    if (!identity || identity->public_key_hex.empty() ||
        !protocol::VerifySignatureHex(identity->public_key_hex,
                                      protocol::AgentAuthMessage(machine, nonce_), signature)) {
      return refuse("The signature does not prove this machine's key.");
    }
    machine_ = machine;
    public_key_ = identity->public_key_hex;
    Json leases = Json::array();
    for (const core::LeaseStarted& l : api_->deps().market_data->ActiveLeases(machine)) {
      leases.push_back({{"lease", l.lease},
                        {"buyer", l.buyer},
                        {"market", l.market},
                        {"slots", l.slots},
                        {"price", base::FormatMicros(l.price)},
                        {"max_hours", l.max_hours},
                        {"start", l.start}});
      if (auto spec = api_->deps().market_data->OpenTaskSpec(l.lease)) {
        leases.back()["task"] = TaskDocumentJson(*spec);
      }
    }
    Reply(Json{{"type", "welcome"}, {"machine", machine}, {"leases", leases}});
    api_->deps().market_data->Subscribe(MarketData::MachineChannel(machine), shared_from_this());
  }

  void Submit(core::CommandBody command, const Json& id) {
    std::weak_ptr<AgentHandler> weak = weak_from_this();
    const absl::Status submitted =
        api_->deps().gateway->Submit(std::move(command), [weak, id](const core::Acked& acked) {
          const auto self = weak.lock();
          if (!self) return;
          GuardedMessage([&](const Json& m) { self->Reply(m); },
                         [&] {
                           const core::CommandResult& result = acked.output.result;
                           if (!result.accepted) {
                             return self->Reply(ErrorMessage(result.refusal, result.message, &id));
                           }
                           Json ack{{"type", "ack"}, {"sequence", acked.sequence}};
                           if (!id.is_null()) ack["id"] = id;
                           for (const auto& event : acked.output.events) {
                             if (const auto* usage = std::get_if<core::UsageRecorded>(&event)) {
                               ack["billed_total"] = base::FormatMicros(usage->billed_total);
                             }
                           }
                           self->Reply(ack);
                         });
        });
    if (!submitted.ok()) Reply(NotSubmitted(submitted, &id));
  }

  Api* api_;
  std::weak_ptr<WsConnection> connection_;
  const std::string remote_address_;
  const std::string nonce_;
  core::MachineId machine_ = 0;  // 0 until authenticated. Strand only.
  std::string public_key_;       // Strand only.
};

std::shared_ptr<WsHandler> Api::OpenWebSocket(const HttpRequest& request,
                                              std::shared_ptr<WsConnection> connection,
                                              HttpResponse* refusal) {
  if (shutting_down_.load()) {
    *refusal = Refuse(Refusal::kUnavailable, "The exchange is shutting down.");
    return nullptr;
  }
  if (request.path != "/v1/stream" && request.path != "/v1/agent") {
    *refusal = Refuse(Refusal::kNotFound, "No WebSocket endpoint has this path.");
    return nullptr;
  }
  Caller caller;
  if (!Authenticate(request, &caller, refusal)) return nullptr;
  // Opening a connection costs one request of the caller's (or the address's) budget.
  if (const int64_t wait = ChargeMessage(caller, request.remote_address); wait > 0) {
    *refusal = Refuse(Refusal::kRateLimited);
    refusal->headers.emplace_back("Retry-After", std::to_string(RetryAfterSeconds(wait)));
    return nullptr;
  }
  if (request.path == "/v1/stream") {
    std::string token_hash;
    if (caller) {
      const std::string& authorization = request.Header("authorization");
      token_hash = protocol::TokenHash(std::string_view(authorization).substr(7));
    }
    return std::make_shared<StreamHandler>(this, connection, caller, std::move(token_hash),
                                           request.remote_address);
  }
  return std::make_shared<AgentHandler>(this, connection, request.remote_address);
}

void AddStreamRoutes(std::vector<Route>* routes) {
  routes->insert(routes->end(),
                 {
                     {"GET", "/v1/stream", "WebSocket: market data and my orders and leases",
                      Auth::kNone, 101, Body::kNone, true, &WebSocketOnly},
                     {"GET", "/v1/agent", "WebSocket: a provider machine's agent channel",
                      Auth::kMachine, 101, Body::kNone, true, &WebSocketOnly},
                 });
}

}  // namespace ocx::api
