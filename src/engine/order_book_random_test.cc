// Seeded randomized test of the order book against a deliberately naive reference model
// written here: a flat list of resting orders that is filtered and sorted on every command.
// Every command's events must match the reference's, event for event; after every command
// the book's invariants hold, its resting orders equal the reference's in priority order,
// and quantity is conserved (what an order was given is what it traded, lost to a cancel or
// expiry, or still rests).
#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/engine/command.h"
#include "src/engine/order_book.h"

namespace ocx::engine {
namespace {

constexpr PriceMicros kTick = 100;

// Constraint c (1..3) accepts machines whose number is not c modulo 4: a pure function.
class ModuloOracle : public EligibilityOracle {
 public:
  bool CanTrade(const OrderView& buy, const OrderView& sell) const override {
    return Eligible(buy.constraint, sell.machine);
  }
  static bool Eligible(uint32_t constraint, uint64_t machine) {
    return constraint == 0 || machine % 4 != constraint;
  }
};

// A normalized event for comparison.
using Flat = std::tuple<int, int, OrderId, OrderId, PriceMicros, Quantity, int, int, bool>;
Flat Flatten(const Event& e) {
  return {static_cast<int>(e.type), static_cast<int>(e.command), e.id, e.maker_id, e.price,
          e.quantity, static_cast<int>(e.reject), static_cast<int>(e.cancel), e.priority_kept};
}
std::string Describe(const std::vector<Flat>& events) {
  std::ostringstream os;
  for (const Flat& f : events) {
    os << "  {type " << std::get<0>(f) << " cmd " << std::get<1>(f) << " id " << std::get<2>(f)
       << " maker " << std::get<3>(f) << " price " << std::get<4>(f) << " qty " << std::get<5>(f)
       << " reject " << std::get<6>(f) << " cancel " << std::get<7>(f) << " kept "
       << std::get<8>(f) << "}\n";
  }
  return os.str();
}

class ReferenceBook {
 public:
  std::vector<Flat> Apply(const Command& c) {
    out_.clear();
    Expire(c.time);
    switch (c.op) {
      case CommandOp::kNew: New(c.order); break;
      case CommandOp::kCancel: CancelOrder(c.cancel_id); break;
      case CommandOp::kReplace: ReplaceOrder(c.replace); break;
      case CommandOp::kTime: break;
    }
    return out_;
  }

  // Resting orders in priority order: bids then asks, best price first, then time.
  std::vector<std::tuple<OrderId, PriceMicros, Quantity>> Resting() const {
    std::vector<std::tuple<OrderId, PriceMicros, Quantity>> out;
    for (Side side : {Side::kBuy, Side::kSell}) {
      for (const R* r : Sorted(side)) out.emplace_back(r->id, r->price, r->remaining);
    }
    return out;
  }

 private:
  struct R {
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
    uint64_t seq;
  };

  void Emit(EventType type, CommandKind command, OrderId id, OrderId maker, PriceMicros price,
            Quantity qty, RejectReason reject = RejectReason::kNone,
            CancelReason cancel = CancelReason::kNone, bool kept = false) {
    out_.emplace_back(static_cast<int>(type), static_cast<int>(command), id, maker, price, qty,
                      static_cast<int>(reject), static_cast<int>(cancel), kept);
  }

  std::vector<const R*> Sorted(Side side) const {
    std::vector<const R*> v;
    for (const R& r : book_) {
      if (r.side == side) v.push_back(&r);
    }
    std::sort(v.begin(), v.end(), [side](const R* a, const R* b) {
      if (a->price != b->price) return side == Side::kBuy ? a->price > b->price : a->price < b->price;
      return a->seq < b->seq;
    });
    return v;
  }

  R* Find(OrderId id) {
    for (R& r : book_) {
      if (r.id == id) return &r;
    }
    return nullptr;
  }
  void Erase(OrderId id) {
    book_.erase(std::remove_if(book_.begin(), book_.end(), [id](const R& r) { return r.id == id; }),
                book_.end());
  }

