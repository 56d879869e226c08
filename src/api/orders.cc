// Orders: placing (idempotent with an Idempotency-Key), listing, cancelling and replacing
// (docs/api.md, "Orders"). The order answer is written by hand on the delivery thread
// (PlacedOrderBody): it is the API's hottest path.
#include <charconv>
#include <map>

#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/base/json_string.h"
#include "src/core/exchange.h"
#include "src/query/query.h"

namespace ocx::api {
namespace {

constexpr size_t kIdempotencyKeyMax = 64;
constexpr size_t kConstraintsBytesMax = 4096;

std::string_view SideName(engine::Side side) { return side == engine::Side::kBuy ? "buy" : "sell"; }

bool PrintableAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

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

PlacedOrderSummary SummarizePlacedOrder(const core::PlaceOrder& c, const core::Acked& acked) {
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

Json PlacedOrderJson(const core::PlaceOrder& c, const core::Acked& acked) {
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

std::string PlacedOrderBody(const core::PlaceOrder& c, const core::Acked& acked) {
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
  auto refuse = [&](Refusal refusal, std::string_view message) {
    *error = Refuse(refusal, message);
    return std::nullopt;
  };
  if (side == "buy") {
    c.side = engine::Side::kBuy;
  } else if (side == "sell") {
    c.side = engine::Side::kSell;
  } else {
    return refuse(Refusal::kInvalidField, "The field 'side' must be buy or sell.");
  }
  if (type.empty() || type == "limit") {
    c.type = engine::OrderType::kLimit;
    if (!has_price) return refuse(Refusal::kMissingField, "A limit order needs a 'price'.");
  } else if (type == "market") {
    c.type = engine::OrderType::kMarket;
    if (has_price) return refuse(Refusal::kInvalidField, "A market order has no 'price'.");
  } else {
    return refuse(Refusal::kInvalidField, "The field 'type' must be limit or market.");
  }
  static const std::map<std::string, engine::TimeInForce> kTifs = {
      {"", engine::TimeInForce::kGtc},
      {"gtc", engine::TimeInForce::kGtc},
      {"ioc", engine::TimeInForce::kIoc},
      {"fok", engine::TimeInForce::kFok},
      {"gtd", engine::TimeInForce::kGtd}};
  const auto tif_it = kTifs.find(tif);
  if (tif_it == kTifs.end()) {
    return refuse(Refusal::kInvalidField, "The field 'tif' must be gtc, ioc, fok or gtd.");
  }
  c.tif = tif_it->second;
  if (has_expiry) c.expiry = expiry;
  if (c.side == engine::Side::kSell && c.machine == 0) {
    return refuse(Refusal::kMissingField, "A sell order names its 'machine'.");
  }
  if (!constraints.empty()) {
    if (c.side != engine::Side::kBuy) {
      return refuse(Refusal::kInvalidConstraints, "Only a buy order has 'constraints'.");
    }
    if (!CanonicalConstraints(constraints, &c.constraints, error)) return std::nullopt;
  }
  return c;
}

bool CanonicalConstraints(const std::string& text, std::string* canonical, HttpResponse* error) {
  auto parsed = query::Query::Parse(text);
  if (const auto* syntax = std::get_if<query::SyntaxError>(&parsed)) {
    *error = Refuse(Refusal::kInvalidConstraints,
                    "The constraints are not a valid query: column " +
                        std::to_string(syntax->column) + ": " + syntax->message,
                    Json{{"column", syntax->column}});
    return false;
  }
  // The canonical text is journaled: equal queries give equal bytes.
  *canonical = std::get<query::Query>(parsed).Canonical();
  return true;
}

std::string AutoClientOrderId() {
  static const std::string prefix =
      std::string(core::kAutoClientOrderIdPrefix) + protocol::RandomHex(8) + "-";
  static std::atomic<uint64_t> counter{0};
  return prefix + std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

bool ValidIdempotencyKey(std::string_view key) {
  return !key.empty() && key.size() <= kIdempotencyKeyMax && PrintableAscii(key) &&
         !key.starts_with(core::kAutoClientOrderIdPrefix);
}


namespace {

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

HttpResponse BadIdempotencyKey() {
  return Refuse(Refusal::kInvalidIdempotencyKey,
                "The Idempotency-Key header is 1 to 64 printable ASCII characters without spaces, "
                "not starting with \"auto-\" (the exchange's own).");
}

// The answer to a retried placement: the order the key placed, as it is now, if the request
// asks for the same thing (read from the store once it has the refusal's sequence).
void AnswerIdempotentRetry(Api& api, const CallPtr& call, const core::PlaceOrder& command,
                           core::OrderId original, uint64_t sequence) {
  store::Store* store = api.deps().store;
  api.ReadStoreAt(call, sequence, [store, command, original] {
    const auto rows = store->ListOrders(command.actor, std::nullopt, original - 1, 1);
    if (!rows.ok()) return StoreError(rows.status());
    if (rows->empty() || rows->front().id != original) {
      return Refuse(Refusal::kIdempotencyKeyReused,
                    "This Idempotency-Key was used by a request that placed no order.");
    }
    const store::OrderRow& row = rows->front();
    // The row keeps the order's current limit price; a client retries a placement before it
    // replaces the order, so the price is compared too.
    const core::PriceMicros price = command.type == engine::OrderType::kLimit ? command.price : 0;
    if (row.market != command.market || row.side != command.side ||
        row.quantity != command.quantity || row.price != price) {
      return Refuse(Refusal::kIdempotencyKeyReused,
                    "This Idempotency-Key already placed a different order.");
    }
    Json order = OrderJson(row);
    order["client_order_id"] = command.client_order_id;
    return JsonResponse(200, Json{{"order", order}, {"idempotent_replay", true}});
  });
}

void PlaceOrder(Api& api, const CallPtr& call) {
  HttpResponse error;
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  std::optional<core::PlaceOrder> parsed = ParseOrder(*body, call->caller->id, &error);
  if (!parsed) return call->Respond(std::move(error));
  core::PlaceOrder& c = *parsed;
  const std::string& key = call->request.Header("idempotency-key");
  const bool keyed = !key.empty();
  if (keyed && !ValidIdempotencyKey(key)) return call->Respond(BadIdempotencyKey());
  c.client_order_id = keyed ? key : AutoClientOrderId();
  Api* self = &api;
  const core::PlaceOrder command = c;
  api.SubmitRaw(call, std::move(c), [self, call, command, keyed](const core::Acked& acked) {
    try {
      const core::CommandResult& result = acked.output.result;
      if (result.accepted) {
        self->orders_placed().Add();
        HttpResponse response;
        response.status = 201;
        response.body = PlacedOrderBody(command, acked);
        return call->Respond(std::move(response));
      }
      if (keyed && result.refusal == Refusal::kDuplicateClientOrderId && result.order != 0) {
        return AnswerIdempotentRetry(*self, call, command, result.order, acked.sequence);
      }
      self->orders_refused().Add();
      call->Respond(Refuse(result));
    } catch (const std::exception& e) {
      call->Respond(InternalError(std::string("an order's answer threw: ") + e.what()));
    }
  });
}

void ListOrders(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  std::optional<store::OrderStatus> status;
  if (const auto it = call->request.query.find("status"); it != call->request.query.end()) {
    static const std::map<std::string, store::OrderStatus> kStatuses = {
        {"open", store::OrderStatus::kOpen},
        {"filled", store::OrderStatus::kFilled},
        {"cancelled", store::OrderStatus::kCancelled},
        {"expired", store::OrderStatus::kExpired}};
    const auto found = kStatuses.find(it->second);
    if (found == kStatuses.end()) {
      return call->Respond(Refuse(Refusal::kBadRequest,
                                  "'status' must be open, filled, cancelled or expired."));
    }
    status = found->second;
  }
  store::Store* store = api.deps().store;
  const core::AccountId account = call->caller->id;
  api.ReadStore(call, [store, account, status, after, limit] {
    const auto rows = store->ListOrders(account, status, static_cast<core::OrderId>(after), limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(200, PageJson(*rows, limit, OrderJson,
                                      [](const auto& row) { return row.id; }));
  });
}

void GetOrder(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  api.ReadStore(call, [store, caller, id] {
    const auto order = static_cast<core::OrderId>(id);
    // The store lists the caller's own orders only: another account's order is as unknown as
    // one that never existed (MayReadOrder).
    const auto rows = store->ListOrders(caller->id, std::nullopt, order - 1, 1);
    if (!rows.ok()) return StoreError(rows.status());
    if (rows->empty() || rows->front().id != order ||
        !MayReadOrder(caller, rows->front().account)) {
      return Refuse(Refusal::kUnknownOrder, "You have no order with this id.");
    }
    return JsonResponse(200, Json{{"order", OrderJson(rows->front())}});
  });
}

void CancelOrder(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  const auto order = static_cast<core::OrderId>(id);
  api.Submit(call, core::CancelOrder{call->caller->id, order}, [order](const core::Acked& acked) {
    if (!acked.output.result.accepted) return Refuse(acked.output.result);
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

void ReplaceOrder(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  Fields f(*body);
  core::ReplaceOrder c;
  c.actor = call->caller->id;
  c.order = static_cast<core::OrderId>(id);
  if (f.Has("price")) c.price = f.Money("price", true);
  if (f.Has("quantity")) c.quantity = f.Int("quantity", true, 0, 0, 1'000'000'000);
  if (!f.Finish()) return call->Respond(f.Error());
  if (!c.price && !c.quantity) {
    return call->Respond(
        Refuse(Refusal::kMissingField, "A replace changes 'price', 'quantity' or both."));
  }
  const auto order = static_cast<core::OrderId>(id);
  api.Submit(call, c, [order](const core::Acked& acked) {
    if (!acked.output.result.accepted) return Refuse(acked.output.result);
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

}  // namespace

void AddOrderRoutes(std::vector<Route>* routes) {
  routes->insert(
      routes->end(),
      {
          {"POST", "/v1/orders", "Place an order (Idempotency-Key header)", Auth::kAccount, 201,
           Body::kJson, false, &PlaceOrder},
          {"GET", "/v1/orders", "My orders", Auth::kAccount, 200, Body::kNone, false, &ListOrders},
          {"GET", "/v1/orders/{id}", "One of my orders", Auth::kAccount, 200, Body::kNone, false,
           &GetOrder},
          {"DELETE", "/v1/orders/{id}", "Cancel an order", Auth::kAccount, 200, Body::kNone, false,
           &CancelOrder},
          {"PATCH", "/v1/orders/{id}", "Replace an order's price and/or quantity", Auth::kAccount,
           200, Body::kJson, false, &ReplaceOrder},
      });
}

}  // namespace ocx::api
