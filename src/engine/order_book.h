// The spot market's continuous double auction for one market (RULEBOOK section 2).
//
// Resting orders of one market in price-time priority, and the matching of incoming
// orders against them: limit and market orders; gtc, ioc, fok and gtd; cancel; replace
// with its priority rules; buy lots; an eligibility hook for job constraints; self-trade
// prevention. Every outcome is an Event appended to the caller's vector.
//
// Pure: no I/O, no clock reads (time arrives as the command's timestamp), no randomness, and
// no allocation per command once warm (pools, the id index and the price ladders are reused;
// they grow only when the book reaches a size it has not had before).
//
// Not thread-safe: owned and driven by one thread (the sequencer).
// Invariant: after every command, no two resting orders could trade with each other
// (CheckInvariants() asserts it, with the level and index bookkeeping).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/engine/events.h"
#include "src/engine/order_index.h"
#include "src/engine/types.h"

namespace ocx::engine {

struct BookConfig {
  PriceMicros tick_micros = 100;  // 0.0001 credits.
  Quantity quantity_max = 1'000'000;
  // Named bound on resting orders (house style): a new order past it is rejected book_full.
  size_t resting_orders_max = 10'000'000;
  // Sizes to reserve up front so that a warm book does not allocate.
  size_t expected_orders = 1 << 16;
  size_t expected_levels = 4096;
};

// One price level's aggregate, for depth views.
struct LevelView {
  PriceMicros price;
  Quantity quantity;
  uint32_t orders;
};

class OrderBook {
 public:
  explicit OrderBook(const BookConfig& config = BookConfig{});
  OrderBook(const OrderBook&) = delete;
  OrderBook& operator=(const OrderBook&) = delete;

  // Without an oracle, constrained buys trade with every sell. The oracle must outlive the
  // book, or be replaced first.
  void SetEligibilityOracle(const EligibilityOracle* oracle) { oracle_ = oracle; }

  // Each command first expires gtd orders whose expiry is <= now, then does its work.
  // `now` must never decrease from one command to the next.
  void Submit(const NewOrder& order, Timestamp now, std::vector<Event>* events);
  void Cancel(OrderId id, Timestamp now, std::vector<Event>* events);
  void Replace(const ReplaceRequest& request, Timestamp now, std::vector<Event>* events);
  // Expires what is due at `now` and nothing else: for a clock tick with no order.
  void AdvanceTime(Timestamp now, std::vector<Event>* events);

  // What Submit/Replace would reject the command for, changing nothing (kNone: it would be
  // accepted). Exact once AdvanceTime(now) has run, so that nothing is due to expire: the
  // exchange checks first and moves money only for commands that will be accepted.
  RejectReason PrecheckNew(const NewOrder& order, Timestamp now) const;
  RejectReason PrecheckReplace(const ReplaceRequest& request) const;

  // ---- Queries (cheap; for the API, tests and benchmarks) ----
  const BookConfig& config() const { return config_; }
  size_t resting_orders() const { return index_.size(); }
  size_t levels(Side side) const { return Ladder(side).size() - EmptyRungs(side); }
  bool Contains(OrderId id) const { return index_.Find(id) != OrderIndex::kNotFound; }
  // kNone for a price a limit order may have in this book (positive, on the tick).
  RejectReason ValidatePrice(PriceMicros price) const;
  // The resting order `id`, or false when it is not resting.
  bool Find(OrderId id, OrderView* view) const;
  // Best price on a side, or 0 when the side is empty.
  PriceMicros BestPrice(Side side) const;
  // Worst (farthest from the touch) price on a side, or 0 when the side is empty: the
  // furthest a market order could reach.
  PriceMicros WorstPrice(Side side) const;
  // Up to `max_levels` levels of a side, best first.
  std::vector<LevelView> Depth(Side side, size_t max_levels) const;
  // Every resting order of a side in priority order (best price first, then time).
  void ForEachResting(Side side, const std::function<void(const OrderView&)>& visit) const;
  Timestamp last_time() const { return last_time_; }

  // Puts back a resting order taken from a snapshot, behind the orders of its price level,
  // without matching. Restoring a side in ForEachResting() order recreates its priority.
  // The order must be valid and must not cross in a way the book could not have produced
  // (asserted by CheckInvariants()); `now` becomes the book's time if later.
  void RestoreResting(const OrderView& order, Timestamp now);

  // Asserts every invariant (O(n^2) in the worst case over crossed levels; for tests).
  void CheckInvariants() const;

 private:
  static constexpr uint32_t kNil = UINT32_MAX;

