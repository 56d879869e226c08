// Discovery: GET /v1/offers, online machines matching a query (docs/formats/query.md), from
// the offer index over the machine directory (never the sequencer's lock).
#include <shared_mutex>

#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/api/offer_index.h"
#include "src/query/query.h"

namespace ocx::api {
namespace {

HttpResponse QueryError(Refusal refusal, std::string_view what, std::string_view text,
                        const query::SyntaxError& error) {
  return Refuse(refusal,
                std::string(what) + ", column " + std::to_string(error.column) + ": " +
                    error.message,
                Json{{"column", error.column}, {"display", query::FormatSyntaxError(text, error)}});
}

void ListOffers(Api& api, const CallPtr& call) {
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
  if ((params.contains("offset") && (!ParseUint(param("offset"), &offset) || offset > kIdMax)) ||
      (params.contains("limit") &&
       (!ParseUint(param("limit"), &limit) || limit < 1 || limit > kPageLimitMax))) {
    return call->Respond(Refuse(
        Refusal::kBadRequest, "'offset' is a non-negative integer and 'limit' one from 1 to 1000."));
  }
  if (text.size() > query::kQueryBytesMax || sort_text.size() > query::kQueryBytesMax) {
    return call->Respond(Refuse(Refusal::kInvalidQuery, "A query is at most 4096 bytes."));
  }
  auto parsed = query::Query::Parse(text);
  if (const auto* error = std::get_if<query::SyntaxError>(&parsed)) {
    return call->Respond(QueryError(Refusal::kInvalidQuery, "The query is not valid", text, *error));
  }
  auto sort = query::ParseSort(sort_text);
  if (const auto* error = std::get_if<query::SyntaxError>(&sort)) {
    return call->Respond(
        QueryError(Refusal::kInvalidSort, "The sort is not valid", sort_text, *error));
  }
  OfferIndex& offers = api.offers();
  const int market = offers.MarketIndex(market_name);
  if (market < 0) return call->Respond(Refuse(Refusal::kUnknownMarket));
  const query::Query query = std::move(std::get<query::Query>(parsed));
  query::MachineIndex::SearchOptions options;
  options.sort = std::move(std::get<std::vector<query::SortKey>>(sort));
  options.limit = limit;
  options.offset = offset;
  // The view of now: the index is brought up to it, and the answer's records come from it.
  const auto view = api.deps().machines->Current();
  offers.Refresh(view);
  query::MachineIndex::SearchResult found;
  std::vector<query::MachineIndex::ClauseReport> reports;
  size_t machines = 0;
  {
    std::shared_lock lock(offers.mutex());
    const query::MachineIndex& index = *offers.Index(static_cast<size_t>(market));
    found = index.Search(query, options);
    if (explain) reports = index.Explain(query);
    machines = index.size();
  }
  Json items = Json::array();
  for (const core::MachineId id : found.machines) {
    const core::MachineRecord* record = view->Find(id);
    if (record == nullptr) continue;
    Json item = MachineRecordJson(*record, api.deps().exchange.markets);
    const core::PriceMicros ask = static_cast<size_t>(market) < record->best_ask.size()
                                      ? record->best_ask[static_cast<size_t>(market)]
                                      : 0;
    item["ask"] = ask > 0 ? Json(Money(ask)) : Json();
    items.push_back(std::move(item));
  }
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
  call->Respond(JsonResponse(200, body));
}

}  // namespace

void AddOfferRoutes(std::vector<Route>* routes) {
  routes->push_back({"GET", "/v1/offers",
                     "Discovery: online machines matching a query (q, sort, market, explain; "
                     "docs/formats/query.md)",
                     Auth::kNone, 200, Body::kNone, false, &ListOffers});
}

}  // namespace ocx::api
