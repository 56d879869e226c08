// The API's WebSocket endpoints: /v1/stream (market data, my orders and leases) and
// /v1/agent (a provider machine's channel). docs/api.md specifies the messages.
#include <atomic>
#include <set>

#include "src/api/api.h"
#include "src/base/decimal.h"

namespace ocx::api {
namespace {

using Json = nlohmann::json;

constexpr size_t kChannelsPerConnectionMax = 64;

std::shared_ptr<const std::string> Text(const Json& json) {
  return std::make_shared<const std::string>(json.dump());
}

Json ErrorMessage(std::string_view code, std::string_view message, const Json& id = Json()) {
  Json m{{"type", "error"}, {"error", {{"code", code}, {"message", message}}}};
  if (!id.is_null()) m["id"] = id;
  return m;
}

}  // namespace

// One /v1/stream connection. OnMessage runs on the connection's strand (one at a time);
// Deliver runs on the sequencer's delivery thread and only forwards to the connection.
class StreamHandler : public WsHandler,
                      public StreamSink,
                      public std::enable_shared_from_this<StreamHandler> {
 public:
  // `token_hash`: of the token the upgrade request carried and `caller` was found by (empty
  // and nullopt for an anonymous connection).
  StreamHandler(Api* api, std::weak_ptr<WsConnection> connection,
                std::optional<AccountIdentity> caller, std::string token_hash)
      : api_(api),
        connection_(std::move(connection)),
        caller_(caller),
        token_hash_(std::move(token_hash)) {}

  void OnOpen() override {}

  void OnMessage(std::string text) override {
    const Json message = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded() || !message.is_object() || !message.contains("op") ||
        !message["op"].is_string()) {
      return Reply(ErrorMessage("invalid_message", "Messages are JSON objects with an \"op\"."));
    }
    const std::string op = message["op"].get<std::string>();
    if (op == "auth") {
      const std::string token = message.value("token", "");
      caller_ = api_->deps_.identities->FindByToken(token);
      if (!caller_) {
        token_hash_.clear();
        return Reply(ErrorMessage("unauthenticated", "The API token is not valid."));
      }
      token_hash_ = TokenHash(token);
      return Reply(Json{{"type", "authenticated"}, {"account", caller_->id}});
    }
    if (op == "ping") return Reply(Json{{"type", "pong"}});
    if (op == "place_order" || op == "cancel_order") return EnterOrder(op, message);
    if (op != "subscribe" && op != "unsubscribe") {
      return Reply(ErrorMessage(
          "invalid_message",
          "op is subscribe, unsubscribe, auth, ping, place_order or cancel_order."));
    }
    if (!message.contains("channel") || !message["channel"].is_string()) {
      return Reply(ErrorMessage("invalid_message", "subscribe and unsubscribe name a channel."));
    }
    const std::string channel = message["channel"].get<std::string>();
    std::string internal;
    const bool private_channel = channel == "orders" || channel == "leases";
    if (private_channel) {
      if (!StillAuthenticated()) {
        return Reply(ErrorMessage("unauthenticated",
                                  "Private channels need a token: send {\"op\":\"auth\"} first."));
      }
      internal = channel == "orders" ? MarketData::OrdersChannel(caller_->id)
                                     : MarketData::LeasesChannel(caller_->id);
    } else if (api_->deps_.market_data->IsPublicChannel(channel)) {
      internal = channel;
    } else {
      return Reply(ErrorMessage("unknown_channel",
                                "Channels are book:MARKET, trades:MARKET, orders and leases."));
    }
    if (op == "unsubscribe") {
      channels_.erase(internal);
      api_->deps_.market_data->Unsubscribe(internal, this);
      return Reply(Json{{"type", "unsubscribed"}, {"channel", channel}});
    }
    if (!channels_.contains(internal) && channels_.size() >= kChannelsPerConnectionMax) {
      return Reply(ErrorMessage("too_many_channels", "A connection has at most 64 channels."));
    }
    channels_.insert(internal);
    Reply(Json{{"type", "subscribed"}, {"channel", channel}});
    api_->deps_.market_data->Subscribe(internal, shared_from_this());
    // The token may have been replaced between the check above and the subscription, after
    // the rotation revoked the channel's subscribers: the registry changes before the streams
    // hear of it, so looking again now catches that.
    if (private_channel && !StillAuthenticated()) {
      channels_.erase(internal);
      api_->deps_.market_data->Unsubscribe(internal, this);
      Revoke();
    }
  }