  struct Order {
    OrderId id;
    PriceMicros price;
    Timestamp expiry;
    uint64_t machine;
    Quantity remaining;
    Quantity lot;
    AccountId account;
    uint32_t constraint;
    uint32_t prev;   // In the level's time-ordered list; also the free-list link.
    uint32_t next;
    uint32_t level;  // Slot in levels_.
    Side side;
    TimeInForce tif;
  };

  struct Level {
    PriceMicros price;
    Quantity quantity;  // Sum of the remaining quantities of its orders.
    uint32_t head;      // Oldest order.
    uint32_t tail;      // Newest order.
    uint32_t orders;
    uint32_t next_free;
  };

  // A price ladder: the levels of one side sorted so that the best price is at the back
  // (bids ascending, asks descending), because activity concentrates at the touch and the
  // back of a vector is where inserts and erases are cheapest.
  struct Rung {
    PriceMicros price;
    uint32_t level;
  };
  using Ladder_ = std::vector<Rung>;

  // An order being matched (not yet in the book).
  struct Incoming {
    OrderId id;
    AccountId account;
    Side side;
    OrderType type;
    TimeInForce tif;
    PriceMicros price;
    Quantity remaining;
    Quantity lot;
    Timestamp expiry;
    uint32_t constraint;
    uint64_t machine;
  };

  struct ExpiryEntry {
    Timestamp expiry;
    OrderId id;
  };

  const Ladder_& Ladder(Side side) const { return side == Side::kBuy ? bids_ : asks_; }
  Ladder_& Ladder(Side side) { return side == Side::kBuy ? bids_ : asks_; }

  static Incoming ToIncoming(const NewOrder& order);
  void StartCommand(Timestamp now, std::vector<Event>* events);
  RejectReason ValidateNew(const NewOrder& order, Timestamp now) const;

  // Matches `in` against the opposite side; leaves `in.remaining` as what is left.
  void Match(Incoming& in, std::vector<Event>* events);
  // Whether other accounts' orders could fill `in` completely right now (the fok check).
  bool CanFillCompletely(const Incoming& in) const;
  // How much of `in` may trade with resting order `maker` (0: skip it), lots and
  // eligibility considered; same-account pairs are the caller's concern.
  Quantity TradableQuantity(const Incoming& in, const Order& maker) const;
  // Rests `in` (a limit gtc/gtd remainder), or reports it unfilled.
  void Finish(Incoming& in, std::vector<Event>* events);
  void Rest(const Incoming& in);

  // Removes a resting order from its level, the index and the pool; an emptied level stays
  // on the ladder (Match() removes it once it has walked the level).
  void UnlinkOrder(uint32_t slot);
  // UnlinkOrder() for an order leaving the book outside matching. An emptied level at the
  // touch is popped at once; one deeper in the book stays on the ladder as an empty rung
  // (skipped by every walk) until CompactLadder() sweeps it, so that a cancel never searches
  // or shifts the ladder: O(1), amortized.
  void RemoveResting(uint32_t slot);
  // Pops empty rungs off the back of a ladder, so that its back is always a live level.
  void PopEmptyRungs(Side side);
  // Removes every empty rung of a side, once they outnumber its live levels.
  void CompactLadder(Side side);
  size_t EmptyRungs(Side side) const {
    return side == Side::kBuy ? empty_bid_rungs_ : empty_ask_rungs_;
  }
  size_t& EmptyRungs(Side side) { return side == Side::kBuy ? empty_bid_rungs_ : empty_ask_rungs_; }
  uint32_t AllocateOrder();
  uint32_t FindOrCreateLevel(Side side, PriceMicros price);
  void FreeLevel(uint32_t level_slot);
  // Position of the first rung of `side` that is not strictly worse-placed than `price`
  // in ladder order (the rung with that price, if there is one).
  size_t LowerBound(Side side, PriceMicros price) const;
  OrderView View(const Order& order) const;
  OrderView View(const Incoming& order) const;
  void ExpireDue(Timestamp now, std::vector<Event>* events);

  BookConfig config_;
  const EligibilityOracle* oracle_ = nullptr;
  std::vector<Order> orders_;
  uint32_t free_order_ = kNil;
  std::vector<Level> levels_;
  uint32_t free_level_ = kNil;
  Ladder_ bids_;
  Ladder_ asks_;
  // Rungs whose level has no orders left (see RemoveResting()). Never at a ladder's back.
  size_t empty_bid_rungs_ = 0;
  size_t empty_ask_rungs_ = 0;
  OrderIndex index_;
  // Min-heap on expiry of resting gtd orders. Entries of orders that left the book early
  // stay until they surface (checked against the index then), and the heap is compacted when
  // such stale entries outnumber the live gtd orders.
  std::vector<ExpiryEntry> expiries_;
  size_t live_gtd_orders_ = 0;
  Timestamp last_time_ = INT64_MIN;
};

}  // namespace ocx::engine