  void Expire(Timestamp now) {
    now_ = now;
    std::vector<const R*> due;
    for (const R& r : book_) {
      if (r.tif == TimeInForce::kGtd && r.expiry <= now) due.push_back(&r);
    }
    std::sort(due.begin(), due.end(), [](const R* a, const R* b) {
      return a->expiry != b->expiry ? a->expiry < b->expiry : a->id < b->id;
    });
    std::vector<OrderId> ids;
    for (const R* r : due) {
      Emit(EventType::kExpired, CommandKind::kNew, r->id, 0, r->price, r->remaining);
      ids.push_back(r->id);
    }
    for (OrderId id : ids) Erase(id);
  }

  static bool Crosses(const R& in, PriceMicros resting_price) {
    if (in.type == OrderType::kMarket) return true;
    return in.side == Side::kBuy ? resting_price <= in.price : resting_price >= in.price;
  }

  Quantity Tradable(const R& in, const R& maker) const {
    const R& buy = in.side == Side::kBuy ? in : maker;
    const R& sell = in.side == Side::kBuy ? maker : in;
    Quantity q = std::min(in.remaining, maker.remaining);
    q = q / buy.lot * buy.lot;
    if (q == 0 || !ModuloOracle::Eligible(buy.constraint, sell.machine)) return 0;
    return q;
  }

  // Returns the orders of the opposite side that `in` crosses, in priority order (ids, since
  // the list changes as orders are erased).
  std::vector<OrderId> Crossing(const R& in) const {
    std::vector<OrderId> ids;
    for (const R* r : Sorted(Opposite(in.side))) {
      if (!Crosses(in, r->price)) break;
      ids.push_back(r->id);
    }
    return ids;
  }

  void MatchAndFinish(R in, CommandKind kind) {
    for (OrderId maker_id : Crossing(in)) {
      if (in.remaining == 0) break;
      R* maker = Find(maker_id);
      if (maker->account == in.account) {
        Emit(EventType::kCancelled, CommandKind::kNew, maker->id, 0, maker->price,
             maker->remaining, RejectReason::kNone, CancelReason::kSelfTrade);
        Erase(maker_id);
        continue;
      }
      const Quantity q = Tradable(in, *maker);
      if (q == 0) continue;
      Emit(EventType::kTrade, CommandKind::kNew, in.id, maker->id, maker->price, q);
      in.remaining -= q;
      maker->remaining -= q;
      if (maker->remaining == 0) Erase(maker_id);
    }
    (void)kind;
    if (in.remaining == 0) return;
    if (in.type == OrderType::kMarket || in.tif == TimeInForce::kIoc ||
        in.tif == TimeInForce::kFok) {
      Emit(EventType::kCancelled, CommandKind::kNew, in.id, 0, in.price, in.remaining,
           RejectReason::kNone, CancelReason::kUnfilled);
      return;
    }
    in.seq = next_seq_++;
    book_.push_back(in);
  }

  void New(const NewOrder& o) {
    RejectReason reason = RejectReason::kNone;
    if (o.type == OrderType::kLimit && o.price <= 0) {
      reason = RejectReason::kInvalidPrice;
    } else if (o.type == OrderType::kLimit && o.price % kTick != 0) {
      reason = RejectReason::kOffTick;
    } else if (o.quantity <= 0 || o.quantity > 1'000'000) {
      reason = RejectReason::kInvalidQuantity;
    } else if (o.lot < 1 || (o.side == Side::kSell && o.lot != 1)) {
      reason = RejectReason::kInvalidLot;
    } else if (o.quantity % o.lot != 0) {
      reason = RejectReason::kLotMismatch;
    } else if (o.tif == TimeInForce::kGtd && !o.expiry) {
      reason = RejectReason::kMissingExpiry;
    } else if (o.tif == TimeInForce::kGtd && *o.expiry <= now_) {
      reason = RejectReason::kExpiryInPast;
    } else if (Find(o.id) != nullptr) {
      reason = RejectReason::kDuplicateId;
    }
    const PriceMicros price = o.type == OrderType::kLimit ? o.price : 0;
    if (reason != RejectReason::kNone) {
      Emit(EventType::kRejected, CommandKind::kNew, o.id, 0, price, o.quantity, reason);
      return;
    }
    R in{o.id,   o.account, o.side,
         o.type, o.tif,     price,
         o.quantity, o.lot, o.expiry.value_or(0),
         o.side == Side::kBuy ? o.constraint : 0u, o.side == Side::kSell ? o.machine : 0u, 0};
    if (o.tif == TimeInForce::kFok) {
      Quantity left = in.remaining;
      for (OrderId maker_id : Crossing(in)) {
        const R* maker = Find(maker_id);
        if (maker->account == in.account) continue;
        R probe = in;
        probe.remaining = left;
        left -= Tradable(probe, *maker);
        if (left == 0) break;
      }
      if (left != 0) {
        Emit(EventType::kRejected, CommandKind::kNew, o.id, 0, price, o.quantity,
             RejectReason::kFokUnfillable);
        return;
      }
    }
    Emit(EventType::kAccepted, CommandKind::kNew, o.id, 0, price, o.quantity);
    MatchAndFinish(in, CommandKind::kNew);
  }

