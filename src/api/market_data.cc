#include "src/api/market_data.h"

#include <algorithm>
#include <tuple>

#include "nlohmann/json.hpp"
#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/base/json.h"
#include "src/base/utf8.h"
#include "src/core/exchange.h"

namespace ocx::api {
namespace {

using Json = nlohmann::json;

std::string Price(core::PriceMicros price) { return base::FormatMicros(price); }

std::string_view SideName(engine::Side side) { return side == engine::Side::kBuy ? "buy" : "sell"; }

std::string_view EventName(engine::EventType type) {
  switch (type) {
    case engine::EventType::kAccepted:
      return "accepted";
    case engine::EventType::kTrade:
      return "trade";
    case engine::EventType::kCancelled:
      return "cancelled";
    case engine::EventType::kRejected:
      return "rejected";
    case engine::EventType::kReplaced:
      return "replaced";
    case engine::EventType::kExpired:
      return "expired";
  }
  return "unknown";
}

Json LevelsJson(const std::vector<Level>& levels) {
  Json out = Json::array();
  for (const Level& l : levels) out.push_back(Json::array({Price(l.price), l.quantity}));
  return out;
}

Json LeaseJson(const core::LeaseStarted& l) {
  return Json{
      {"lease", l.lease},          {"buyer", l.buyer},         {"seller", l.seller},
      {"machine", l.machine},      {"market", l.market},       {"slots", l.slots},
      {"price", Price(l.price)},   {"max_hours", l.max_hours}, {"start", l.start},
      {"escrow", Price(l.escrow)}, {"buy_order", l.buy_order}, {"sell_order", l.sell_order}};
}

// Text in messages may come from outside (a job's output): never let dump() throw on it.
constexpr auto kReplaceInvalidUtf8 = Json::error_handler_t::replace;

// (side, price) of a level touched by one command, with its quantity before the command.
using LevelKey = std::tuple<std::string, int, core::PriceMicros>;

}  // namespace

Json TaskDocumentJson(const std::string& text) {
  Json parsed;
  if (!base::ParseJsonStrict(text, &parsed).ok()) return Json(base::ToValidUtf8(text));
  return parsed;
}

std::string MarketData::OrdersChannel(core::AccountId account) {
  return "orders@" + std::to_string(account);
}
std::string MarketData::LeasesChannel(core::AccountId account) {
  return "leases@" + std::to_string(account);
}
std::string MarketData::MachineChannel(core::MachineId machine) {
  return "machine@" + std::to_string(machine);
}

void MarketData::Load(const core::Exchange& exchange) {
  std::lock_guard lock(mu_);
  sequence_ = exchange.last_sequence();
  const auto& markets = exchange.config().markets;
  for (size_t m = 0; m < markets.size(); ++m) {
    Book& book = books_[markets[m].name];
    for (engine::Side side : {engine::Side::kBuy, engine::Side::kSell}) {
      exchange.book(m).ForEachResting(side, [&](const engine::OrderView& v) {
        orders_[v.id] = LiveOrder{markets[m].name, v.side, v.price, v.remaining};
        AddLevel(book, v.side, v.price, v.remaining);
      });
    }
  }
  for (const auto& [id, lease] : exchange.leases()) {
    leases_[id] = core::LeaseStarted{id,
                                     lease.buyer,
                                     lease.seller,
                                     lease.machine,
                                     markets[lease.market].name,
                                     lease.slots,
                                     lease.price,
                                     lease.max_hours,
                                     lease.start,
                                     lease.escrow,
                                     lease.buy_order,
                                     lease.sell_order};
  }
  for (const auto& [id, job] : exchange.jobs()) job_owners_[id] = job.spec.actor;
  for (const auto& [id, task] : exchange.open_tasks()) {
    task_specs_[id] = TaskSpecForMachine(task.spec, task.job, task.task_index);
  }
}

std::string TaskSpecForMachine(const std::string& spec, core::JobId job, int32_t task_index) {
  if (job == 0) return spec;
  // A job's tasks share one journaled spec; each learns its place in the job from the
  // environment (docs/formats/job.md).
  Json document;
  if (!base::ParseJsonStrict(spec, &document).ok() || !document.is_object()) return spec;
  Json& env = document["env"];
  if (!env.is_object()) env = Json::object();
  env["OCX_JOB_ID"] = std::to_string(job);
  env["OCX_TASK_INDEX"] = std::to_string(task_index);
  return document.dump(-1, ' ', false, kReplaceInvalidUtf8);
}

void MarketData::AddLevel(Book& book, engine::Side side, core::PriceMicros price,
                          core::Quantity delta) {
  auto apply = [&](auto& levels) {
    core::Quantity& quantity = levels[price];
    quantity += delta;
    OCX_ASSERT(quantity >= 0);
    if (quantity == 0) levels.erase(price);
  };
  if (side == engine::Side::kBuy) {
    apply(book.bids);
  } else {
    apply(book.asks);
  }
}

void MarketData::RevokeChannel(const std::string& channel) {
  const auto it = subscribers_.find(channel);
  if (it == subscribers_.end()) return;
  for (const std::weak_ptr<StreamSink>& weak : it->second) {
    if (const std::shared_ptr<StreamSink> sink = weak.lock()) sink->Revoke();
  }
  subscribers_.erase(it);
}

bool MarketData::HasSubscribers(const std::string& channel) const {
  const auto it = subscribers_.find(channel);
  return it != subscribers_.end() && !it->second.empty();
}

void MarketData::Send(const std::string& channel, const std::string& message) {
  const auto it = subscribers_.find(channel);
  if (it == subscribers_.end()) return;
  auto shared = std::make_shared<const std::string>(message);
  Subscribers& sinks = it->second;
  std::erase_if(sinks, [&](const std::weak_ptr<StreamSink>& weak) {
    const std::shared_ptr<StreamSink> sink = weak.lock();
    if (!sink) return true;
    sink->Deliver(shared);
    return false;
  });
  if (sinks.empty()) subscribers_.erase(it);
}

void MarketData::Publish(uint64_t sequence, core::Timestamp time,
                         const std::vector<core::CoreEvent>& events) {
  std::lock_guard lock(mu_);
  OCX_ASSERT(sequence > sequence_);
  sequence_ = sequence;
  std::map<LevelKey, core::Quantity> before;  // Levels touched, with their old quantity.
  auto level_quantity = [&](const std::string& market, engine::Side side,
                            core::PriceMicros price) -> core::Quantity {
    const Book& book = books_[market];
    if (side == engine::Side::kBuy) {
      const auto it = book.bids.find(price);
      return it == book.bids.end() ? 0 : it->second;
    }
    const auto it = book.asks.find(price);
    return it == book.asks.end() ? 0 : it->second;
  };
  auto change = [&](const std::string& market, engine::Side side, core::PriceMicros price,
                    core::Quantity delta) {
    const LevelKey key{market, static_cast<int>(side), price};
    if (!before.contains(key)) before[key] = level_quantity(market, side, price);
    AddLevel(books_[market], side, price, delta);
  };
  auto reduce = [&](core::OrderId id, core::Quantity quantity) {
    const auto it = orders_.find(id);
    if (it == orders_.end()) return;  // A market order: it never rests.
    LiveOrder& order = it->second;
    const core::Quantity taken = std::min(quantity, order.remaining);
    change(order.market, order.side, order.price, -taken);
    order.remaining -= taken;
    if (order.remaining == 0) orders_.erase(it);
  };

  // Each trade starts a lease; its event follows the trade's in the same command.
  std::map<std::pair<core::OrderId, core::OrderId>, core::LeaseId> lease_of_trade;
  for (const core::CoreEvent& event : events) {
    if (const auto* started = std::get_if<core::LeaseStarted>(&event)) {
      lease_of_trade[{started->buy_order, started->sell_order}] = started->lease;
    }
  }
  for (const core::CoreEvent& event : events) {
    if (const auto* order_event = std::get_if<core::OrderEvent>(&event)) {
      const engine::Event& e = order_event->event;
      const std::string& market = order_event->market;
      switch (e.type) {
        case engine::EventType::kAccepted:
          if (e.price > 0 && e.quantity > 0) {
            orders_[e.id] = LiveOrder{market, e.side, e.price, e.quantity};
            change(market, e.side, e.price, e.quantity);
          }
          break;
        case engine::EventType::kTrade: {
          reduce(e.id, e.quantity);
          reduce(e.maker_id, e.quantity);
          books_[market].last = LastTrade{e.price, e.quantity, time, sequence};
          break;
        }
        case engine::EventType::kCancelled:
        case engine::EventType::kExpired:
          reduce(e.id, e.quantity);
          break;
        case engine::EventType::kReplaced: {
          const auto it = orders_.find(e.id);
          if (it == orders_.end()) break;
          LiveOrder& order = it->second;
          change(market, order.side, order.price, -order.remaining);
          order.price = e.price;
          order.remaining = e.quantity;
          if (order.remaining > 0) {
            change(market, order.side, order.price, order.remaining);
          } else {
            orders_.erase(it);
          }
          break;
        }
        case engine::EventType::kRejected:
          break;
      }
      // Public trades, then the private order stream of each account concerned.
      if (e.type == engine::EventType::kTrade && HasSubscribers("trades:" + market)) {
        const bool taker_buys = e.side == engine::Side::kBuy;
        const auto lease = lease_of_trade.find(taker_buys ? std::pair{e.id, e.maker_id}
                                                          : std::pair{e.maker_id, e.id});
        Send("trades:" + market,
             Json{{"type", "trade"},
                  {"market", market},
                  {"sequence", sequence},
                  {"time", time},
                  {"price", Price(e.price)},
                  {"quantity", e.quantity},
                  {"taker_side", SideName(e.side)},
                  {"lease", lease == lease_of_trade.end() ? 0 : lease->second}}
                 .dump(-1, ' ', false, kReplaceInvalidUtf8));
      }
      auto order_message = [&](core::OrderId id, engine::Side side) {
        Json m{{"type", "order"},
               {"sequence", sequence},
               {"time", time},
               {"market", market},
               {"order", id},
               {"side", SideName(side)},
               {"event", EventName(e.type)},
               {"quantity", e.quantity}};
        if (e.price > 0) m["price"] = Price(e.price);
        if (e.type == engine::EventType::kRejected) m["reason"] = engine::ReasonCode(e.reject);
        if (e.type == engine::EventType::kCancelled) m["reason"] = engine::ReasonCode(e.cancel);
        return m.dump(-1, ' ', false, kReplaceInvalidUtf8);
      };
      if (HasSubscribers(OrdersChannel(e.account))) {
        Send(OrdersChannel(e.account), order_message(e.id, e.side));
      }
      if (e.type == engine::EventType::kTrade && HasSubscribers(OrdersChannel(e.maker_account))) {
        const engine::Side maker_side =
            e.side == engine::Side::kBuy ? engine::Side::kSell : engine::Side::kBuy;
        Send(OrdersChannel(e.maker_account), order_message(e.maker_id, maker_side));
      }
    } else if (const auto* started = std::get_if<core::LeaseStarted>(&event)) {
      leases_[started->lease] = *started;
      Json m = LeaseJson(*started);
      m["type"] = "lease_started";
      m["sequence"] = sequence;
      const std::string text = m.dump(-1, ' ', false, kReplaceInvalidUtf8);
      Send(LeasesChannel(started->buyer), text);
      if (started->seller != started->buyer) Send(LeasesChannel(started->seller), text);
      Send(MachineChannel(started->machine), text);
    } else if (const auto* usage = std::get_if<core::UsageRecorded>(&event)) {
      const auto it = leases_.find(usage->lease);
      if (it == leases_.end()) continue;
      const std::string text = Json{{"type", "lease_usage"},
                                    {"sequence", sequence},
                                    {"lease", usage->lease},
                                    {"wall_seconds", usage->wall_seconds},
                                    {"cpu_seconds", usage->cpu_seconds},
                                    {"peak_memory_mib", usage->peak_memory_mib},
                                    {"gpu_seconds", usage->gpu_seconds},
                                    {"billed_total", Price(usage->billed_total)}}
                                   .dump(-1, ' ', false, kReplaceInvalidUtf8);
      Send(LeasesChannel(it->second.buyer), text);
      if (it->second.seller != it->second.buyer) Send(LeasesChannel(it->second.seller), text);
    } else if (const auto* ended = std::get_if<core::LeaseEnded>(&event)) {
      const auto it = leases_.find(ended->lease);
      if (it == leases_.end()) continue;
      const std::string text = Json{
          {"type", "lease_ended"},
          {"sequence", sequence},
          {"lease", ended->lease},
          {"reason", core::LeaseEndReasonName(ended->reason)},
          {"end", ended->end},
          {"billed_seconds", ended->billed_seconds},
          {"billed_total", Price(ended->billed_total)},
          {"refunded",
           Price(ended->refunded)}}.dump(-1, ' ', false, kReplaceInvalidUtf8);
      Send(LeasesChannel(it->second.buyer), text);
      if (it->second.seller != it->second.buyer) Send(LeasesChannel(it->second.seller), text);
      Send(MachineChannel(it->second.machine), text);
      leases_.erase(it);
    } else if (const auto* assigned = std::get_if<core::TaskAssigned>(&event)) {
      const std::string for_machine =
          TaskSpecForMachine(assigned->spec, assigned->job, assigned->task_index);
      task_specs_[assigned->lease] = for_machine;
      Send(MachineChannel(assigned->machine), Json{{"type", "task"},
                                                   {"sequence", sequence},
                                                   {"lease", assigned->lease},
                                                   {"spec", TaskDocumentJson(for_machine)}}
                                                  .dump(-1, ' ', false, kReplaceInvalidUtf8));
      Json to_buyer{{"type", "task_assigned"},
                    {"sequence", sequence},
                    {"lease", assigned->lease},
                    {"machine", assigned->machine}};
      if (assigned->job != 0) {
        to_buyer["job"] = assigned->job;
        to_buyer["task_index"] = assigned->task_index;
      }
      Send(LeasesChannel(assigned->buyer), to_buyer.dump(-1, ' ', false, kReplaceInvalidUtf8));
    } else if (const auto* changed = std::get_if<core::JobTaskChanged>(&event)) {
      const auto owner = job_owners_.find(changed->job);
      if (owner != job_owners_.end()) {
        Send(LeasesChannel(owner->second), Json{{"type", "job_task"},
                                                {"sequence", sequence},
                                                {"job", changed->job},
                                                {"task_index", changed->task_index},
                                                {"state", core::JobTaskStateName(changed->state)},
                                                {"attempts", changed->attempts},
                                                {"order", changed->order},
                                                {"lease", changed->lease},
                                                {"machine", changed->machine}}
                                               .dump(-1, ' ', false, kReplaceInvalidUtf8));
      }
    } else if (const auto* submitted = std::get_if<core::JobSubmitted>(&event)) {
      job_owners_[submitted->job] = submitted->owner;
      Send(LeasesChannel(submitted->owner), Json{{"type", "job_submitted"},
                                                 {"sequence", sequence},
                                                 {"job", submitted->job},
                                                 {"tasks", submitted->spec.tasks}}
                                                .dump(-1, ' ', false, kReplaceInvalidUtf8));
    } else if (const auto* rotated = std::get_if<core::TokenRotated>(&event)) {
      // Whoever subscribed with the old token loses the account's private streams.
      RevokeChannel(OrdersChannel(rotated->account));
      RevokeChannel(LeasesChannel(rotated->account));
    } else if (const auto* job_ended = std::get_if<core::JobEnded>(&event)) {
      job_owners_.erase(job_ended->job);
      Send(LeasesChannel(job_ended->owner), Json{{"type", "job_ended"},
                                                 {"sequence", sequence},
                                                 {"job", job_ended->job},
                                                 {"state", core::JobStateName(job_ended->state)}}
                                                .dump(-1, ' ', false, kReplaceInvalidUtf8));
    } else if (const auto* finished = std::get_if<core::TaskFinished>(&event)) {
      task_specs_.erase(finished->lease);
      Json m{{"type", "task_finished"}, {"sequence", sequence}, {"lease", finished->lease}};
      m["result"] = finished->result.empty() ? Json() : TaskDocumentJson(finished->result);
      Send(LeasesChannel(finished->buyer), m.dump(-1, ' ', false, kReplaceInvalidUtf8));
    }
  }

  // One book update per market touched, with every level whose quantity changed, best
  // first on each side (`before` is ordered by market, side, then ascending price).
  std::map<std::string, std::pair<std::vector<Level>, std::vector<Level>>> updates;
  for (const auto& [key, old_quantity] : before) {
    const auto& [market, side, price] = key;
    const core::Quantity now = level_quantity(market, static_cast<engine::Side>(side), price);
    if (now == old_quantity || !HasSubscribers("book:" + market)) continue;
    auto& [bids, asks] = updates[market];
    (static_cast<engine::Side>(side) == engine::Side::kBuy ? bids : asks).push_back({price, now});
  }
  for (auto& [market, sides] : updates) {
    std::reverse(sides.first.begin(), sides.first.end());
    Send("book:" + market, Json{{"type", "book_update"},
                                {"market", market},
                                {"sequence", sequence},
                                {"bids", LevelsJson(sides.first)},
                                {"asks", LevelsJson(sides.second)}}
                               .dump(-1, ' ', false, kReplaceInvalidUtf8));
  }
}

std::string MarketData::SnapshotMessage(const std::string& market, const Book& book) const {
  std::vector<Level> bids, asks;
  for (const auto& [price, quantity] : book.bids) bids.push_back({price, quantity});
  for (const auto& [price, quantity] : book.asks) asks.push_back({price, quantity});
  return Json{{"type", "book_snapshot"},
              {"market", market},
              {"sequence", sequence_},
              {"bids", LevelsJson(bids)},
              {"asks", LevelsJson(asks)}}
      .dump(-1, ' ', false, kReplaceInvalidUtf8);
}

bool MarketData::IsPublicChannel(const std::string& channel) const {
  std::lock_guard lock(mu_);
  for (std::string_view prefix : {"book:", "trades:"}) {
    if (channel.starts_with(prefix)) return books_.contains(channel.substr(prefix.size()));
  }
  return false;
}

bool MarketData::Subscribe(const std::string& channel, const std::shared_ptr<StreamSink>& sink) {
  std::lock_guard lock(mu_);
  Subscribers& sinks = subscribers_[channel];
  for (const auto& weak : sinks) {
    if (weak.lock() == sink) return true;  // Already subscribed.
  }
  sinks.push_back(sink);
  if (channel.starts_with("book:")) {
    const auto it = books_.find(channel.substr(5));
    if (it != books_.end()) {
      sink->Deliver(std::make_shared<const std::string>(SnapshotMessage(it->first, it->second)));
    }
  }
  return true;
}

void MarketData::Unsubscribe(const std::string& channel, const StreamSink* sink) {
  std::lock_guard lock(mu_);
  const auto it = subscribers_.find(channel);
  if (it == subscribers_.end()) return;
  std::erase_if(it->second, [&](const std::weak_ptr<StreamSink>& weak) {
    const auto locked = weak.lock();
    return !locked || locked.get() == sink;
  });
  if (it->second.empty()) subscribers_.erase(it);
}

void MarketData::UnsubscribeAll(const StreamSink* sink) {
  std::lock_guard lock(mu_);
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    std::erase_if(it->second, [&](const std::weak_ptr<StreamSink>& weak) {
      const auto locked = weak.lock();
      return !locked || locked.get() == sink;
    });
    it = it->second.empty() ? subscribers_.erase(it) : std::next(it);
  }
}