  void OnClose() override { api_->deps_.market_data->UnsubscribeAll(this); }

  void Deliver(std::shared_ptr<const std::string> message) override {
    if (auto connection = connection_.lock()) connection->SendText(std::move(message));
  }

  // The account's token was replaced: private streams end with the session (any thread;
  // once, though the orders and the leases channel are both revoked).
  void Revoke() override {
    if (revoked_.exchange(true)) return;
    Deliver(Text(ErrorMessage("token_revoked",
                              "This account's API token was replaced; connect again with the new "
                              "one.")));
    if (auto connection = connection_.lock()) connection->Close("token revoked");
  }

 private:
  void Reply(const Json& json) { Deliver(Text(json)); }

  // Whether the token this connection authenticated with is still the account's token; a
  // replaced one signs the connection out.
  bool StillAuthenticated() {
    if (!caller_) return false;
    if (api_->deps_.identities->FindByTokenHash(token_hash_)) return true;
    caller_.reset();
    token_hash_.clear();
    return false;
  }

  // Order entry over the stream: the same validation, rate limit and durability as
  // POST/DELETE /v1/orders; the answer carries the request's "id".
  void EnterOrder(const std::string& op, const Json& message) {
    const Json id = message.contains("id") ? message["id"] : Json();
    if (!StillAuthenticated()) {
      return Reply(ErrorMessage("unauthenticated", "Order entry needs a token: send auth first.", id));
    }
    if (api_->account_limiter_.Acquire(caller_->id, api_->deps_.clock->NowMicros()) > 0) {
      return Reply(ErrorMessage("rate_limited", "Too many requests from this account.", id));
    }
    core::CommandBody command;
    std::optional<core::PlaceOrder> placed;
    if (op == "place_order") {
      if (!message.contains("order") || !message["order"].is_object()) {
        return Reply(ErrorMessage("invalid_message", "place_order carries an \"order\" object.", id));
      }
      HttpResponse error;
      placed = ParseOrder(message["order"], caller_->id, &error);
      if (!placed) {
        const Json body = Json::parse(error.body, nullptr, false);
        return Reply(ErrorMessage(body["error"]["code"].get<std::string>(),
                                  body["error"]["message"].get<std::string>(), id));
      }
      const std::string key = message.value("idempotency_key", "");
      if (!key.empty() && !ValidIdempotencyKey(key)) {
        return Reply(ErrorMessage("invalid_idempotency_key",
                                  "An idempotency key is 1 to 64 printable ASCII characters, not "
                                  "starting with \"auto-\" (the exchange's own).",
                                  id));
      }
      placed->client_order_id = key.empty() ? AutoClientOrderId() : key;
      command = *placed;
    } else {
      if (!message.contains("order") || !message["order"].is_number_unsigned()) {
        return Reply(ErrorMessage("invalid_message", "cancel_order names an \"order\" id.", id));
      }
      command = core::CancelOrder{caller_->id, message["order"].get<core::OrderId>()};
    }
    std::weak_ptr<StreamHandler> weak = weak_from_this();
    const absl::Status submitted = api_->deps_.sequencer->Submit(
        std::move(command), [weak, id, placed](const server::Acked& acked) {
          const auto self = weak.lock();
          if (!self) return;
          const core::CommandResult& result = acked.output.result;
          if (!result.accepted) {
            Json error = ErrorMessage(result.code, result.message, id);
            if (result.order != 0) error["order"] = result.order;
            return self->Reply(error);
          }
          Json ack = placed ? PlacedOrderJson(*placed, acked) : Json{{"sequence", acked.sequence}};
          ack["type"] = placed ? "order_placed" : "order_cancelled";
          if (!id.is_null()) ack["id"] = id;
          self->Reply(ack);
        });
    if (!submitted.ok()) {
      Reply(ErrorMessage("unavailable", "The exchange is not accepting commands.", id));
    }
  }

  Api* api_;
  std::weak_ptr<WsConnection> connection_;
  std::optional<AccountIdentity> caller_;  // Strand only.
  std::string token_hash_;                 // Of caller_'s token. Strand only.
  std::set<std::string> channels_;         // Strand only.
  std::atomic<bool> revoked_{false};
};

