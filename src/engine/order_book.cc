#include "src/engine/order_book.h"

#include <algorithm>

#include "src/base/assert.h"

namespace ocx::engine {
namespace {

// Heap order for expiries: earliest first; ids break ties so that the order in which
// simultaneous expiries are reported does not depend on the heap implementation.
bool LaterExpiry(const auto& a, const auto& b) {
  return a.expiry != b.expiry ? a.expiry > b.expiry : a.id > b.id;
}

}  // namespace

OrderBook::OrderBook(const BookConfig& config) : config_(config), index_(config.expected_orders) {
  OCX_ASSERT(config_.tick_micros > 0);
  OCX_ASSERT(config_.quantity_max > 0);
  orders_.reserve(config_.expected_orders);
  levels_.reserve(config_.expected_levels);
  bids_.reserve(config_.expected_levels);
  asks_.reserve(config_.expected_levels);
  expiries_.reserve(config_.expected_orders / 4 + 1024);
}

// ---------------------------------------------------------------- commands

void OrderBook::StartCommand(Timestamp now, std::vector<Event>* events) {
  OCX_ASSERT_MSG(now >= last_time_, "command timestamps must not decrease");
  last_time_ = now;
  if (!expiries_.empty() && expiries_.front().expiry <= now) ExpireDue(now, events);
}

void OrderBook::AdvanceTime(Timestamp now, std::vector<Event>* events) {
  StartCommand(now, events);
}

RejectReason OrderBook::ValidatePrice(PriceMicros price) const {
  if (price <= 0) return RejectReason::kInvalidPrice;
  if (price % config_.tick_micros != 0) return RejectReason::kOffTick;
  return RejectReason::kNone;
}

RejectReason OrderBook::ValidateNew(const NewOrder& order, Timestamp now) const {
  if (order.type == OrderType::kLimit) {
    const RejectReason price = ValidatePrice(order.price);
    if (price != RejectReason::kNone) return price;
  }
  if (order.quantity <= 0 || order.quantity > config_.quantity_max) {
    return RejectReason::kInvalidQuantity;
  }
  if (order.lot < 1 || (order.side == Side::kSell && order.lot != 1)) {
    return RejectReason::kInvalidLot;
  }
  if (order.quantity % order.lot != 0) return RejectReason::kLotMismatch;
  if (order.tif == TimeInForce::kGtd) {
    // Market orders too: a gtd order comes with an expiry (RULEBOOK 2), even one that will
    // never rest.
    if (!order.expiry.has_value()) return RejectReason::kMissingExpiry;
    if (*order.expiry <= now) return RejectReason::kExpiryInPast;
  }
  if (Contains(order.id)) return RejectReason::kDuplicateId;
  const bool may_rest = order.type == OrderType::kLimit &&
                        (order.tif == TimeInForce::kGtc || order.tif == TimeInForce::kGtd);
  if (may_rest && index_.size() >= config_.resting_orders_max) return RejectReason::kBookFull;
  return RejectReason::kNone;
}

OrderBook::Incoming OrderBook::ToIncoming(const NewOrder& order) {
  // Fields that do not apply to the order's type or side are cleared, so that nothing
  // downstream can act on them.
  return Incoming{order.id,
                  order.account,
                  order.side,
                  order.type,
                  order.tif,
                  order.type == OrderType::kLimit ? order.price : 0,
                  order.quantity,
                  order.lot,
                  order.expiry.value_or(0),
                  order.side == Side::kBuy ? order.constraint : 0,
                  order.side == Side::kSell ? order.machine : 0};
}

RejectReason OrderBook::PrecheckNew(const NewOrder& order, Timestamp now) const {
  const RejectReason reason = ValidateNew(order, now);
  if (reason != RejectReason::kNone || order.tif != TimeInForce::kFok) return reason;
  return CanFillCompletely(ToIncoming(order)) ? RejectReason::kNone
                                              : RejectReason::kFokUnfillable;
}

RejectReason OrderBook::PrecheckReplace(const ReplaceRequest& request) const {
  const uint32_t slot = index_.Find(request.id);
  if (slot == OrderIndex::kNotFound) return RejectReason::kUnknownOrder;
  if (request.price.has_value()) {
    const RejectReason price = ValidatePrice(*request.price);
    if (price != RejectReason::kNone) return price;
  }
  if (request.quantity.has_value()) {
    const Quantity quantity = *request.quantity;
    if (quantity < 0 || quantity > config_.quantity_max) return RejectReason::kInvalidQuantity;
    if (quantity % orders_[slot].lot != 0) return RejectReason::kLotMismatch;
  }
  return RejectReason::kNone;
}

void OrderBook::Submit(const NewOrder& order, Timestamp now, std::vector<Event>* events) {
  StartCommand(now, events);
  Event event;
  event.command = CommandKind::kNew;
  event.side = order.side;
  event.id = order.id;
  event.account = order.account;
  event.price = order.type == OrderType::kLimit ? order.price : 0;
  event.quantity = order.quantity;

  const RejectReason reason = ValidateNew(order, now);
  if (reason != RejectReason::kNone) {
    event.type = EventType::kRejected;
    event.reject = reason;
    events->push_back(event);
    return;
  }
  Incoming in = ToIncoming(order);
  if (order.tif == TimeInForce::kFok && !CanFillCompletely(in)) {
    event.type = EventType::kRejected;
    event.reject = RejectReason::kFokUnfillable;
    events->push_back(event);
    return;
  }
  event.type = EventType::kAccepted;
  events->push_back(event);
  Match(in, events);
  OCX_ASSERT(in.tif != TimeInForce::kFok || in.remaining == 0);
  Finish(in, events);
}

void OrderBook::Cancel(OrderId id, Timestamp now, std::vector<Event>* events) {
  StartCommand(now, events);
  const uint32_t slot = index_.Find(id);
  if (slot == OrderIndex::kNotFound) {
    Event event;
    event.type = EventType::kRejected;
    event.command = CommandKind::kCancel;
    event.reject = RejectReason::kUnknownOrder;
    event.id = id;
    events->push_back(event);
    return;
  }
  const Order& order = orders_[slot];
  Event event;
  event.type = EventType::kCancelled;
  event.command = CommandKind::kCancel;
  event.cancel = CancelReason::kRequested;
  event.side = order.side;
  event.id = order.id;
  event.account = order.account;
  event.price = order.price;
  event.quantity = order.remaining;
  events->push_back(event);
  RemoveResting(slot);
}

void OrderBook::Replace(const ReplaceRequest& request, Timestamp now,
                        std::vector<Event>* events) {
  StartCommand(now, events);
  Event event;
  event.command = CommandKind::kReplace;
  event.id = request.id;
  const uint32_t slot = index_.Find(request.id);
  const RejectReason reason = PrecheckReplace(request);
  if (reason != RejectReason::kNone) {
    event.type = EventType::kRejected;
    event.reject = reason;
    if (slot != OrderIndex::kNotFound) {
      event.side = orders_[slot].side;
      event.account = orders_[slot].account;
    }
    events->push_back(event);
    return;
  }

  Order& order = orders_[slot];
  const PriceMicros new_price = request.price.value_or(order.price);
  const Quantity new_quantity = request.quantity.value_or(order.remaining);
  event.side = order.side;
  event.account = order.account;
  if (new_quantity == 0) {
    event.type = EventType::kCancelled;
    event.cancel = CancelReason::kReplacedToZero;
    event.price = order.price;
    event.quantity = order.remaining;
    events->push_back(event);
    RemoveResting(slot);
    return;
  }
  event.type = EventType::kReplaced;
  event.price = new_price;
  event.quantity = new_quantity;
  if (new_price == order.price && new_quantity <= order.remaining) {
    // Quantity down (or unchanged) at the same price keeps time priority.
    levels_[order.level].quantity -= order.remaining - new_quantity;
    order.remaining = new_quantity;
    event.priority_kept = true;
    events->push_back(event);
    return;
  }
  // A price change or a quantity increase loses priority: the order leaves the book and
  // enters again as a new incoming gtc limit order with the same id, lot and constraints.
  Incoming in{order.id,   order.account, order.side, OrderType::kLimit, TimeInForce::kGtc,
              new_price,  new_quantity,  order.lot,  0,                 order.constraint,
              order.machine};
  RemoveResting(slot);
  event.priority_kept = false;
  events->push_back(event);
  Match(in, events);
  Finish(in, events);
}

// ---------------------------------------------------------------- matching

Quantity OrderBook::TradableQuantity(const Incoming& in, const Order& maker) const {
  const Quantity lot = in.side == Side::kBuy ? in.lot : maker.lot;
  Quantity quantity = std::min(in.remaining, maker.remaining);
  quantity -= quantity % lot;
  if (quantity == 0) return 0;
  const uint32_t constraint = in.side == Side::kBuy ? in.constraint : maker.constraint;
  if (constraint != 0 && oracle_ != nullptr) {
    const OrderView taker_view = View(in);
    const OrderView maker_view = View(maker);
    const bool eligible = in.side == Side::kBuy ? oracle_->CanTrade(taker_view, maker_view)
                                                : oracle_->CanTrade(maker_view, taker_view);
    if (!eligible) return 0;
  }
  return quantity;
}

bool OrderBook::CanFillCompletely(const Incoming& in) const {
  // The same walk as Match(), without changing anything: same-account orders count for
  // nothing (they would be cancelled, not traded), ineligible pairs are skipped.
  Incoming probe = in;
  const Ladder_& ladder = Ladder(Opposite(in.side));
  for (size_t pos = ladder.size(); pos > 0; --pos) {
    const Rung& rung = ladder[pos - 1];
    if (in.type == OrderType::kLimit &&
        (in.side == Side::kBuy ? rung.price > in.price : rung.price < in.price)) {
      break;
    }
    for (uint32_t slot = levels_[rung.level].head; slot != kNil; slot = orders_[slot].next) {
      const Order& maker = orders_[slot];
      if (maker.account == probe.account) continue;
      probe.remaining -= TradableQuantity(probe, maker);
      if (probe.remaining == 0) return true;
    }
  }
  return false;
}

void OrderBook::Match(Incoming& in, std::vector<Event>* events) {
  const Side ladder_side = Opposite(in.side);
  Ladder_& ladder = Ladder(ladder_side);
  size_t pos = ladder.size();
  while (pos > 0 && in.remaining > 0) {
    const Rung rung = ladder[pos - 1];
    if (in.type == OrderType::kLimit &&
        (in.side == Side::kBuy ? rung.price > in.price : rung.price < in.price)) {
      break;
    }
    Level& level = levels_[rung.level];
    if (level.orders == 0) --EmptyRungs(ladder_side);  // An empty rung: erased below.
    uint32_t slot = level.head;
    while (slot != kNil && in.remaining > 0) {
      Order& maker = orders_[slot];
      const uint32_t next = maker.next;
      if (maker.account == in.account) {
        // Self-trade prevention: the resting order is cancelled and matching goes on. This
        // comes before the lot and constraint checks (RULEBOOK section 2).
        Event event;
        event.type = EventType::kCancelled;
        event.command = CommandKind::kNew;
        event.cancel = CancelReason::kSelfTrade;
        event.side = maker.side;
        event.id = maker.id;
        event.account = maker.account;
        event.price = maker.price;
        event.quantity = maker.remaining;
        events->push_back(event);
        UnlinkOrder(slot);
      } else if (const Quantity quantity = TradableQuantity(in, maker); quantity > 0) {
        Event event;
        event.type = EventType::kTrade;
        event.command = CommandKind::kNew;
        event.side = in.side;
        event.id = in.id;
        event.maker_id = maker.id;
        event.account = in.account;
        event.maker_account = maker.account;
        event.price = maker.price;
        event.quantity = quantity;
        event.machine = in.side == Side::kSell ? in.machine : maker.machine;
        events->push_back(event);
        in.remaining -= quantity;
        maker.remaining -= quantity;
        level.quantity -= quantity;
        if (maker.remaining == 0) UnlinkOrder(slot);
      }
      slot = next;
    }
    if (level.orders == 0) {
      ladder.erase(ladder.begin() + static_cast<ptrdiff_t>(pos - 1));
      FreeLevel(rung.level);
    }
    --pos;
  }
  // The walk may have stopped just behind an empty rung that is now the back.
  PopEmptyRungs(ladder_side);
}

void OrderBook::Finish(Incoming& in, std::vector<Event>* events) {
  if (in.remaining == 0) return;
  if (in.type == OrderType::kMarket || in.tif == TimeInForce::kIoc ||
      in.tif == TimeInForce::kFok) {
    Event event;
    event.type = EventType::kCancelled;
    event.command = CommandKind::kNew;
    event.cancel = CancelReason::kUnfilled;
    event.side = in.side;
    event.id = in.id;
    event.account = in.account;
    event.price = in.price;
    event.quantity = in.remaining;
    events->push_back(event);
    return;
  }
  Rest(in);
}

// ---------------------------------------------------------------- book keeping

void OrderBook::Rest(const Incoming& in) {
  const uint32_t level_slot = FindOrCreateLevel(in.side, in.price);
  const uint32_t slot = AllocateOrder();
  Order& order = orders_[slot];
  Level& level = levels_[level_slot];
  order = Order{in.id,        in.price,   in.expiry, in.machine, in.remaining, in.lot,
                in.account,   in.constraint, level.tail, kNil,   level_slot,   in.side,
                in.tif};
  if (level.tail == kNil) {
    level.head = slot;
  } else {
    orders_[level.tail].next = slot;
  }
  level.tail = slot;
  level.quantity += in.remaining;
  ++level.orders;
  index_.Insert(in.id, slot);
  if (in.tif == TimeInForce::kGtd) {
    ++live_gtd_orders_;
    if (expiries_.size() > 2 * live_gtd_orders_ + 1024) {
      // Drop the entries of gtd orders that already left the book.
      std::erase_if(expiries_, [this](const ExpiryEntry& entry) {
        const uint32_t s = index_.Find(entry.id);
        return s == OrderIndex::kNotFound || orders_[s].tif != TimeInForce::kGtd ||
               orders_[s].expiry != entry.expiry;
      });
      std::make_heap(expiries_.begin(), expiries_.end(), LaterExpiry<ExpiryEntry, ExpiryEntry>);
    }
    expiries_.push_back(ExpiryEntry{in.expiry, in.id});
    std::push_heap(expiries_.begin(), expiries_.end(), LaterExpiry<ExpiryEntry, ExpiryEntry>);
  }
}

void OrderBook::ExpireDue(Timestamp now, std::vector<Event>* events) {
  while (!expiries_.empty() && expiries_.front().expiry <= now) {
    const ExpiryEntry entry = expiries_.front();
    std::pop_heap(expiries_.begin(), expiries_.end(), LaterExpiry<ExpiryEntry, ExpiryEntry>);
    expiries_.pop_back();
    const uint32_t slot = index_.Find(entry.id);
    if (slot == OrderIndex::kNotFound) continue;
    const Order& order = orders_[slot];
    if (order.tif != TimeInForce::kGtd || order.expiry != entry.expiry) continue;
    Event event;
    event.type = EventType::kExpired;
    event.side = order.side;
    event.id = order.id;
    event.account = order.account;
    event.price = order.price;
    event.quantity = order.remaining;
    events->push_back(event);
    RemoveResting(slot);
  }
}

uint32_t OrderBook::AllocateOrder() {
  if (free_order_ != kNil) {
    const uint32_t slot = free_order_;
    free_order_ = orders_[slot].next;
    return slot;
  }
  OCX_ASSERT(orders_.size() < kNil);
  orders_.emplace_back();
  return static_cast<uint32_t>(orders_.size() - 1);
}

void OrderBook::UnlinkOrder(uint32_t slot) {
  Order& order = orders_[slot];
  Level& level = levels_[order.level];
  if (order.prev == kNil) {
    level.head = order.next;
  } else {
    orders_[order.prev].next = order.next;
  }
  if (order.next == kNil) {
    level.tail = order.prev;
  } else {
    orders_[order.next].prev = order.prev;
  }
  level.quantity -= order.remaining;
  --level.orders;
  if (order.tif == TimeInForce::kGtd) --live_gtd_orders_;
  const bool erased = index_.Erase(order.id);
  OCX_ASSERT(erased);
  order.next = free_order_;
  free_order_ = slot;
}

void OrderBook::RemoveResting(uint32_t slot) {
  const Side side = orders_[slot].side;
  const uint32_t level_slot = orders_[slot].level;
  UnlinkOrder(slot);
  if (levels_[level_slot].orders != 0) return;
  Ladder_& ladder = Ladder(side);
  if (ladder.back().level == level_slot) {
    ladder.pop_back();
    FreeLevel(level_slot);
    PopEmptyRungs(side);
    return;
  }
  size_t& empty = EmptyRungs(side);
  ++empty;
  if (empty > 64 && empty > ladder.size() - empty) CompactLadder(side);
}

void OrderBook::PopEmptyRungs(Side side) {
  Ladder_& ladder = Ladder(side);
  size_t& empty = EmptyRungs(side);
  while (!ladder.empty() && levels_[ladder.back().level].orders == 0) {
    FreeLevel(ladder.back().level);
    ladder.pop_back();
    --empty;
  }
}

void OrderBook::CompactLadder(Side side) {
  Ladder_& ladder = Ladder(side);
  std::erase_if(ladder, [this](const Rung& rung) {
    if (levels_[rung.level].orders != 0) return false;
    FreeLevel(rung.level);
    return true;
  });
  EmptyRungs(side) = 0;
}

size_t OrderBook::LowerBound(Side side, PriceMicros price) const {
  // First rung that is not better-placed-than-`price` toward the front: bids ascend, asks
  // descend, so "before" means lower for bids and higher for asks.
  const Ladder_& ladder = Ladder(side);
  const auto it =
      side == Side::kBuy
          ? std::lower_bound(ladder.begin(), ladder.end(), price,
                             [](const Rung& rung, PriceMicros p) { return rung.price < p; })
          : std::lower_bound(ladder.begin(), ladder.end(), price,
                             [](const Rung& rung, PriceMicros p) { return rung.price > p; });
  return static_cast<size_t>(it - ladder.begin());
}

uint32_t OrderBook::FindOrCreateLevel(Side side, PriceMicros price) {
  Ladder_& ladder = Ladder(side);
  size_t pos;
  if (ladder.empty() || (side == Side::kBuy ? price > ladder.back().price
                                            : price < ladder.back().price)) {
    pos = ladder.size();  // A new best price: the common case for orders at the touch.
  } else if (ladder.back().price == price) {
    return ladder.back().level;
  } else {
    pos = LowerBound(side, price);
    if (pos < ladder.size() && ladder[pos].price == price) {
      if (levels_[ladder[pos].level].orders == 0) --EmptyRungs(side);  // Revived.
      return ladder[pos].level;
    }
  }
  uint32_t level_slot;
  if (free_level_ != kNil) {
    level_slot = free_level_;
    free_level_ = levels_[level_slot].next_free;
  } else {
    OCX_ASSERT(levels_.size() < kNil);
    levels_.emplace_back();
    level_slot = static_cast<uint32_t>(levels_.size() - 1);
  }
  levels_[level_slot] = Level{price, 0, kNil, kNil, 0, kNil};
  ladder.insert(ladder.begin() + static_cast<ptrdiff_t>(pos), Rung{price, level_slot});
  return level_slot;
}

void OrderBook::FreeLevel(uint32_t level_slot) {
  OCX_ASSERT(levels_[level_slot].orders == 0);
  levels_[level_slot].next_free = free_level_;
  free_level_ = level_slot;
}

// ---------------------------------------------------------------- queries

OrderView OrderBook::View(const Order& order) const {
  return OrderView{order.id,        order.account, order.side,       order.tif,
                   order.price,     order.remaining, order.lot,      order.expiry,
                   order.constraint, order.machine};
}

OrderView OrderBook::View(const Incoming& order) const {
  return OrderView{order.id,        order.account,   order.side, order.tif,
                   order.price,     order.remaining, order.lot,  order.expiry,
                   order.constraint, order.machine};
}

bool OrderBook::Find(OrderId id, OrderView* view) const {
  const uint32_t slot = index_.Find(id);
  if (slot == OrderIndex::kNotFound) return false;
  *view = View(orders_[slot]);
  return true;
}

PriceMicros OrderBook::BestPrice(Side side) const {
  const Ladder_& ladder = Ladder(side);
  return ladder.empty() ? 0 : ladder.back().price;
}

PriceMicros OrderBook::WorstPrice(Side side) const {
  for (const Rung& rung : Ladder(side)) {
    if (levels_[rung.level].orders != 0) return rung.price;
  }
  return 0;
}

void OrderBook::RestoreResting(const OrderView& order, Timestamp now) {
  OCX_ASSERT(!Contains(order.id));
  OCX_ASSERT(order.remaining > 0 && order.lot >= 1 && order.remaining % order.lot == 0);
  OCX_ASSERT(order.tif == TimeInForce::kGtc || order.tif == TimeInForce::kGtd);
  OCX_ASSERT(ValidatePrice(order.price) == RejectReason::kNone);
  if (now > last_time_) last_time_ = now;
  const Incoming in{order.id,    order.account,   order.side, OrderType::kLimit, order.tif,
                    order.price, order.remaining, order.lot,  order.expiry,      order.constraint,
                    order.machine};
  Rest(in);
}

std::vector<LevelView> OrderBook::Depth(Side side, size_t max_levels) const {
  const Ladder_& ladder = Ladder(side);
  std::vector<LevelView> depth;
  for (size_t pos = ladder.size(); pos > 0 && depth.size() < max_levels; --pos) {
    const Level& level = levels_[ladder[pos - 1].level];
    if (level.orders == 0) continue;
    depth.push_back(LevelView{level.price, level.quantity, level.orders});
  }
  return depth;
}

void OrderBook::ForEachResting(Side side,
                               const std::function<void(const OrderView&)>& visit) const {
  const Ladder_& ladder = Ladder(side);
  for (size_t pos = ladder.size(); pos > 0; --pos) {
    for (uint32_t slot = levels_[ladder[pos - 1].level].head; slot != kNil;
         slot = orders_[slot].next) {
      visit(View(orders_[slot]));
    }
  }
}

void OrderBook::CheckInvariants() const {
  size_t counted = 0;
  size_t gtd = 0;
  for (const Side side : {Side::kBuy, Side::kSell}) {
    const Ladder_& ladder = Ladder(side);
    size_t empty_rungs = 0;
    for (size_t pos = 0; pos < ladder.size(); ++pos) {
      const Rung& rung = ladder[pos];
      if (pos > 0) {
        // Strictly sorted, best at the back.
        OCX_ASSERT(side == Side::kBuy ? ladder[pos - 1].price < rung.price
                                      : ladder[pos - 1].price > rung.price);
      }
      const Level& level = levels_[rung.level];
      OCX_ASSERT(level.price == rung.price);
      if (level.orders == 0) {
        ++empty_rungs;
        OCX_ASSERT(pos + 1 < ladder.size());  // Never at the back.
        continue;
      }
      Quantity quantity = 0;
      uint32_t orders = 0;
      uint32_t prev = kNil;
      for (uint32_t slot = level.head; slot != kNil; slot = orders_[slot].next) {
        const Order& order = orders_[slot];
        OCX_ASSERT(order.prev == prev);
        OCX_ASSERT(order.level == rung.level);
        OCX_ASSERT(order.side == side);
        OCX_ASSERT(order.price == rung.price);
        OCX_ASSERT(order.remaining > 0 && order.remaining <= config_.quantity_max);
        OCX_ASSERT(order.remaining % order.lot == 0);
        OCX_ASSERT(order.tif == TimeInForce::kGtc || order.tif == TimeInForce::kGtd);
        OCX_ASSERT(index_.Find(order.id) == slot);
        if (order.tif == TimeInForce::kGtd) {
          ++gtd;
          OCX_ASSERT(order.expiry > last_time_);
        }
        quantity += order.remaining;
        ++orders;
        prev = slot;
      }
      OCX_ASSERT(level.tail == prev);
      OCX_ASSERT(level.orders == orders);
      OCX_ASSERT(level.quantity == quantity);
      counted += orders;
    }
    OCX_ASSERT(empty_rungs == EmptyRungs(side));
  }
  OCX_ASSERT(counted == index_.size());
  OCX_ASSERT(gtd == live_gtd_orders_);

  // No two resting orders could trade with each other: every crossing pair is of one
  // account, short of a lot, or ineligible.
  for (size_t b = bids_.size(); b > 0; --b) {
    const Level& bid_level = levels_[bids_[b - 1].level];
    bool any_crossing = false;
    for (size_t a = asks_.size(); a > 0; --a) {
      const Level& ask_level = levels_[asks_[a - 1].level];
      if (ask_level.price > bid_level.price) break;
      any_crossing = true;
      for (uint32_t bs = bid_level.head; bs != kNil; bs = orders_[bs].next) {
        const Order& buy = orders_[bs];
        for (uint32_t as = ask_level.head; as != kNil; as = orders_[as].next) {
          const Order& sell = orders_[as];
          if (buy.account == sell.account) continue;
          const bool lot_fits = std::min(buy.remaining, sell.remaining) >= buy.lot;
          const bool eligible = buy.constraint == 0 || oracle_ == nullptr ||
                                oracle_->CanTrade(View(buy), View(sell));
          OCX_ASSERT_MSG(!(lot_fits && eligible), "two resting orders could trade");
        }
      }
    }
    if (!any_crossing) break;
  }
}

}  // namespace ocx::engine