std::optional<BookDepth> MarketData::Depth(const std::string& market, size_t levels) const {
  std::lock_guard lock(mu_);
  const auto it = books_.find(market);
  if (it == books_.end()) return std::nullopt;
  BookDepth depth;
  depth.sequence = sequence_;
  for (const auto& [price, quantity] : it->second.bids) {
    if (depth.bids.size() >= levels) break;
    depth.bids.push_back({price, quantity});
  }
  for (const auto& [price, quantity] : it->second.asks) {
    if (depth.asks.size() >= levels) break;
    depth.asks.push_back({price, quantity});
  }
  return depth;
}

std::optional<LastTrade> MarketData::Last(const std::string& market) const {
  std::lock_guard lock(mu_);
  const auto it = books_.find(market);
  if (it == books_.end()) return std::nullopt;
  return it->second.last;
}

std::optional<LeaseRoute> MarketData::Route(core::LeaseId lease) const {
  std::lock_guard lock(mu_);
  const auto it = leases_.find(lease);
  if (it == leases_.end()) return std::nullopt;
  return LeaseRoute{it->second.buyer, it->second.seller, it->second.machine};
}

std::vector<core::LeaseStarted> MarketData::ActiveLeases(core::MachineId machine) const {
  std::lock_guard lock(mu_);
  std::vector<core::LeaseStarted> out;
  for (const auto& [id, lease] : leases_) {
    if (lease.machine == machine) out.push_back(lease);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.lease < b.lease; });
  return out;
}

std::optional<std::string> MarketData::OpenTaskSpec(core::LeaseId lease) const {
  std::lock_guard lock(mu_);
  const auto it = task_specs_.find(lease);
  if (it == task_specs_.end()) return std::nullopt;
  return it->second;
}

bool MarketData::SendToBuyer(core::LeaseId lease, core::MachineId machine,
                             const std::string& message) {
  std::lock_guard lock(mu_);
  const auto it = leases_.find(lease);
  if (it == leases_.end() || it->second.machine != machine) return false;
  Send(LeasesChannel(it->second.buyer), message);
  return true;
}

uint64_t MarketData::sequence() const {
  std::lock_guard lock(mu_);
  return sequence_;
}

}  // namespace ocx::api