// One /v1/agent connection: challenge-response with the machine's Ed25519 key, then
// heartbeats, signed usage reports and lease ends in; lease assignments out.
class AgentHandler : public WsHandler,
                     public StreamSink,
                     public std::enable_shared_from_this<AgentHandler> {
 public:
  AgentHandler(Api* api, std::weak_ptr<WsConnection> connection)
      : api_(api), connection_(std::move(connection)), nonce_(RandomHex(32)) {}

  void OnOpen() override { Reply(Json{{"type", "challenge"}, {"nonce", nonce_}}); }

  void OnMessage(std::string text) override {
    const Json message = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded() || !message.is_object() || !message.contains("type") ||
        !message["type"].is_string()) {
      return Reply(ErrorMessage("invalid_message", "Messages are JSON objects with a \"type\"."));
    }
    const std::string type = message["type"].get<std::string>();
    const Json id = message.contains("id") ? message["id"] : Json();
    if (machine_ == 0) return Authenticate(type, message);

    if (api_->account_limiter_.Acquire((uint64_t{1} << 63) | machine_,
                                       api_->deps_.clock->NowMicros()) > 0) {
      return Reply(ErrorMessage("rate_limited", "Too many messages from this machine.", id));
    }
    if (type == "heartbeat") {
      return Submit(core::Heartbeat{machine_}, id);
    }
    if (type == "usage") {
      core::ReportUsage usage;
      usage.machine = machine_;
      for (const auto& [key, field] : std::initializer_list<std::pair<const char*, int64_t*>>{
               {"wall_seconds", &usage.wall_seconds},
               {"cpu_seconds", &usage.cpu_seconds},
               {"peak_memory_mib", &usage.peak_memory_mib},
               {"gpu_seconds", &usage.gpu_seconds}}) {
        if (!message.contains(key) || !message[key].is_number_integer()) {
          return Reply(ErrorMessage("invalid_message",
                                    std::string("A usage report needs an integer '") + key + "'.",
                                    id));
        }
        *field = message[key].get<int64_t>();
      }
      if (!message.contains("lease") || !message["lease"].is_number_unsigned() ||
          !message.contains("signature") || !message["signature"].is_string()) {
        return Reply(
            ErrorMessage("invalid_message", "A usage report needs 'lease' and 'signature'.", id));
      }
      usage.lease = message["lease"].get<uint64_t>();
      if (!VerifySignatureHex(public_key_, UsageMessage(machine_, usage),
                              message["signature"].get<std::string>())) {
        return Reply(ErrorMessage("bad_signature",
                                  "The usage report's signature does not verify with this "
                                  "machine's key; nothing was recorded.",
                                  id));
      }
      return Submit(usage, id);
    }
    if (type == "end_lease") {
      const std::string reason = message.value("reason", "");
      if (!message.contains("lease") || !message["lease"].is_number_unsigned() ||
          (reason != "finished" && reason != "reclaimed")) {
        return Reply(ErrorMessage(
            "invalid_message", "end_lease needs 'lease' and a reason: finished or reclaimed.", id));
      }
      return Submit(core::EndLease{0, machine_, message["lease"].get<uint64_t>(),
                                   reason == "finished" ? core::LeaseEndReason::kFinished
                                                        : core::LeaseEndReason::kReclaimed},
                    id);
    }
    if (type == "task_result") {
      if (!message.contains("lease") || !message["lease"].is_number_unsigned() ||
          !message.contains("result") || !message["result"].is_object()) {
        return Reply(ErrorMessage("invalid_message",
                                  "task_result needs 'lease' and a 'result' object.", id));
      }
      return Submit(core::FinishTask{machine_, message["lease"].get<uint64_t>(),
                                     message["result"].dump()},
                    id);
    }
    if (type == "task_log") {
      // Live output for the buyer: relayed, not journaled (the whole streams come back as
      // blobs in the task result).
      const std::string stream = message.value("stream", "");
      if (!message.contains("lease") || !message["lease"].is_number_unsigned() ||
          (stream != "stdout" && stream != "stderr") || !message.contains("data") ||
          !message["data"].is_string()) {
        return Reply(ErrorMessage("invalid_message",
                                  "task_log needs 'lease', 'stream' (stdout or stderr) and "
                                  "'data'.",
                                  id));
      }
      const core::LeaseId lease = message["lease"].get<uint64_t>();
      const bool sent = api_->deps_.market_data->SendToBuyer(
          lease, machine_,
          Json{{"type", "task_log"},
               {"lease", lease},
               {"stream", stream},
               {"data", message["data"]}}
              .dump());
      if (!sent) {
        return Reply(ErrorMessage("unknown_lease", "This machine has no active lease with this id.",
                                  id));
      }
      return;
    }
    Reply(ErrorMessage("invalid_message",
                       "type is heartbeat, usage, end_lease, task_result or task_log.", id));
  }

  void OnClose() override { api_->deps_.market_data->UnsubscribeAll(this); }

  void Deliver(std::shared_ptr<const std::string> message) override {
    if (auto connection = connection_.lock()) connection->SendText(std::move(message));
  }

 private:
  void Reply(const Json& json) { Deliver(Text(json)); }

  void Authenticate(const std::string& type, const Json& message) {
    auto refuse = [&](std::string_view why) {
      Reply(ErrorMessage("unauthenticated", why));
      if (auto connection = connection_.lock()) connection->Close("unauthenticated");
    };
    if (type != "auth" || !message.contains("machine") ||
        !message["machine"].is_number_unsigned() || !message.contains("signature") ||
        !message["signature"].is_string()) {
      return refuse("First answer the challenge: {\"type\":\"auth\",\"machine\",\"signature\"}.");
    }
    const core::MachineId machine = message["machine"].get<uint64_t>();
    const auto identity = api_->deps_.identities->FindMachine(machine);
    if (!identity || identity->public_key_hex.empty() ||
        !VerifySignatureHex(identity->public_key_hex, AgentAuthMessage(machine, nonce_),
                            message["signature"].get<std::string>())) {
      return refuse("The signature does not prove this machine's key.");
    }
    machine_ = machine;
    public_key_ = identity->public_key_hex;
    Json leases = Json::array();
    for (const core::LeaseStarted& l : api_->deps_.market_data->ActiveLeases(machine)) {
      leases.push_back({{"lease", l.lease},
                        {"buyer", l.buyer},
                        {"market", l.market},
                        {"slots", l.slots},
                        {"price", base::FormatMicros(l.price)},
                        {"max_hours", l.max_hours},
                        {"start", l.start}});
      if (auto spec = api_->deps_.market_data->OpenTaskSpec(l.lease)) {
        leases.back()["task"] = TaskDocumentJson(*spec);
      }
    }
    Reply(Json{{"type", "welcome"}, {"machine", machine}, {"leases", leases}});
    api_->deps_.market_data->Subscribe(MarketData::MachineChannel(machine), shared_from_this());
  }

  void Submit(core::CommandBody command, const Json& id) {
    std::weak_ptr<AgentHandler> weak = weak_from_this();
    const absl::Status submitted =
        api_->deps_.sequencer->Submit(std::move(command), [weak, id](const server::Acked& acked) {
          const auto self = weak.lock();
          if (!self) return;
          const core::CommandResult& result = acked.output.result;
          if (!result.accepted) {
            return self->Reply(ErrorMessage(result.code, result.message, id));
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
    if (!submitted.ok()) {
      Reply(ErrorMessage("unavailable", "The exchange is not accepting commands.", id));
    }
  }

  Api* api_;
  std::weak_ptr<WsConnection> connection_;
  const std::string nonce_;
  core::MachineId machine_ = 0;  // 0 until authenticated. Strand only.
  std::string public_key_;       // Strand only.
};

std::shared_ptr<WsHandler> Api::OpenWebSocket(const HttpRequest& request,
                                              std::shared_ptr<WsConnection> connection,
                                              HttpResponse* refusal) {
  if (shutting_down_.load()) {
    *refusal = ErrorResponse(503, "unavailable", "The exchange is shutting down.");
    return nullptr;
  }
  if (request.path == "/v1/stream") {
    std::optional<AccountIdentity> caller;
    std::string token_hash;
    const std::string& authorization = request.Header("authorization");
    if (!authorization.empty()) {
      if (authorization.starts_with("Bearer ")) {
        const std::string_view token = std::string_view(authorization).substr(7);
        caller = deps_.identities->FindByToken(token);
        if (caller) token_hash = TokenHash(token);
      }
      if (!caller) {
        *refusal = ErrorResponse(401, "unauthenticated", "The API token is not valid.");
        return nullptr;
      }
    }
    return std::make_shared<StreamHandler>(this, connection, caller, std::move(token_hash));
  }
  if (request.path == "/v1/agent") return std::make_shared<AgentHandler>(this, connection);
  *refusal = ErrorResponse(404, "not_found", "No WebSocket endpoint has this path.");
  return nullptr;
}

}  // namespace ocx::api
