#include "src/engine/order_book.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ocx::engine {
namespace {

constexpr PriceMicros kTick = 10;

BookConfig TestConfig() {
  BookConfig config;
  config.tick_micros = kTick;
  return config;
}

struct TradeRecord {
  OrderId taker, maker;
  PriceMicros price;
  Quantity quantity;
  bool operator==(const TradeRecord&) const = default;
};

std::ostream& operator<<(std::ostream& os, const TradeRecord& t) {
  return os << "{taker " << t.taker << " maker " << t.maker << " price " << t.price << " qty "
            << t.quantity << "}";
}

class OrderBookTest : public ::testing::Test {
 protected:
  OrderBook book_{TestConfig()};
  std::vector<Event> events_;
  Timestamp now_ = 0;

  NewOrder Order(OrderId id, AccountId account, Side side, PriceMicros price, Quantity qty,
                 TimeInForce tif = TimeInForce::kGtc) {
    NewOrder order;
    order.id = id;
    order.account = account;
    order.side = side;
    order.type = OrderType::kLimit;
    order.tif = tif;
    order.price = price;
    order.quantity = qty;
    return order;
  }

  const std::vector<Event>& Submit(const NewOrder& order) {
    events_.clear();
    book_.Submit(order, now_, &events_);
    book_.CheckInvariants();
    return events_;
  }
  const std::vector<Event>& Buy(OrderId id, AccountId account, PriceMicros price, Quantity qty,
                                TimeInForce tif = TimeInForce::kGtc) {
    return Submit(Order(id, account, Side::kBuy, price, qty, tif));
  }
  const std::vector<Event>& Sell(OrderId id, AccountId account, PriceMicros price, Quantity qty,
                                 TimeInForce tif = TimeInForce::kGtc) {
    return Submit(Order(id, account, Side::kSell, price, qty, tif));
  }
  const std::vector<Event>& Market(OrderId id, AccountId account, Side side, Quantity qty,
                                   TimeInForce tif = TimeInForce::kIoc) {
    NewOrder order = Order(id, account, side, 0, qty, tif);
    order.type = OrderType::kMarket;
    return Submit(order);
  }
  const std::vector<Event>& Cancel(OrderId id) {
    events_.clear();
    book_.Cancel(id, now_, &events_);
    book_.CheckInvariants();
    return events_;
  }
  const std::vector<Event>& Replace(OrderId id, std::optional<PriceMicros> price,
                                    std::optional<Quantity> qty) {
    events_.clear();
    book_.Replace(ReplaceRequest{id, price, qty}, now_, &events_);
    book_.CheckInvariants();
    return events_;
  }
  const std::vector<Event>& Advance(Timestamp now) {
    now_ = now;
    events_.clear();
    book_.AdvanceTime(now_, &events_);
    book_.CheckInvariants();
    return events_;
  }