  void CancelOrder(OrderId id) {
    R* r = Find(id);
    if (r == nullptr) {
      Emit(EventType::kRejected, CommandKind::kCancel, id, 0, 0, 0, RejectReason::kUnknownOrder);
      return;
    }
    Emit(EventType::kCancelled, CommandKind::kCancel, id, 0, r->price, r->remaining,
         RejectReason::kNone, CancelReason::kRequested);
    Erase(id);
  }

  void ReplaceOrder(const ReplaceRequest& q) {
    R* r = Find(q.id);
    RejectReason reason = RejectReason::kNone;
    if (r == nullptr) {
      reason = RejectReason::kUnknownOrder;
    } else if (q.price && *q.price <= 0) {
      reason = RejectReason::kInvalidPrice;
    } else if (q.price && *q.price % kTick != 0) {
      reason = RejectReason::kOffTick;
    } else if (q.quantity && (*q.quantity < 0 || *q.quantity > 1'000'000)) {
      reason = RejectReason::kInvalidQuantity;
    } else if (q.quantity && *q.quantity % r->lot != 0) {
      reason = RejectReason::kLotMismatch;
    }
    if (reason != RejectReason::kNone) {
      Emit(EventType::kRejected, CommandKind::kReplace, q.id, 0, 0, 0, reason);
      return;
    }
    const PriceMicros price = q.price.value_or(r->price);
    const Quantity qty = q.quantity.value_or(r->remaining);
    if (qty == 0) {
      Emit(EventType::kCancelled, CommandKind::kReplace, q.id, 0, r->price, r->remaining,
           RejectReason::kNone, CancelReason::kReplacedToZero);
      Erase(q.id);
      return;
    }
    if (price == r->price && qty <= r->remaining) {
      r->remaining = qty;
      Emit(EventType::kReplaced, CommandKind::kReplace, q.id, 0, price, qty, RejectReason::kNone,
           CancelReason::kNone, true);
      return;
    }
    R in = *r;
    Erase(q.id);
    in.type = OrderType::kLimit;
    in.tif = TimeInForce::kGtc;
    in.price = price;
    in.remaining = qty;
    in.expiry = 0;
    Emit(EventType::kReplaced, CommandKind::kReplace, q.id, 0, price, qty, RejectReason::kNone,
         CancelReason::kNone, false);
    MatchAndFinish(in, CommandKind::kReplace);
  }

  std::vector<R> book_;
  std::vector<Flat> out_;
  uint64_t next_seq_ = 0;
  Timestamp now_ = 0;
};

struct Profile {
  const char* name;
  int accounts;          // Few accounts: many self-trades.
  int price_ticks;       // Width of the price band around the mid.
  int lot_percent;       // Buys that carry a lot above 1.
  int constraint_percent;
  int invalid_percent;   // Commands with a deliberately bad field.
};

class CommandGenerator {
 public:
  CommandGenerator(uint64_t seed, Profile profile) : rng_(seed), p_(profile) {}

