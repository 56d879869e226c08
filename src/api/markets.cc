// Markets: their configuration with best prices and last trade, books and trades (public).
#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/core/exchange.h"

namespace ocx::api {
namespace {

constexpr size_t kBookDepthDefault = 50;
constexpr size_t kBookDepthMax = 1000;

std::string_view SideName(engine::Side side) { return side == engine::Side::kBuy ? "buy" : "sell"; }

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

void ListMarkets(Api& api, const CallPtr& call) {
  Json markets = Json::array();
  for (const core::MarketConfig& m : api.deps().exchange.markets) {
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
    const auto depth = api.deps().market_data->Depth(m.name, 1);
    market["best_bid"] = depth && !depth->bids.empty() ? Json(Money(depth->bids[0].price)) : Json();
    market["best_ask"] = depth && !depth->asks.empty() ? Json(Money(depth->asks[0].price)) : Json();
    const auto last = api.deps().market_data->Last(m.name);
    market["last_trade"] = last ? Json{{"price", Money(last->price)},
                                       {"quantity", last->quantity},
                                       {"time", last->time}}
                                : Json();
    markets.push_back(std::move(market));
  }
  call->Respond(JsonResponse(200, Json{{"items", markets}}));
}

void MarketBook(Api& api, const CallPtr& call) {
  size_t levels = kBookDepthDefault;
  if (const auto it = call->request.query.find("depth"); it != call->request.query.end()) {
    uint64_t value = 0;
    if (!ParseUint(it->second, &value) || value < 1 || value > kBookDepthMax) {
      return call->Respond(
          Refuse(Refusal::kBadRequest, "'depth' must be an integer from 1 to 1000."));
    }
    levels = value;
  }
  const auto depth = api.deps().market_data->Depth(call->params[0], levels);
  if (!depth) return call->Respond(Refuse(Refusal::kUnknownMarket));
  auto levels_json = [](const std::vector<Level>& side) {
    Json out = Json::array();
    for (const Level& l : side) out.push_back(Json::array({Money(l.price), l.quantity}));
    return out;
  };
  call->Respond(JsonResponse(200, Json{{"market", call->params[0]},
                                       {"sequence", depth->sequence},
                                       {"bids", levels_json(depth->bids)},
                                       {"asks", levels_json(depth->asks)}}));
}

void MarketTrades(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  const std::string market = call->params[0];
  if (!api.deps().market_data->Depth(market, 1)) {
    return call->Respond(Refuse(Refusal::kUnknownMarket));
  }
  store::Store* store = api.deps().store;
  api.ReadStore(call, [store, market, after, limit] {
    const auto rows = store->ListTrades(market, after, limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(200, PageJson(*rows, limit, TradeJson,
                                      [](const auto& row) { return row.id; }));
  });
}

}  // namespace

void AddMarketRoutes(std::vector<Route>* routes) {
  routes->insert(routes->end(),
                 {
                     {"GET", "/v1/markets", "Markets with best bid, best ask and last trade",
                      Auth::kNone, 200, Body::kNone, false, &ListMarkets},
                     {"GET", "/v1/markets/{market}/book", "Aggregated order book depth",
                      Auth::kNone, 200, Body::kNone, false, &MarketBook},
                     {"GET", "/v1/markets/{market}/trades", "Trades of a market", Auth::kNone,
                      200, Body::kNone, false, &MarketTrades},
                 });
}

}  // namespace ocx::api