  static std::vector<TradeRecord> Trades(const std::vector<Event>& events) {
    std::vector<TradeRecord> trades;
    for (const Event& e : events) {
      if (e.type == EventType::kTrade) trades.push_back({e.id, e.maker_id, e.price, e.quantity});
    }
    return trades;
  }
  static const Event* FindEvent(const std::vector<Event>& events, EventType type, OrderId id) {
    for (const Event& e : events) {
      if (e.type == type && e.id == id) return &e;
    }
    return nullptr;
  }
  Quantity Remaining(OrderId id) {
    OrderView view;
    return book_.Find(id, &view) ? view.remaining : 0;
  }
};

// ---- Priority and trade price

TEST_F(OrderBookTest, LimitOrderRestsWhenNothingCrosses) {
  const auto& events = Buy(1, 1, 500 * kTick, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kAccepted);
  EXPECT_EQ(Remaining(1), 10);
  EXPECT_EQ(book_.BestPrice(Side::kBuy), 500 * kTick);
}

TEST_F(OrderBookTest, TradesAtTheMakersPriceBestPriceFirst) {
  Sell(1, 1, 550, 5);
  Sell(2, 2, 540, 5);
  const auto trades = Trades(Buy(3, 3, 560, 8));
  EXPECT_EQ(trades, (std::vector<TradeRecord>{{3, 2, 540, 5}, {3, 1, 550, 3}}));
  EXPECT_EQ(Remaining(1), 2);
  EXPECT_FALSE(book_.Contains(3));
}

TEST_F(OrderBookTest, EarlierOrderFirstAtOnePrice) {
  Buy(1, 1, 500, 4);
  Buy(2, 2, 500, 4);
  const auto trades = Trades(Sell(3, 3, 500, 6));
  EXPECT_EQ(trades, (std::vector<TradeRecord>{{3, 1, 500, 4}, {3, 2, 500, 2}}));
}

TEST_F(OrderBookTest, PartialFillLeavesRemainderResting) {
  Sell(1, 1, 500, 3);
  Buy(2, 2, 600, 10);
  EXPECT_EQ(Remaining(2), 7);
  EXPECT_EQ(book_.BestPrice(Side::kBuy), 600);
}

TEST_F(OrderBookTest, SellCrossesOnlyBidsAtOrAboveItsPrice) {
  Buy(1, 1, 500, 5);
  Buy(2, 2, 400, 5);
  const auto trades = Trades(Sell(3, 3, 450, 10));
  EXPECT_EQ(trades, (std::vector<TradeRecord>{{3, 1, 500, 5}}));
  EXPECT_EQ(Remaining(3), 5);
  EXPECT_EQ(Remaining(2), 5);
}

// ---- Market orders and time in force

TEST_F(OrderBookTest, MarketOrderIntoEmptyBookIsCancelledWithoutTrade) {
  const auto& events = Market(1, 1, Side::kBuy, 10);
  EXPECT_TRUE(Trades(events).empty());
  const Event* cancelled = FindEvent(events, EventType::kCancelled, 1);
  ASSERT_NE(cancelled, nullptr);
  EXPECT_EQ(cancelled->cancel, CancelReason::kUnfilled);
  EXPECT_EQ(cancelled->quantity, 10);
  EXPECT_EQ(book_.resting_orders(), 0u);
}

TEST_F(OrderBookTest, MarketOrderCrossesEveryPriceAndDropsItsRemainder) {
  Sell(1, 1, 100, 2);
  Sell(2, 2, 900'000, 2);
  const auto& events = Market(3, 3, Side::kBuy, 10);
  EXPECT_EQ(Trades(events), (std::vector<TradeRecord>{{3, 1, 100, 2}, {3, 2, 900'000, 2}}));
  EXPECT_EQ(FindEvent(events, EventType::kCancelled, 3)->quantity, 6);
  EXPECT_FALSE(book_.Contains(3));
}

TEST_F(OrderBookTest, IocRemainderIsCancelled) {
  Sell(1, 1, 500, 3);
  const auto& events = Buy(2, 2, 500, 5, TimeInForce::kIoc);
  EXPECT_EQ(Trades(events).size(), 1u);
  EXPECT_EQ(FindEvent(events, EventType::kCancelled, 2)->quantity, 2);
  EXPECT_FALSE(book_.Contains(2));
}

TEST_F(OrderBookTest, FokExactlyFillableTrades) {
  Sell(1, 1, 500, 3);
  Sell(2, 2, 510, 2);
  const auto& events = Buy(3, 3, 510, 5, TimeInForce::kFok);
  EXPECT_EQ(Trades(events), (std::vector<TradeRecord>{{3, 1, 500, 3}, {3, 2, 510, 2}}));
  EXPECT_EQ(book_.resting_orders(), 0u);
}

TEST_F(OrderBookTest, FokOneShortIsRejectedAndChangesNothing) {
  Sell(1, 1, 500, 3);
  Sell(2, 2, 510, 2);
  const auto& events = Buy(3, 3, 510, 6, TimeInForce::kFok);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kRejected);
  EXPECT_EQ(events[0].reject, RejectReason::kFokUnfillable);
  EXPECT_EQ(Remaining(1), 3);
  EXPECT_EQ(Remaining(2), 2);
}

TEST_F(OrderBookTest, FokCountsOnlyOtherAccountsAndCancelsNothingWhenItFails) {
  Sell(1, 7, 500, 5);  // Same account as the fok below.
  Sell(2, 2, 500, 3);
  const auto& events = Buy(3, 7, 500, 4, TimeInForce::kFok);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].reject, RejectReason::kFokUnfillable);
  EXPECT_TRUE(book_.Contains(1));  // The self-trade check cancelled nothing.
}

TEST_F(OrderBookTest, FokCountsWholeLotsOnly) {
  Sell(1, 1, 500, 3);
  Sell(2, 2, 500, 3);
  NewOrder fok = Order(3, 3, Side::kBuy, 500, 4, TimeInForce::kFok);
  fok.lot = 2;
  // Each 3-slot sell gives one whole lot of 2: together exactly the 4 asked for.
  EXPECT_EQ(Trades(Submit(fok)), (std::vector<TradeRecord>{{3, 1, 500, 2}, {3, 2, 500, 2}}));
  Sell(4, 1, 500, 3);
  Sell(5, 2, 500, 3);
  NewOrder fok4 = Order(6, 3, Side::kBuy, 500, 8, TimeInForce::kFok);
  fok4.lot = 4;
  // Sells of 1, 1, 3, 3 remain: no single sell holds a lot of 4.
  EXPECT_EQ(Submit(fok4)[0].reject, RejectReason::kFokUnfillable);
}

TEST_F(OrderBookTest, FokMarketOrderChecksTheWholeBook) {
  Sell(1, 1, 100, 2);
  Sell(2, 2, 900, 2);
  EXPECT_EQ(Market(3, 3, Side::kBuy, 5, TimeInForce::kFok)[0].reject,
            RejectReason::kFokUnfillable);
  EXPECT_EQ(Trades(Market(4, 3, Side::kBuy, 4, TimeInForce::kFok)).size(), 2u);
}

// ---- Self-trade prevention

TEST_F(OrderBookTest, SelfTradeCancelsTheRestingOrderAndMatchingGoesOn) {
  Sell(1, 5, 500, 4);  // Account 5.
  Sell(2, 6, 500, 4);
  const auto& events = Buy(3, 5, 500, 4);  // Account 5 again.
  const Event* cancelled = FindEvent(events, EventType::kCancelled, 1);
  ASSERT_NE(cancelled, nullptr);
  EXPECT_EQ(cancelled->cancel, CancelReason::kSelfTrade);
  EXPECT_EQ(cancelled->quantity, 4);
  EXPECT_EQ(Trades(events), (std::vector<TradeRecord>{{3, 2, 500, 4}}));
  EXPECT_FALSE(book_.Contains(1));
}

TEST_F(OrderBookTest, SelfTradeCheckComesBeforeTheLotCheck) {
  Sell(1, 5, 500, 1);  // Too small for the lot, but same account: cancelled, not skipped.
  NewOrder buy = Order(2, 5, Side::kBuy, 500, 4);
  buy.lot = 4;
  const auto& events = Submit(buy);
  EXPECT_NE(FindEvent(events, EventType::kCancelled, 1), nullptr);
  EXPECT_FALSE(book_.Contains(1));
  EXPECT_TRUE(book_.Contains(2));
}

TEST_F(OrderBookTest, SelfTradeLeavesOrdersThatAreNotReachedAlone) {
  Sell(1, 2, 500, 4);
  Sell(2, 5, 510, 4);  // Same account as the buyer, but the buy fills before reaching it.
  Buy(3, 5, 510, 4);
  EXPECT_TRUE(book_.Contains(2));
}

// ---- Lots and eligibility

TEST_F(OrderBookTest, BuyLotFillsInWholeLotsFromOneSell) {
  Sell(1, 1, 500, 6);
  NewOrder buy = Order(2, 2, Side::kBuy, 500, 8);
  buy.lot = 4;
  EXPECT_EQ(Trades(Submit(buy)), (std::vector<TradeRecord>{{2, 1, 500, 4}}));
  EXPECT_EQ(Remaining(1), 2);
  EXPECT_EQ(Remaining(2), 4);
}

TEST_F(OrderBookTest, LotsAreSkippedNotCancelled) {
  Sell(1, 1, 500, 2);  // Fewer than a lot: skipped, stays resting with its priority.
  Sell(2, 2, 500, 4);
  NewOrder buy = Order(3, 3, Side::kBuy, 500, 4);
  buy.lot = 4;
  EXPECT_EQ(Trades(Submit(buy)), (std::vector<TradeRecord>{{3, 2, 500, 4}}));
  EXPECT_EQ(Remaining(1), 2);
  // The skipped sell keeps its place: a plain buy takes it first.
  EXPECT_EQ(Trades(Buy(4, 4, 500, 2)), (std::vector<TradeRecord>{{4, 1, 500, 2}}));
}

TEST_F(OrderBookTest, IncomingSellSkipsBuysWhoseLotItCannotFill) {
  NewOrder big = Order(1, 1, Side::kBuy, 600, 4);
  big.lot = 4;
  Submit(big);
  Buy(2, 2, 500, 3);
  EXPECT_EQ(Trades(Sell(3, 3, 500, 3)), (std::vector<TradeRecord>{{3, 2, 500, 3}}));
  EXPECT_EQ(Remaining(1), 4);
}

TEST_F(OrderBookTest, CrossedButUntradableOrdersMayRestTogether) {
  NewOrder buy = Order(1, 1, Side::kBuy, 600, 4);
  buy.lot = 4;
  Submit(buy);
  Sell(2, 2, 500, 2);  // Crosses in price, cannot fill a lot: both rest.
  EXPECT_TRUE(book_.Contains(1));
  EXPECT_TRUE(book_.Contains(2));
  // A second small sell does not add up with the first: lots come from one sell.
  Sell(3, 3, 500, 2);
  EXPECT_TRUE(book_.Contains(1));
}

class RegionOracle : public EligibilityOracle {
 public:
  // Constraint 1 means "machine must be even".
  bool CanTrade(const OrderView& buy, const OrderView& sell) const override {
    return buy.constraint != 1 || sell.machine % 2 == 0;
  }
};

TEST_F(OrderBookTest, ConstrainedBuySkipsIneligibleSellsAndKeepsPriority) {
  RegionOracle oracle;
  book_.SetEligibilityOracle(&oracle);
  NewOrder odd = Order(1, 1, Side::kSell, 500, 5);
  odd.machine = 3;
  NewOrder even = Order(2, 2, Side::kSell, 510, 5);
  even.machine = 4;
  Submit(odd);
  Submit(even);
  NewOrder buy = Order(3, 3, Side::kBuy, 520, 5);
  buy.constraint = 1;
  const auto& events = Submit(buy);
  ASSERT_EQ(Trades(events), (std::vector<TradeRecord>{{3, 2, 510, 5}}));
  const Event* trade = &events[1];
  EXPECT_EQ(trade->machine, 4u);
  EXPECT_EQ(Remaining(1), 5);  // Skipped, still resting.
}

TEST_F(OrderBookTest, IncomingSellRespectsRestingBuysConstraint) {
  RegionOracle oracle;
  book_.SetEligibilityOracle(&oracle);
  NewOrder constrained = Order(1, 1, Side::kBuy, 600, 5);
  constrained.constraint = 1;
  Submit(constrained);
  Buy(2, 2, 500, 5);
  NewOrder sell = Order(3, 3, Side::kSell, 500, 5);
  sell.machine = 7;
  EXPECT_EQ(Trades(Submit(sell)), (std::vector<TradeRecord>{{3, 2, 500, 5}}));
  EXPECT_TRUE(book_.Contains(1));
}

// ---- Cancel

TEST_F(OrderBookTest, CancelRemovesARestingOrder) {
  Buy(1, 1, 500, 5);
  const auto& events = Cancel(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kCancelled);
  EXPECT_EQ(events[0].cancel, CancelReason::kRequested);
  EXPECT_EQ(events[0].quantity, 5);
  EXPECT_EQ(book_.levels(Side::kBuy), 0u);
}

TEST_F(OrderBookTest, CancelOfFilledOrderIsRejected) {
  Sell(1, 1, 500, 5);
  Buy(2, 2, 500, 5);
  const auto& events = Cancel(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kRejected);
  EXPECT_EQ(events[0].reject, RejectReason::kUnknownOrder);
  EXPECT_EQ(events[0].command, CommandKind::kCancel);
}

TEST_F(OrderBookTest, CancelOfUnknownOrderIsRejected) {
  EXPECT_EQ(Cancel(42)[0].reject, RejectReason::kUnknownOrder);
  Buy(1, 1, 500, 5);
  Cancel(1);
  EXPECT_EQ(Cancel(1)[0].reject, RejectReason::kUnknownOrder);
}

// ---- Replace

TEST_F(OrderBookTest, ReplaceQuantityDownKeepsPriority) {
  Buy(1, 1, 500, 10);
  Buy(2, 2, 500, 10);
  const auto& events = Replace(1, std::nullopt, 4);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kReplaced);
  EXPECT_TRUE(events[0].priority_kept);
  EXPECT_EQ(Trades(Sell(3, 3, 500, 5)), (std::vector<TradeRecord>{{3, 1, 500, 4}, {3, 2, 500, 1}}));
}

TEST_F(OrderBookTest, ReplaceQuantityUpLosesPriority) {
  Buy(1, 1, 500, 10);
  Buy(2, 2, 500, 10);
  EXPECT_FALSE(Replace(1, std::nullopt, 12)[0].priority_kept);
  EXPECT_EQ(Trades(Sell(3, 3, 500, 5)), (std::vector<TradeRecord>{{3, 2, 500, 5}}));
  EXPECT_EQ(Remaining(1), 12);
}

TEST_F(OrderBookTest, ReplacePriceLosesPriorityAndMayTradeAtOnce) {
  Buy(1, 1, 500, 10);
  Buy(2, 2, 500, 10);
  Sell(3, 3, 600, 4);
  const auto& events = Replace(2, 600, std::nullopt);
  EXPECT_FALSE(events[0].priority_kept);
  // The replaced order is the taker at once, at the maker's price.
  EXPECT_EQ(Trades(events), (std::vector<TradeRecord>{{2, 3, 600, 4}}));
  EXPECT_EQ(Remaining(2), 6);
  // Moving back to 500 puts it behind order 1.
  Replace(2, 500, std::nullopt);
  EXPECT_EQ(Trades(Sell(4, 4, 500, 11)), (std::vector<TradeRecord>{{4, 1, 500, 10}, {4, 2, 500, 1}}));
}

TEST_F(OrderBookTest, ReplaceToZeroCancels) {
  Buy(1, 1, 500, 10);
  const auto& events = Replace(1, std::nullopt, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kCancelled);
  EXPECT_EQ(events[0].cancel, CancelReason::kReplacedToZero);
  EXPECT_FALSE(book_.Contains(1));
}

TEST_F(OrderBookTest, ReplaceRejectsBadInputAndChangesNothing) {
  NewOrder buy = Order(1, 1, Side::kBuy, 500, 8);
  buy.lot = 4;
  Submit(buy);
  EXPECT_EQ(Replace(1, std::nullopt, 6)[0].reject, RejectReason::kLotMismatch);
  EXPECT_EQ(Replace(1, 555, std::nullopt)[0].reject, RejectReason::kOffTick);
  EXPECT_EQ(Replace(1, -100, std::nullopt)[0].reject, RejectReason::kInvalidPrice);
  EXPECT_EQ(Replace(1, std::nullopt, -4)[0].reject, RejectReason::kInvalidQuantity);
  EXPECT_EQ(Replace(1, std::nullopt, 2'000'000)[0].reject, RejectReason::kInvalidQuantity);
  EXPECT_EQ(Replace(9, 500, 4)[0].reject, RejectReason::kUnknownOrder);
  OrderView view;
  ASSERT_TRUE(book_.Find(1, &view));
  EXPECT_EQ(view.remaining, 8);
  EXPECT_EQ(view.price, 500);
}

TEST_F(OrderBookTest, ReplaceKeepsLotAndSelfTradeAppliesOnReentry) {
  Sell(1, 1, 600, 3);  // Account 1.
  NewOrder buy = Order(2, 1, Side::kBuy, 500, 4);  // Also account 1.
  buy.lot = 4;
  Submit(buy);
  Sell(3, 3, 600, 4);
  const auto& events = Replace(2, 600, std::nullopt);
  EXPECT_NE(FindEvent(events, EventType::kCancelled, 1), nullptr);  // Self-trade.
  EXPECT_EQ(Trades(events), (std::vector<TradeRecord>{{2, 3, 600, 4}}));
}

TEST_F(OrderBookTest, ReplacedGtdOrderBecomesGtcWhenItLosesPriority) {
  NewOrder gtd = Order(1, 1, Side::kBuy, 500, 5, TimeInForce::kGtd);
  gtd.expiry = 100;
  Submit(gtd);
  Replace(1, 600, std::nullopt);
  EXPECT_TRUE(Advance(200).empty());
  EXPECT_TRUE(book_.Contains(1));
}

// ---- Validation

TEST_F(OrderBookTest, RejectsOffTickPrice) {
  EXPECT_EQ(Buy(1, 1, 555, 5)[0].reject, RejectReason::kOffTick);
  EXPECT_EQ(book_.resting_orders(), 0u);
}

TEST_F(OrderBookTest, RejectsNonPositivePrice) {
  EXPECT_EQ(Buy(1, 1, 0, 5)[0].reject, RejectReason::kInvalidPrice);
  EXPECT_EQ(Sell(2, 1, -100, 5)[0].reject, RejectReason::kInvalidPrice);
}

TEST_F(OrderBookTest, RejectsZeroNegativeAndTooLargeQuantity) {
  EXPECT_EQ(Buy(1, 1, 500, 0)[0].reject, RejectReason::kInvalidQuantity);
  EXPECT_EQ(Buy(2, 1, 500, -3)[0].reject, RejectReason::kInvalidQuantity);
  EXPECT_EQ(Buy(3, 1, 500, 1'000'001)[0].reject, RejectReason::kInvalidQuantity);
  EXPECT_EQ(Buy(4, 1, 500, 1'000'000)[0].type, EventType::kAccepted);
}

TEST_F(OrderBookTest, RejectsQuantityNotAMultipleOfTheLot) {
  NewOrder buy = Order(1, 1, Side::kBuy, 500, 6);
  buy.lot = 4;
  EXPECT_EQ(Submit(buy)[0].reject, RejectReason::kLotMismatch);
}

TEST_F(OrderBookTest, RejectsBadLots) {
  NewOrder zero = Order(1, 1, Side::kBuy, 500, 4);
  zero.lot = 0;
  EXPECT_EQ(Submit(zero)[0].reject, RejectReason::kInvalidLot);
  NewOrder sell = Order(2, 1, Side::kSell, 500, 4);
  sell.lot = 2;
  EXPECT_EQ(Submit(sell)[0].reject, RejectReason::kInvalidLot);
}

TEST_F(OrderBookTest, RejectsDuplicateIdOfRestingOrder) {
  Buy(1, 1, 500, 5);
  EXPECT_EQ(Sell(1, 2, 900, 5)[0].reject, RejectReason::kDuplicateId);
  EXPECT_EQ(Remaining(1), 5);
}

TEST_F(OrderBookTest, RejectsWhenTheBookIsFull) {
  BookConfig config = TestConfig();
  config.resting_orders_max = 2;
  OrderBook small(config);
  std::vector<Event> events;
  NewOrder order = Order(1, 1, Side::kBuy, 500, 1);
  small.Submit(order, 0, &events);
  order.id = 2;
  small.Submit(order, 0, &events);
  order.id = 3;
  events.clear();
  small.Submit(order, 0, &events);
  EXPECT_EQ(events[0].reject, RejectReason::kBookFull);
  // An order that cannot rest is still accepted.
  NewOrder ioc = Order(4, 2, Side::kSell, 500, 1, TimeInForce::kIoc);
  events.clear();
  small.Submit(ioc, 0, &events);
  EXPECT_EQ(events[0].type, EventType::kAccepted);
}

// ---- Expiry

TEST_F(OrderBookTest, GtdOrderExpiresAtItsExpiryTime) {
  NewOrder gtd = Order(1, 1, Side::kBuy, 500, 5, TimeInForce::kGtd);
  gtd.expiry = 100;
  Submit(gtd);
  EXPECT_TRUE(Advance(99).empty());
  const auto& events = Advance(100);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kExpired);
  EXPECT_EQ(events[0].quantity, 5);
  EXPECT_FALSE(book_.Contains(1));
}

TEST_F(OrderBookTest, ExpiryHappensBeforeTheCommandThatCarriesTheTime) {
  NewOrder gtd = Order(1, 1, Side::kSell, 500, 5, TimeInForce::kGtd);
  gtd.expiry = 100;
  Submit(gtd);
  now_ = 100;
  const auto& events = Buy(2, 2, 500, 5);
  EXPECT_EQ(events[0].type, EventType::kExpired);
  EXPECT_TRUE(Trades(events).empty());
  EXPECT_TRUE(book_.Contains(2));
}

TEST_F(OrderBookTest, GtdNeedsAFutureExpiry) {
  now_ = 50;
  NewOrder gtd = Order(1, 1, Side::kBuy, 500, 5, TimeInForce::kGtd);
  EXPECT_EQ(Submit(gtd)[0].reject, RejectReason::kMissingExpiry);
  gtd.expiry = 50;
  EXPECT_EQ(Submit(gtd)[0].reject, RejectReason::kExpiryInPast);
  gtd.expiry = 51;
  EXPECT_EQ(Submit(gtd)[0].type, EventType::kAccepted);
}

TEST_F(OrderBookTest, MarketGtdOrderAlsoNeedsAFutureExpiry) {
  Sell(1, 1, 500, 3);
  now_ = 10;
  NewOrder market = Order(2, 2, Side::kBuy, 0, 1, TimeInForce::kGtd);
  market.type = OrderType::kMarket;
  EXPECT_EQ(Submit(market)[0].reject, RejectReason::kMissingExpiry);
  market.expiry = 10;
  EXPECT_EQ(Submit(market)[0].reject, RejectReason::kExpiryInPast);
  market.expiry = 11;
  EXPECT_EQ(Trades(Submit(market)).size(), 1u);
}

TEST_F(OrderBookTest, CancelledGtdOrderDoesNotExpireLater) {
  NewOrder gtd = Order(1, 1, Side::kBuy, 500, 5, TimeInForce::kGtd);
  gtd.expiry = 100;
  Submit(gtd);
  Cancel(1);
  EXPECT_TRUE(Advance(1000).empty());
}

TEST_F(OrderBookTest, PartlyFilledGtdOrderExpiresWithItsRemainder) {
  NewOrder gtd = Order(1, 1, Side::kBuy, 500, 5, TimeInForce::kGtd);
  gtd.expiry = 100;
  Submit(gtd);
  Sell(2, 2, 500, 2);
  Replace(1, std::nullopt, 2);  // Quantity down keeps priority, and gtd.
  const auto& events = Advance(100);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].quantity, 2);
}

TEST_F(OrderBookTest, DepthAggregatesLevelsBestFirst) {
  Buy(1, 1, 500, 5);
  Buy(2, 2, 500, 3);
  Buy(3, 3, 400, 1);
  const auto depth = book_.Depth(Side::kBuy, 10);
  ASSERT_EQ(depth.size(), 2u);
  EXPECT_EQ(depth[0].price, 500);
  EXPECT_EQ(depth[0].quantity, 8);
  EXPECT_EQ(depth[0].orders, 2u);
  EXPECT_EQ(depth[1].price, 400);
}

}  // namespace
}  // namespace ocx::engine