  Command Next(const OrderBook& book) {
    Command c;
    if (rng_.Percent(20)) now_ += rng_.Between(0, 20);
    c.time = now_;
    const uint64_t roll = rng_.Below(100);
    if (roll < 55 || ids_.empty()) {
      c.op = CommandOp::kNew;
      NewOrder& o = c.order;
      o.id = next_id_++;
      ids_.push_back(o.id);
      o.account = static_cast<AccountId>(rng_.Between(1, p_.accounts));
      o.side = rng_.Percent(50) ? Side::kBuy : Side::kSell;
      o.type = rng_.Percent(8) ? OrderType::kMarket : OrderType::kLimit;
      static constexpr TimeInForce kTifs[] = {TimeInForce::kGtc, TimeInForce::kGtc,
                                              TimeInForce::kIoc, TimeInForce::kFok,
                                              TimeInForce::kGtd};
      o.tif = kTifs[rng_.Below(5)];
      o.price = (100 + rng_.Between(-p_.price_ticks, p_.price_ticks)) * kTick;
      o.quantity = rng_.Between(1, 12);
      if (o.side == Side::kBuy && rng_.Percent(p_.lot_percent)) {
        o.lot = rng_.Between(2, 4);
        o.quantity = rng_.Between(1, 4) * o.lot;
      }
      if (o.side == Side::kBuy && rng_.Percent(p_.constraint_percent)) {
        o.constraint = static_cast<uint32_t>(rng_.Between(1, 3));
      }
      if (o.side == Side::kSell) o.machine = rng_.Below(8);
      if (o.tif == TimeInForce::kGtd && !rng_.Percent(3)) o.expiry = now_ + rng_.Between(0, 60);
      if (rng_.Percent(p_.invalid_percent)) {
        switch (rng_.Below(6)) {
          case 0: o.price += 37; break;                      // Off tick.
          case 1: o.price = -o.price; break;                 // Negative.
          case 2: o.quantity = rng_.Between(-2, 0); break;   // Zero or negative.
          case 3: o.quantity += 1; o.lot = 2; break;         // Maybe not a multiple of the lot.
          case 4: o.lot = rng_.Percent(50) ? 0 : 2; break;   // Bad lot (or lot on a sell).
          case 5: o.id = ids_[rng_.Below(ids_.size())]; break;  // Maybe a duplicate id.
        }
      }
      return c;
    }
    const OrderId target = PickId(book);
    if (roll < 75) {
      c.op = CommandOp::kCancel;
      c.cancel_id = target;
      return c;
    }
    if (roll < 95) {
      c.op = CommandOp::kReplace;
      c.replace.id = target;
      OrderView view{};
      const bool live = book.Find(target, &view);
      switch (rng_.Below(5)) {
        case 0:  // Quantity down, same price.
          c.replace.quantity = live ? std::max<Quantity>(0, view.remaining - view.lot) : 1;
          break;
        case 1:  // Quantity up.
          c.replace.quantity = live ? view.remaining + view.lot * rng_.Between(1, 2) : 3;
          break;
        case 2:  // Price change.
          c.replace.price = (100 + rng_.Between(-p_.price_ticks, p_.price_ticks)) * kTick;
          break;
        case 3:  // Both, sometimes to zero or off the lot.
          c.replace.price = (100 + rng_.Between(-p_.price_ticks, p_.price_ticks)) * kTick;
          c.replace.quantity = rng_.Between(0, 9);
          break;
        case 4:  // Same price given explicitly, same quantity.
          if (live) c.replace.price = view.price;
          c.replace.quantity = live ? view.remaining : 1;
          break;
      }
      if (rng_.Percent(p_.invalid_percent)) c.replace.price = 100 * kTick + 1;
      return c;
    }
    c.op = CommandOp::kTime;
    now_ += rng_.Between(0, 30);
    c.time = now_;
    return c;
  }

 private:
  OrderId PickId(const OrderBook& book) {
    // Mostly live orders; sometimes finished or never-used ids.
    for (int attempt = 0; attempt < 4; ++attempt) {
      const OrderId id = ids_[rng_.Below(ids_.size())];
      if (book.Contains(id) || rng_.Percent(15)) return id;
    }
    return rng_.Percent(50) ? next_id_ + 1000 : ids_[rng_.Below(ids_.size())];
  }

  base::Rng rng_;
  Profile p_;
  std::vector<OrderId> ids_;
  OrderId next_id_ = 1;
  Timestamp now_ = 0;
};

// What each order was given and has not yet used up, from the events alone.
class QuantityLedger {
 public:
  void Apply(const Event& e) {
    switch (e.type) {
      case EventType::kAccepted: open_[e.id] = e.quantity; break;
      case EventType::kTrade:
        Take(e.id, e.quantity);
        Take(e.maker_id, e.quantity);
        break;
      case EventType::kCancelled:
      case EventType::kExpired:
        Take(e.id, e.quantity);
        EXPECT_FALSE(open_.contains(e.id)) << "order " << e.id << " left with quantity unaccounted";
        break;
      case EventType::kReplaced: open_[e.id] = e.quantity; break;
      case EventType::kRejected: break;
    }
  }
  // Every order with open quantity rests with exactly that quantity, and no other rests.
  void Check(const OrderBook& book) const {
    size_t open_orders = 0;
    for (const auto& [id, open] : open_) {
      ++open_orders;
      OrderView view;
      ASSERT_TRUE(book.Find(id, &view)) << "order " << id << " has " << open << " open";
      ASSERT_EQ(view.remaining, open) << "order " << id;
    }
    ASSERT_EQ(open_orders, book.resting_orders());
  }

 private:
  void Take(OrderId id, Quantity q) {
    open_[id] -= q;
    EXPECT_GE(open_[id], 0) << "order " << id << " used more than it was given";
    if (open_[id] == 0) open_.erase(id);  // Keeps Check() proportional to the book.
  }
  std::map<OrderId, Quantity> open_;
};

void RunAgainstReference(uint64_t seed, Profile profile, int commands) {
  SCOPED_TRACE(std::string("profile ") + profile.name + ", seed " + std::to_string(seed) +
               " (rerun this test to reproduce)");
  BookConfig config;
  config.tick_micros = kTick;
  config.expected_orders = 64;  // Small on purpose: exercises growth of every pool.
  config.expected_levels = 8;
  OrderBook book(config);
  ModuloOracle oracle;
  book.SetEligibilityOracle(&oracle);
  ReferenceBook reference;
  CommandGenerator generator(seed, profile);
  QuantityLedger ledger;
  std::vector<Event> events;
  size_t trades = 0;
  for (int step = 0; step < commands; ++step) {
    const Command command = generator.Next(book);
    events.clear();
    Apply(book, command, &events);
    std::vector<Flat> got;
    for (const Event& e : events) {
      got.push_back(Flatten(e));
      ledger.Apply(e);
      trades += e.type == EventType::kTrade;
    }
    const std::vector<Flat> want = reference.Apply(command);
    ASSERT_EQ(got, want) << "step " << step << "\nengine:\n"
                         << Describe(got) << "reference:\n"
                         << Describe(want);
    book.CheckInvariants();
    ledger.Check(book);
    if (::testing::Test::HasFatalFailure()) return;
    std::vector<std::tuple<OrderId, PriceMicros, Quantity>> resting;
    for (Side side : {Side::kBuy, Side::kSell}) {
      book.ForEachResting(side, [&resting](const OrderView& v) {
        resting.emplace_back(v.id, v.price, v.remaining);
      });
    }
    ASSERT_EQ(resting, reference.Resting()) << "step " << step;
  }
  // The stream must actually exercise matching, or the comparison proves little.
  EXPECT_GT(trades, static_cast<size_t>(commands) / 20);
}

TEST(OrderBookRandomTest, MatchesNaiveReferenceMixed) {
  RunAgainstReference(1, {"mixed", 12, 6, 25, 15, 5}, 100'000);
}

TEST(OrderBookRandomTest, MatchesNaiveReferenceSelfTradeHeavy) {
  RunAgainstReference(2, {"self-trade heavy", 2, 3, 10, 0, 2}, 50'000);
}

TEST(OrderBookRandomTest, MatchesNaiveReferenceLotAndConstraintHeavy) {
  RunAgainstReference(3, {"lots and constraints", 20, 4, 70, 50, 2}, 50'000);
}

TEST(OrderBookRandomTest, MatchesNaiveReferenceWideBook) {
  RunAgainstReference(4, {"wide book", 50, 40, 15, 10, 5}, 50'000);
}

}  // namespace
}  // namespace ocx::engine
