#include "src/core/exchange.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace ocx::core {
namespace {

using engine::OrderType;
using engine::Side;
using engine::TimeInForce;

constexpr Timestamp kSecond = kMicrosPerSecond;
constexpr Micros kCredit = 1'000'000;

// A market with round numbers: tick 0.0001, taker 20 bps, maker 0 bps.
class ExchangeTest : public ::testing::Test {
 protected:
  ExchangeTest() : x_(ExchangeConfig::Default()) {
    op_ = Create("op", Role::kOperator);
    alice_ = Create("alice", Role::kConsumer);
    bob_ = Create("bob", Role::kConsumer);
    prov_ = Create("prov", Role::kProvider);
    other_prov_ = Create("other", Role::kProvider);
    machine_ = Register(prov_, 16);
  }

  ApplyOutput Run(const CommandBody& command) {
    ApplyOutput out;
    x_.Apply(++seq_, now_, command, &out);
    x_.CheckInvariants();
    return out;
  }
  void Advance(Timestamp by) {
    now_ += by;
    Run(Tick{});
  }
  // Lets time pass while the machine keeps sending heartbeats every 5 s, as its agent does.
  void Elapse(Timestamp by) {
    const Timestamp end = now_ + by;
    while (now_ + 5 * kSecond < end) {
      now_ += 5 * kSecond;
      Run(Heartbeat{machine_});
    }
    now_ = end;
    Run(Heartbeat{machine_});
  }
  AccountId Create(const std::string& name, Role role) {
    const ApplyOutput out = Run(CreateAccount{op_, name, role, {}});
    EXPECT_TRUE(out.result.accepted) << out.result.code();
    return out.result.account;
  }
  MachineId Register(AccountId owner, Quantity cpu_slots) {
    RegisterMachine c;
    c.actor = owner;
    c.spec.name = "m" + std::to_string(seq_);
    c.spec.capacity["cpu"] = cpu_slots;
    c.spec.attributes["region"] = AttributeValue{false, 0, "eu"};
    const ApplyOutput out = Run(c);
    EXPECT_TRUE(out.result.accepted) << out.result.code();
    return out.result.machine;
  }
  void Fund(AccountId account, Micros amount) {
    ASSERT_TRUE(Run(Deposit{op_, account, amount}).result.accepted);
  }
  ApplyOutput Buy(AccountId who, PriceMicros price, Quantity qty, int32_t hours = 1,
                  TimeInForce tif = TimeInForce::kGtc, OrderType type = OrderType::kLimit) {
    return Run(BuyCommand(who, price, qty, hours, tif, type));
  }
  // The command Buy runs, for a test to change before running it.
  PlaceOrder BuyCommand(AccountId who, PriceMicros price, Quantity qty, int32_t hours = 1,
                        TimeInForce tif = TimeInForce::kGtc, OrderType type = OrderType::kLimit) {
    PlaceOrder c;
    c.actor = who;
    c.market = "cpu";
    c.client_order_id = "c" + std::to_string(++client_id_);
    c.side = Side::kBuy;
    c.type = type;
    c.tif = tif;
    c.price = price;
    c.quantity = qty;
    c.max_hours = hours;
    return c;
  }
  ApplyOutput Sell(AccountId who, MachineId machine, PriceMicros price, Quantity qty,
                   TimeInForce tif = TimeInForce::kGtc) {
    PlaceOrder c;
    c.actor = who;
    c.market = "cpu";
    c.client_order_id = "c" + std::to_string(++client_id_);
    c.side = Side::kSell;
    c.tif = tif;
    c.price = price;
    c.quantity = qty;
    c.machine = machine;
    return Run(c);
  }
  Micros Avail(AccountId a) const { return x_.Balance({a, BalanceKind::kAvailable}); }
  Micros Held(AccountId a) const { return x_.Balance({a, BalanceKind::kHeld}); }
  Micros Escrow(AccountId a) const { return x_.Balance({a, BalanceKind::kEscrow}); }
  Micros Earned(AccountId a) const { return x_.Balance({a, BalanceKind::kEarnings}); }
  Micros Fees() const { return x_.Balance({0, BalanceKind::kFees}); }
  Micros Pool() const { return x_.Balance({0, BalanceKind::kInsurance}); }
  LeaseId OnlyLease() const {
    EXPECT_EQ(x_.leases().size(), 1u);
    return x_.leases().begin()->first;
  }

  Exchange x_;
  uint64_t seq_ = 0;
  Timestamp now_ = 1'700'000'000 * kSecond;
  int client_id_ = 0;
  AccountId op_ = 0, alice_ = 0, bob_ = 0, prov_ = 0, other_prov_ = 0;
  MachineId machine_ = 0;
};

// ---- Escrow (RULEBOOK 3)

TEST_F(ExchangeTest, BuyHoldsPriceTimesQuantityTimesHoursPlusTakerFee) {
  Fund(alice_, 100 * kCredit);
  // 0.0555 * 3 slots * 7 hours = 1.1655 credits; taker fee 20 bps = 0.002331.
  ASSERT_TRUE(Buy(alice_, 55'500, 3, 7).result.accepted);
  EXPECT_EQ(Held(alice_), 1'165'500 + 2'331);
  EXPECT_EQ(Avail(alice_), 100 * kCredit - 1'167'831);
}

TEST_F(ExchangeTest, BuyBeyondTheAvailableBalanceIsRejectedAndChangesNothing) {
  Fund(alice_, 1'167'830);  // One micro-credit short of the hold above.
  const ApplyOutput out = Buy(alice_, 55'500, 3, 7);
  EXPECT_FALSE(out.result.accepted);
  EXPECT_EQ(out.result.code(), "insufficient_funds");
  EXPECT_EQ(Held(alice_), 0);
  EXPECT_EQ(Avail(alice_), 1'167'830);
  EXPECT_TRUE(x_.orders().empty());
}

TEST_F(ExchangeTest, CancelReleasesTheWholeHold) {
  Fund(alice_, 10 * kCredit);
  const OrderId id = Buy(alice_, 100'000, 5, 2).result.order;
  ASSERT_GT(Held(alice_), 0);
  ASSERT_TRUE(Run(CancelOrder{alice_, id}).result.accepted);
  EXPECT_EQ(Held(alice_), 0);
  EXPECT_EQ(Avail(alice_), 10 * kCredit);
}

TEST_F(ExchangeTest, TradeMovesHoldToEscrowAndReleasesPriceImprovement) {
  Fund(alice_, 10 * kCredit);
  ASSERT_TRUE(Sell(prov_, machine_, 40'000, 4).result.accepted);
  // Alice bids 0.05 for 4 slots x 2 h: hold 0.4 + fee 0.0008. She pays the maker's 0.04.
  ASSERT_TRUE(Buy(alice_, 50'000, 4, 2).result.accepted);
  const Micros escrow = 40'000 * 4 * 2 + 40'000 * 4 * 2 * 20 / 10'000;  // 0.32 + 0.00064
  EXPECT_EQ(Escrow(alice_), escrow);
  EXPECT_EQ(Held(alice_), 0);
  EXPECT_EQ(Avail(alice_), 10 * kCredit - escrow);
  const Lease& lease = x_.leases().at(OnlyLease());
  EXPECT_EQ(lease.price, 40'000);
  EXPECT_EQ(lease.slots, 4);
  EXPECT_EQ(lease.machine, machine_);
}

TEST_F(ExchangeTest, PartialFillKeepsTheHoldOfTheRestingRemainder) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 50'000, 1);
  ASSERT_TRUE(Buy(alice_, 50'000, 3, 1).result.accepted);
  // 2 slots rest: their hold stays; 1 slot went to escrow.
  EXPECT_EQ(Held(alice_), Exchange::HoldFor(50'000, 2, 1, 20));
  EXPECT_EQ(Escrow(alice_), Exchange::HoldFor(50'000, 1, 1, 20));
}

TEST_F(ExchangeTest, MarketBuyIsHeldAtTheWorstAskItCouldReach) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 10'000, 1);
  Sell(prov_, machine_, 90'000, 1);
  const ApplyOutput out = Buy(alice_, 0, 1, 1, TimeInForce::kIoc, OrderType::kMarket);
  ASSERT_TRUE(out.result.accepted);
  // Filled at 0.01; the hold at 0.09 is released to escrow at 0.01 plus its fee.
  EXPECT_EQ(Escrow(alice_), Exchange::HoldFor(10'000, 1, 1, 20));
  EXPECT_EQ(Held(alice_), 0);
  Fund(bob_, Exchange::HoldFor(90'000, 2, 1, 20) - 1);
  EXPECT_EQ(Buy(bob_, 0, 2, 1, TimeInForce::kIoc, OrderType::kMarket).result.code(),
            "insufficient_funds");
}

TEST_F(ExchangeTest, MakerBuyerPaysNoTakerFee) {
  Fund(alice_, 10 * kCredit);
  Buy(alice_, 50'000, 2, 1);                        // Rests: alice is the maker.
  ASSERT_TRUE(Sell(prov_, machine_, 50'000, 2).result.accepted);  // Seller is the taker.
  EXPECT_EQ(Escrow(alice_), 100'000);  // No fee on top for a maker (0 bps).
  EXPECT_EQ(Avail(alice_), 10 * kCredit - 100'000);
}

// ---- Billing (RULEBOOK 3)

TEST_F(ExchangeTest, UsageIsBilledBySecondFromEscrowWithFeesAndInsurance) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 2);
  Buy(alice_, 36'000, 2, 1);  // Alice takes: she pays 20 bps on top; the maker seller 0.
  const LeaseId lease = OnlyLease();
  Elapse(100 * kSecond);
  ASSERT_TRUE(Run(ReportUsage{machine_, lease, 100, 150, 1000, 0}).result.accepted);
  // floor(0.036 * 2 * 100 / 3600) = 0.002 credits; buyer fee floor(2000 * 20 / 10000) = 4.
  EXPECT_EQ(Earned(prov_), 2'000);
  EXPECT_EQ(Fees() + Pool(), 4);
  EXPECT_EQ(Pool(), 1);  // floor(4 / 4).
  EXPECT_EQ(Escrow(alice_), Exchange::HoldFor(36'000, 2, 1, 20) - 2'004);
}

TEST_F(ExchangeTest, BillingOnCumulativeSecondsNeverAccumulatesRounding) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 100, 1);  // 0.0001 per hour: 1/36 micro-credit per second.
  Buy(alice_, 100, 1, 1);
  const LeaseId lease = OnlyLease();
  for (int s = 1; s <= 900; ++s) {
    Elapse(kSecond);
    ASSERT_TRUE(Run(ReportUsage{machine_, lease, s, 0, 0, 0}).result.accepted);
  }
  // 900 per-second reports bill exactly floor(100 * 900 / 3600) = 25 micro-credits.
  EXPECT_EQ(Earned(prov_), 25);
  EXPECT_EQ(x_.leases().at(lease).billed, 25);
}

TEST_F(ExchangeTest, SellerTakerHasItsFeeDeductedFromEarnings) {
  Fund(alice_, 10 * kCredit);
  Buy(alice_, 360'000, 1, 1);  // Rests: alice is the maker.
  Sell(prov_, machine_, 360'000, 1);
  const LeaseId lease = OnlyLease();
  Elapse(3600 * kSecond - 1);  // Just before max_hours.
  ASSERT_TRUE(Run(ReportUsage{machine_, lease, 3599, 0, 0, 0}).result.accepted);
  // Bill floor(0.36 * 3599 / 3600) = 0.3599; seller fee floor(359900 * 20 / 10000) = 719.
  EXPECT_EQ(Earned(prov_), 359'900 - 719);
  EXPECT_EQ(Fees() + Pool(), 719);
  EXPECT_EQ(Pool(), 179);
}

TEST_F(ExchangeTest, LeaseEndsAtMaxHoursAndRefundsTheRest) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 50'000, 1);
  Buy(alice_, 60'000, 1, 2);
  const LeaseId lease = OnlyLease();
  Elapse(1800 * kSecond);
  Run(ReportUsage{machine_, lease, 1800, 0, 0, 0});
  Elapse(7200 * kSecond);  // Well past max_hours.
  EXPECT_TRUE(x_.leases().empty());
  // Billed exactly 2 hours: 0.1, plus the buyer's fee 0.0002; the rest came back.
  EXPECT_EQ(Earned(prov_), 100'000);
  EXPECT_EQ(Escrow(alice_), 0);
  EXPECT_EQ(Avail(alice_), 10 * kCredit - 100'200);
  EXPECT_EQ(x_.machines().at(machine_).leased[0], 0);
}

TEST_F(ExchangeTest, ReleaseByBuyerBillsToNowAndRefunds) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 1);
  Buy(alice_, 36'000, 1, 3);
  const LeaseId lease = OnlyLease();
  Elapse(60 * kSecond);
  EXPECT_EQ(Run(EndLease{bob_, 0, lease, LeaseEndReason::kReleased}).result.code(),
            "not_authorized");
  ASSERT_TRUE(Run(EndLease{alice_, 0, lease, LeaseEndReason::kReleased}).result.accepted);
  EXPECT_EQ(Earned(prov_), 600);  // 0.036 * 60 / 3600.
  EXPECT_EQ(Escrow(alice_), 0);
  EXPECT_EQ(Avail(alice_), 10 * kCredit - 600 - 1);  // Fee floor(600 * 0.002) = 1.
}

TEST_F(ExchangeTest, ReclaimStopsBillingAtTheReclaim) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 1);
  Buy(alice_, 36'000, 1, 1);
  const LeaseId lease = OnlyLease();
  Elapse(120 * kSecond);
  ASSERT_TRUE(Run(EndLease{prov_, 0, lease, LeaseEndReason::kReclaimed}).result.accepted);
  const Micros earned = Earned(prov_);
  EXPECT_EQ(earned, 1'200);
  Elapse(600 * kSecond);
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 700, 0, 0, 0}).result.code(), "unknown_lease");
  EXPECT_EQ(Earned(prov_), earned);
}

// ---- Liveness (RULEBOOK 4)

TEST_F(ExchangeTest, OfflineMachineLosesItsAsksAndLeasesEndAtTheLastReport) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 1);
  Sell(prov_, machine_, 99'000, 3);  // An ask that stays resting.
  Buy(alice_, 36'000, 1, 1);
  const LeaseId lease = OnlyLease();
  now_ += 10 * kSecond;
  Run(Heartbeat{machine_});
  Run(ReportUsage{machine_, lease, 10, 0, 0, 0});
  // No heartbeat for 15 s: offline. Nothing after the report at 10 s is billed.
  Advance(15 * kSecond);
  EXPECT_FALSE(x_.machines().at(machine_).online);
  EXPECT_TRUE(x_.leases().empty());
  EXPECT_TRUE(x_.orders().empty());
  EXPECT_EQ(Earned(prov_), 100);  // 0.036 * 10 / 3600.
  EXPECT_EQ(Escrow(alice_), 0);
  EXPECT_EQ(Sell(prov_, machine_, 36'000, 1).result.code(), "machine_offline");
  Run(Heartbeat{machine_});
  EXPECT_TRUE(x_.machines().at(machine_).online);
}

TEST_F(ExchangeTest, HeartbeatsKeepAMachineOnline) {
  for (int i = 0; i < 10; ++i) {
    now_ += 5 * kSecond;
    Run(Heartbeat{machine_});
  }
  EXPECT_TRUE(x_.machines().at(machine_).online);
}

TEST_F(ExchangeTest, UsageClaimingMoreThanTheAllocationIsRefused) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 2);
  Buy(alice_, 36'000, 2, 1);
  const LeaseId lease = OnlyLease();
  Elapse(100 * kSecond);
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 100, 201, 0, 0}).result.code(),
            "usage_exceeds_allocation");  // 2 slots x 1 vCPU x 100 s = 200 CPU-seconds.
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 100, 0, 4097, 0}).result.code(),
            "usage_exceeds_allocation");  // 2 x 2 GiB.
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 100, 0, 0, 1}).result.code(),
            "usage_exceeds_allocation");  // No GPU in a cpu slot.
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 200, 0, 0, 0}).result.code(), "usage_ahead_of_clock");
  EXPECT_EQ(Run(ReportUsage{machine_ + 1, lease, 50, 0, 0, 0}).result.code(), "unknown_machine");
  ASSERT_TRUE(Run(ReportUsage{machine_, lease, 100, 200, 4096, 0}).result.accepted);
  EXPECT_EQ(Run(ReportUsage{machine_, lease, 99, 0, 0, 0}).result.code(), "stale_usage");
  EXPECT_EQ(Earned(prov_), 2'000);
}

// ---- Capacity and authorization

TEST_F(ExchangeTest, SellsAreBoundedByTheMachinesFreeCapacity) {
  ASSERT_TRUE(Sell(prov_, machine_, 50'000, 10).result.accepted);
  EXPECT_EQ(Sell(prov_, machine_, 50'000, 7).result.code(), "insufficient_capacity");
  ASSERT_TRUE(Sell(prov_, machine_, 50'000, 6).result.accepted);
  Fund(alice_, 10 * kCredit);
  Buy(alice_, 50'000, 16, 1);  // Everything is leased now.
  EXPECT_EQ(Sell(prov_, machine_, 50'000, 1).result.code(), "insufficient_capacity");
  Elapse(60 * kSecond);
  for (const auto& [id, lease] : std::map<LeaseId, Lease>(x_.leases())) {
    Run(EndLease{alice_, 0, id, LeaseEndReason::kReleased});
  }
  EXPECT_TRUE(Sell(prov_, machine_, 50'000, 16).result.accepted);
}

TEST_F(ExchangeTest, OnlyTheOwnerMaySellAMachine) {
  EXPECT_EQ(Sell(other_prov_, machine_, 50'000, 1).result.code(), "not_authorized");
  EXPECT_EQ(Sell(prov_, 999, 50'000, 1).result.code(), "unknown_machine");
}

TEST_F(ExchangeTest, OnlyOperatorsMoveMoneyInAndOut) {
  EXPECT_EQ(Run(Deposit{alice_, alice_, kCredit}).result.code(), "not_authorized");
  Fund(alice_, kCredit);
  EXPECT_EQ(Run(Withdraw{alice_, alice_, kCredit, BalanceKind::kAvailable}).result.code(),
            "not_authorized");
  EXPECT_EQ(Run(Withdraw{op_, alice_, kCredit + 1, BalanceKind::kAvailable}).result.code(),
            "insufficient_funds");
  ASSERT_TRUE(Run(Withdraw{op_, alice_, kCredit, BalanceKind::kAvailable}).result.accepted);
  EXPECT_EQ(Avail(alice_), 0);
  EXPECT_EQ(Run(Deposit{op_, alice_, 0}).result.code(), "invalid_amount");
  EXPECT_EQ(Run(Deposit{op_, 999, kCredit}).result.code(), "unknown_account");
}

TEST_F(ExchangeTest, ATokenIsReplacedByItsAccountOrAnOperatorOnly) {
  const std::string first(64, 'a'), second(64, 'b'), third(64, 'c');
  // The account itself.
  ApplyOutput out = Run(RotateToken{alice_, alice_, first});
  ASSERT_TRUE(out.result.accepted) << out.result.code();
  EXPECT_EQ(x_.accounts().at(alice_).token_hash, first);
  ASSERT_EQ(out.events.size(), 1u);
  const auto* rotated = std::get_if<TokenRotated>(&out.events[0]);
  ASSERT_NE(rotated, nullptr);
  EXPECT_EQ(rotated->account, alice_);
  EXPECT_EQ(rotated->token_hash, first);
  // An operator, for the account.
  ASSERT_TRUE(Run(RotateToken{op_, alice_, second}).result.accepted);
  EXPECT_EQ(x_.accounts().at(alice_).token_hash, second);
  // Refusals change nothing and say nothing happened.
  for (const auto& [command, code] : std::vector<std::pair<RotateToken, std::string>>{
           {RotateToken{bob_, alice_, third}, "not_authorized"},
           {RotateToken{prov_, alice_, third}, "not_authorized"},
           {RotateToken{999, alice_, third}, "not_authorized"},
           {RotateToken{op_, 999, third}, "unknown_account"},
           {RotateToken{alice_, alice_, ""}, "invalid_token_hash"},
           {RotateToken{alice_, alice_, std::string(64, 'A')}, "invalid_token_hash"},
           {RotateToken{alice_, alice_, std::string(63, 'a')}, "invalid_token_hash"}}) {
    out = Run(command);
    EXPECT_EQ(out.result.code(), code) << command.account << " by " << command.actor;
    EXPECT_TRUE(out.events.empty());
  }
  EXPECT_EQ(x_.accounts().at(alice_).token_hash, second);
  // The replaced hash is part of the state a snapshot keeps.
  auto restored = Exchange::Restore(ExchangeConfig::Default(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->accounts().at(alice_).token_hash, second);
}

TEST_F(ExchangeTest, OnlyTheOwnerCancelsOrReplacesAnOrder) {
  Fund(alice_, kCredit);
  const OrderId id = Buy(alice_, 10'000, 1, 1).result.order;
  EXPECT_EQ(Run(CancelOrder{bob_, id}).result.code(), "not_authorized");
  EXPECT_EQ(Run(ReplaceOrder{bob_, id, 20'000, std::nullopt}).result.code(), "not_authorized");
  EXPECT_TRUE(x_.orders().contains(id));
  EXPECT_TRUE(Run(CancelOrder{op_, id}).result.accepted);  // An operator may.
}

TEST_F(ExchangeTest, OnlyAnOperatorCreatesOperatorsAfterTheFirst) {
  EXPECT_EQ(Run(CreateAccount{alice_, "mallory", Role::kOperator, {}}).result.code(), "not_authorized");
  EXPECT_TRUE(Run(CreateAccount{op_, "op2", Role::kOperator, {}}).result.accepted);
  EXPECT_EQ(Run(CreateAccount{0, "alice", Role::kConsumer, {}}).result.code(), "name_taken");
  EXPECT_EQ(Run(CreateAccount{0, "bad name!", Role::kConsumer, {}}).result.code(), "invalid_name");
}

TEST_F(ExchangeTest, TokenHashesAndPublicKeysAreCheckedKeptAndSnapshotted) {
  const std::string hash(64, 'c');
  EXPECT_EQ(Run(CreateAccount{0, "t1", Role::kConsumer, "ABC"}).result.code(),
            "invalid_token_hash");
  EXPECT_EQ(Run(CreateAccount{0, "t1", Role::kConsumer, std::string(64, 'C')}).result.code(),
            "invalid_token_hash");
  const ApplyOutput created = Run(CreateAccount{0, "t1", Role::kConsumer, hash});
  ASSERT_TRUE(created.result.accepted);
  EXPECT_EQ(x_.accounts().at(created.result.account).token_hash, hash);
  ASSERT_FALSE(created.events.empty());
  EXPECT_EQ(std::get<AccountCreated>(created.events[0]).token_hash, hash);

  RegisterMachine machine;
  machine.actor = prov_;
  machine.spec.name = "keyed";
  machine.spec.capacity["cpu"] = 1;
  machine.spec.public_key = "xyz";
  EXPECT_EQ(Run(machine).result.code(), "invalid_public_key");
  machine.spec.public_key = std::string(64, '0');
  const ApplyOutput registered = Run(machine);
  ASSERT_TRUE(registered.result.accepted);
  EXPECT_EQ(std::get<MachineRegistered>(registered.events[0]).public_key,
            machine.spec.public_key);

  const auto restored = Exchange::Restore(x_.config(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
  EXPECT_EQ((*restored)->accounts().at(created.result.account).token_hash, hash);
  EXPECT_EQ((*restored)->machines().at(registered.result.machine).spec.public_key,
            machine.spec.public_key);
}

TEST_F(ExchangeTest, ClientOrderIdsAreUniquePerAccount) {
  Fund(alice_, kCredit);
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = "job-1";
  c.price = 10'000;
  c.quantity = 1;
  const OrderId first = Run(c).result.order;
  ASSERT_NE(first, 0u);
  const ApplyOutput retry = Run(c);
  EXPECT_EQ(retry.result.code(), "duplicate_client_order_id");
  EXPECT_EQ(retry.result.order, first);  // Names the order the id placed (idempotent retry).
  EXPECT_EQ(x_.FindClientOrder(alice_, "job-1"), first);
  EXPECT_EQ(x_.FindClientOrder(bob_, "job-1"), 0u);
  c.actor = bob_;
  Fund(bob_, kCredit);
  EXPECT_TRUE(Run(c).result.accepted);
}

// A client order id stays taken while its order is open and for the retention after it was
// used; then it is forgotten (memory and snapshots do not grow with every key ever used) and
// may place a new order. A restored snapshot forgets at the same moments.
TEST_F(ExchangeTest, ClientOrderIdsAreForgottenAfterTheRetentionOnceTheirOrderIsClosed) {
  Fund(alice_, kCredit);
  const Timestamp retention = x_.config().client_id_retention;
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = "key-1";
  c.price = 10'000;
  c.quantity = 1;
  const OrderId first = Run(c).result.order;
  ASSERT_NE(first, 0u);
  // Open past the retention: still taken.
  Advance(retention + kSecond);
  EXPECT_EQ(Run(c).result.code(), "duplicate_client_order_id");
  ASSERT_TRUE(Run(CancelOrder{alice_, first}).result.accepted);
  // Closed, but looked at again only a retention after it was last found open.
  Advance(kSecond);
  EXPECT_EQ(x_.FindClientOrder(alice_, "key-1"), first);
  auto restored = Exchange::Restore(x_.config(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  Advance(retention);
  EXPECT_EQ(x_.FindClientOrder(alice_, "key-1"), 0u);
  ApplyOutput out;
  (*restored)->Apply(seq_, now_, Tick{}, &out);
  EXPECT_EQ((*restored)->FindClientOrder(alice_, "key-1"), 0u);
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
  // Forgotten: the key places a new order.
  const ApplyOutput again = Run(c);
  ASSERT_TRUE(again.result.accepted) << again.result.code();
  EXPECT_NE(again.result.order, first);
}

// A snapshot written before ids had a retention ([account, key, id] without a time) counts
// them as used at the snapshot's time.
TEST_F(ExchangeTest, SnapshotClientIdsWithoutATimeAreReadAsUsedAtTheSnapshot) {
  Fund(alice_, kCredit);
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = "old-key";
  c.price = 10'000;
  c.quantity = 1;
  c.tif = engine::TimeInForce::kIoc;
  ASSERT_TRUE(Run(c).result.accepted);
  auto snapshot = nlohmann::json::parse(x_.Serialize());
  for (auto& entry : snapshot["client_order_ids"]) entry.erase(3);
  auto restored = Exchange::Restore(x_.config(), snapshot.dump());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_NE((*restored)->FindClientOrder(alice_, "old-key"), 0u);
}

// The API's made-up ids (orders placed without an idempotency key) are unique by
// construction; the core keeps none of them, so memory and snapshots do not grow with every
// such order ever placed.
TEST_F(ExchangeTest, AutoClientOrderIdsAreNotKept) {
  Fund(alice_, kCredit);
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = std::string(kAutoClientOrderIdPrefix) + "0123456789abcdef-7";
  c.price = 10'000;
  c.quantity = 1;
  c.tif = engine::TimeInForce::kIoc;
  const std::string before = x_.Serialize();
  const ApplyOutput first = Run(c);
  ASSERT_TRUE(first.result.accepted) << first.result.code();
  EXPECT_EQ(x_.FindClientOrder(alice_, c.client_order_id), 0u);
  // Nothing of it is left in the state: the ioc order is gone and its id was not kept, so
  // the state differs from before only in counters and the ledger.
  EXPECT_EQ(x_.Serialize().find(c.client_order_id), std::string::npos);
  EXPECT_NE(x_.Serialize(), before);
  // The same made-up id again (it cannot happen through the API) is not refused either.
  const ApplyOutput second = Run(c);
  EXPECT_TRUE(second.result.accepted) << second.result.code();
  EXPECT_NE(second.result.order, first.result.order);
  // A client's own id is still kept and refused the second time.
  c.client_order_id = "auto";  // Not the prefix: "auto-" with its dash.
  ASSERT_TRUE(Run(c).result.accepted);
  EXPECT_EQ(Run(c).result.code(), "duplicate_client_order_id");
  const auto restored = Exchange::Restore(x_.config(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
}

TEST_F(ExchangeTest, ReplaceUpNeedsTheExtraHoldAndRejectsWithoutChange) {
  Fund(alice_, Exchange::HoldFor(10'000, 2, 1, 20));
  const OrderId id = Buy(alice_, 10'000, 2, 1).result.order;
  EXPECT_EQ(Run(ReplaceOrder{alice_, id, 20'000, std::nullopt}).result.code(), "insufficient_funds");
  EXPECT_EQ(Held(alice_), Exchange::HoldFor(10'000, 2, 1, 20));
  EXPECT_EQ(Run(ReplaceOrder{alice_, id, 10'050, std::nullopt}).result.code(), "off_tick");
  EXPECT_EQ(Held(alice_), Exchange::HoldFor(10'000, 2, 1, 20));
  ASSERT_TRUE(Run(ReplaceOrder{alice_, id, std::nullopt, 1}).result.accepted);
  EXPECT_EQ(Held(alice_), Exchange::HoldFor(10'000, 1, 1, 20));
}

TEST_F(ExchangeTest, EngineRejectionsReachTheCallerWithTheirCode) {
  Fund(alice_, kCredit);
  EXPECT_EQ(Buy(alice_, 10'050, 1, 1).result.code(), "off_tick");
  EXPECT_EQ(Buy(alice_, 10'000, 0, 1).result.code(), "invalid_quantity");
  EXPECT_EQ(Buy(alice_, 10'000, 1, 0).result.code(), "invalid_max_hours");
  EXPECT_EQ(Held(alice_), 0);
  EXPECT_EQ(Avail(alice_), kCredit);
}

TEST_F(ExchangeTest, AFokBuyCountsOnlyTheAsksItsConstraintsAccept) {
  // Found by the seeded random test: the precheck ignored the constraints, so it passed an
  // order the engine then refused, and the exchange stopped on its assertion.
  Fund(alice_, kCredit);
  Sell(prov_, machine_, 40'000, 2);  // An EU machine's ask.
  PlaceOrder c = BuyCommand(alice_, 50'000, 2, 1, TimeInForce::kFok);
  c.constraints = R"(region == "us")";
  const Micros available = Avail(alice_);
  const ApplyOutput refused = Run(c);
  EXPECT_EQ(refused.result.code(), "fok_unfillable");
  for (const CoreEvent& e : refused.events) {
    EXPECT_FALSE(std::holds_alternative<LedgerTransfer>(e));
  }
  EXPECT_EQ(Avail(alice_), available);
  EXPECT_TRUE(x_.leases().empty());
  // The same order for EU machines fills completely.
  c.client_order_id = "fok-eu";
  c.constraints = R"(region == "eu")";
  ASSERT_TRUE(Run(c).result.accepted);
  EXPECT_EQ(x_.leases().size(), 1u);
  EXPECT_EQ(x_.leases().begin()->second.slots, 2);
}

TEST_F(ExchangeTest, RejectedCommandsMoveNoMoney) {
  // Found by the query store's tests: an engine rejection used to hold and release.
  Fund(alice_, kCredit);
  Sell(prov_, machine_, 10'000, 1);
  for (const ApplyOutput& out : {Buy(alice_, 10'000, 5, 1, TimeInForce::kFok),  // Unfillable.
                                 Buy(alice_, 10'050, 1, 1)}) {                   // Off tick.
    EXPECT_FALSE(out.result.accepted);
    for (const CoreEvent& e : out.events) {
      EXPECT_FALSE(std::holds_alternative<LedgerTransfer>(e)) << out.result.code();
    }
  }
  const OrderId resting = Buy(alice_, 5'000, 1, 1).result.order;
  const ApplyOutput replace = Run(ReplaceOrder{alice_, resting, std::nullopt, 0 - 1});
  EXPECT_EQ(replace.result.code(), "invalid_quantity");
  for (const CoreEvent& e : replace.events) EXPECT_FALSE(std::holds_alternative<LedgerTransfer>(e));
}

TEST_F(ExchangeTest, EveryOrderIdNamesOneAttempt) {
  Fund(alice_, kCredit);
  const ApplyOutput rejected = Buy(alice_, 10'050, 1, 1);
  OrderId rejected_id = 0;
  for (const CoreEvent& e : rejected.events) {
    if (const auto* o = std::get_if<OrderEvent>(&e)) rejected_id = o->event.id;
  }
  ASSERT_NE(rejected_id, 0);
  EXPECT_GT(Buy(alice_, 10'000, 1, 1).result.order, rejected_id);
}

TEST_F(ExchangeTest, SnapshotRestoresTheSameStateAndHash) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 40'000, 3);
  Sell(prov_, machine_, 41'000, 2);
  Buy(alice_, 40'000, 2, 2);
  Buy(alice_, 30'000, 1, 1);
  now_ += 30 * kSecond;
  Run(ReportUsage{machine_, OnlyLease(), 30, 10, 10, 0});
  const std::string hash = x_.StateHash();
  auto restored = Exchange::Restore(ExchangeConfig::Default(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  (*restored)->CheckInvariants();
  EXPECT_EQ((*restored)->StateHash(), hash);
  // And it carries on identically: the same command gives the same result on both.
  ApplyOutput a, b;
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = "after";
  c.price = 41'000;
  c.quantity = 3;
  c.max_hours = 1;
  x_.Apply(seq_ + 1, now_, c, &a);
  (*restored)->Apply(seq_ + 1, now_, c, &b);
  EXPECT_EQ(x_.StateHash(), (*restored)->StateHash());
  EXPECT_EQ(a.events.size(), b.events.size());
}

// ---- Tasks (docs/formats/task.md): one per lease, from its buyer; the result from its machine.

TEST_F(ExchangeTest, TheBuyerGivesALeaseOneTaskAndItsMachineReportsTheResult) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 1);
  Buy(alice_, 36'000, 1, 1);
  const LeaseId lease = OnlyLease();
  const MachineId other = Register(other_prov_, 4);
  EXPECT_EQ(Run(AssignTask{bob_, lease, R"({"command":["true"]})"}).result.code(), "not_authorized");
  EXPECT_EQ(Run(AssignTask{prov_, lease, R"({"command":["true"]})"}).result.code(),
            "not_authorized");
  EXPECT_EQ(Run(AssignTask{alice_, lease + 1, R"({"command":["true"]})"}).result.code(),
            "unknown_lease");
  EXPECT_EQ(Run(AssignTask{alice_, lease, ""}).result.code(), "invalid_task");
  EXPECT_EQ(Run(AssignTask{alice_, lease, std::string(64 * 1024 + 1, 'x')}).result.code(),
            "task_too_large");
  const ApplyOutput assigned = Run(AssignTask{alice_, lease, R"({"command":["true"]})"});
  ASSERT_TRUE(assigned.result.accepted) << assigned.result.code();
  ASSERT_EQ(assigned.events.size(), 1u);
  const auto& event = std::get<TaskAssigned>(assigned.events[0]);
  EXPECT_EQ(event.lease, lease);
  EXPECT_EQ(event.buyer, alice_);
  EXPECT_EQ(event.machine, machine_);
  EXPECT_EQ(Run(AssignTask{alice_, lease, R"({"command":["false"]})"}).result.code(),
            "task_already_assigned");
  // Only the lease's machine reports, once.
  EXPECT_EQ(Run(FinishTask{other, lease, R"({"status":"succeeded"})"}).result.code(),
            "unknown_task");
  EXPECT_EQ(Run(FinishTask{machine_, lease, ""}).result.code(), "invalid_task_result");
  const ApplyOutput finished = Run(FinishTask{machine_, lease, R"({"status":"succeeded"})"});
  ASSERT_TRUE(finished.result.accepted) << finished.result.code();
  const auto& done = std::get<TaskFinished>(finished.events.at(0));
  EXPECT_EQ(done.result, R"({"status":"succeeded"})");
  EXPECT_EQ(done.buyer, alice_);
  EXPECT_EQ(Run(FinishTask{machine_, lease, R"({"status":"succeeded"})"}).result.code(),
            "unknown_task");
  // Tasks move no money.
  EXPECT_EQ(Escrow(alice_), x_.leases().at(lease).escrow);
}

TEST_F(ExchangeTest, ATaskReportsWithinTheGraceAfterItsLeaseEndedOrIsLost) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 2);
  Buy(alice_, 36'000, 1, 1);
  Buy(alice_, 36'000, 1, 1);
  ASSERT_EQ(x_.leases().size(), 2u);
  const LeaseId first = x_.leases().begin()->first;
  const LeaseId second = std::next(x_.leases().begin())->first;
  ASSERT_TRUE(Run(AssignTask{alice_, first, R"({"command":["a"]})"}).result.accepted);
  ASSERT_TRUE(Run(AssignTask{alice_, second, R"({"command":["b"]})"}).result.accepted);
  ASSERT_TRUE(Run(EndLease{prov_, 0, first, LeaseEndReason::kReclaimed}).result.accepted);
  ASSERT_TRUE(Run(EndLease{alice_, 0, second, LeaseEndReason::kReleased}).result.accepted);
  EXPECT_EQ(Run(AssignTask{alice_, first, R"({"command":["c"]})"}).result.code(), "unknown_lease");
  // The first reports what its killed job left, within the grace.
  Elapse(60 * kSecond);
  EXPECT_TRUE(Run(FinishTask{machine_, first, R"({"status":"cancelled"})"}).result.accepted);
  // The second never reports: after the grace it is over without a result.
  Elapse(x_.config().task_result_grace);
  EXPECT_TRUE(x_.open_tasks().empty());
  EXPECT_EQ(Run(FinishTask{machine_, second, R"({"status":"cancelled"})"}).result.code(),
            "unknown_task");
}

TEST_F(ExchangeTest, OpenTasksAreSnapshotted) {
  Fund(alice_, 10 * kCredit);
  Sell(prov_, machine_, 36'000, 2);
  Buy(alice_, 36'000, 1, 1);
  Buy(alice_, 36'000, 1, 1);
  const LeaseId first = x_.leases().begin()->first;
  const LeaseId second = std::next(x_.leases().begin())->first;
  ASSERT_TRUE(Run(AssignTask{alice_, first, R"({"command":["a"]})"}).result.accepted);
  ASSERT_TRUE(Run(AssignTask{alice_, second, R"({"command":["b"]})"}).result.accepted);
  ASSERT_TRUE(Run(EndLease{alice_, 0, second, LeaseEndReason::kReleased}).result.accepted);
  auto restored = Exchange::Restore(ExchangeConfig::Default(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  (*restored)->CheckInvariants();
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
  ASSERT_EQ((*restored)->open_tasks().size(), 2u);
  EXPECT_EQ((*restored)->open_tasks().at(first).spec, R"({"command":["a"]})");
  // The restored one loses the ended lease's task after the grace, like the original.
  ApplyOutput a, b;
  const Timestamp later = now_ + x_.config().task_result_grace;
  x_.Apply(seq_ + 1, later, Heartbeat{machine_}, &a);
  (*restored)->Apply(seq_ + 1, later, Heartbeat{machine_}, &b);
  EXPECT_EQ(x_.StateHash(), (*restored)->StateHash());
  EXPECT_EQ(x_.open_tasks().size(), 1u);
}

TEST_F(ExchangeTest, RestoreRefusesASnapshotOfOtherMarkets) {
  ExchangeConfig other = ExchangeConfig::Default();
  other.markets.pop_back();
  EXPECT_FALSE(Exchange::Restore(other, x_.Serialize()).ok());
  EXPECT_FALSE(Exchange::Restore(ExchangeConfig::Default(), "{\"version\":1").ok());
}

// ---- Jobs (docs/formats/job.md): one buy per task, each fill gets its task.

class JobTest : public ExchangeTest {
 protected:
  SubmitJob Job(int32_t tasks, Quantity slots, PriceMicros price, std::string constraints = {}) {
    SubmitJob c;
    c.actor = alice_;
    c.client_job_id = "job" + std::to_string(++client_id_);
    c.market = "cpu";
    c.slots_per_task = slots;
    c.tasks = tasks;
    c.max_price = price;
    c.max_hours = 1;
    c.constraints = std::move(constraints);
    c.task_spec = R"({"command":["true"]})";
    return c;
  }
  template <typename E>
  static std::vector<E> Events(const ApplyOutput& out) {
    std::vector<E> found;
    for (const CoreEvent& event : out.events) {
      if (const auto* e = std::get_if<E>(&event)) found.push_back(*e);
    }
    return found;
  }
  MachineId RegisterIn(AccountId owner, Quantity slots, const std::string& region) {
    RegisterMachine c;
    c.actor = owner;
    c.spec.name = "m" + std::to_string(seq_);
    c.spec.capacity["cpu"] = slots;
    c.spec.attributes["region"] = AttributeValue{false, 0, region};
    const ApplyOutput out = Run(c);
    EXPECT_TRUE(out.result.accepted) << out.result.code();
    return out.result.machine;
  }
};

TEST_F(JobTest, EachTaskGetsItsOwnBuyAndEveryFillItsTask) {
  Fund(alice_, 10 * kCredit);
  const ApplyOutput submitted = Run(Job(3, 2, 50'000));
  ASSERT_TRUE(submitted.result.accepted) << submitted.result.code();
  const JobId job = submitted.result.job;
  ASSERT_EQ(x_.jobs().size(), 1u);
  EXPECT_EQ(x_.orders().size(), 3u);  // One per task, each held on its own.
  EXPECT_EQ(Held(alice_), 3 * Exchange::HoldFor(50'000, 2, 1, 20));
  // 5 slots for sale: two whole tasks fit (a fill is always the whole task), the third waits.
  const ApplyOutput sold = Sell(prov_, machine_, 40'000, 5);
  const auto assigned = Events<TaskAssigned>(sold);
  ASSERT_EQ(assigned.size(), 2u);
  EXPECT_EQ(assigned[0].job, job);
  EXPECT_EQ(assigned[0].task_index, 0);
  EXPECT_EQ(assigned[1].task_index, 1);
  EXPECT_EQ(assigned[0].spec, R"({"command":["true"]})");
  EXPECT_EQ(x_.leases().size(), 2u);
  for (const auto& [id, lease] : x_.leases()) EXPECT_EQ(lease.slots, 2);
  EXPECT_EQ(x_.jobs().at(job).tasks[2].state, JobTaskState::kWaiting);
  // The buyer cannot add a second task to a job's lease, nor cancel a job's order.
  EXPECT_EQ(Run(AssignTask{alice_, assigned[0].lease, "{}"}).result.code(),
            "task_already_assigned");
  EXPECT_EQ(Run(CancelOrder{alice_, x_.jobs().at(job).tasks[2].order}).result.code(), "job_order");
  // Results come in; the third task trades on another machine; the job is done.
  EXPECT_TRUE(Run(FinishTask{machine_, assigned[0].lease, "{\"exit_code\":0}"}).result.accepted);
  EXPECT_TRUE(Run(FinishTask{machine_, assigned[1].lease, "{\"exit_code\":1}"}).result.accepted);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kFinished);
  const MachineId second = Register(other_prov_, 2);
  const ApplyOutput third = Sell(other_prov_, second, 45'000, 2);
  ASSERT_EQ(Events<TaskAssigned>(third).size(), 1u);
  const LeaseId last = Events<TaskAssigned>(third)[0].lease;
  const ApplyOutput done = Run(FinishTask{second, last, "{\"exit_code\":0}"});
  ASSERT_EQ(Events<JobEnded>(done).size(), 1u);
  EXPECT_EQ(Events<JobEnded>(done)[0].state, JobState::kDone);
  EXPECT_TRUE(x_.jobs().empty());
}

TEST_F(JobTest, ASubmissionIsCheckedWholeAndChangesNothingWhenRefused) {
  Fund(alice_, 1 * kCredit);
  const Micros before = Avail(alice_);
  // 3 tasks at 0.2 credit * 2 slots: 1.2 credits plus fee is more than alice has.
  EXPECT_EQ(Run(Job(3, 2, 200'000)).result.code(), "insufficient_funds");
  EXPECT_EQ(Run(Job(0, 1, 10'000)).result.code(), "invalid_tasks");
  EXPECT_EQ(Run(Job(kJobTasksMax + 1, 1, 10'000)).result.code(), "invalid_tasks");
  EXPECT_EQ(Run(Job(1, 0, 10'000)).result.code(), "invalid_slots");
  EXPECT_EQ(Run(Job(1, 1, 10'050)).result.code(), "invalid_price");
  EXPECT_EQ(Run(Job(1, 1, 10'000, "region ==")).result.code(), "invalid_constraints");
  SubmitJob empty = Job(1, 1, 10'000);
  empty.task_spec.clear();
  EXPECT_EQ(Run(empty).result.code(), "invalid_task");
  SubmitJob bad_market = Job(1, 1, 10'000);
  bad_market.market = "nope";
  EXPECT_EQ(Run(bad_market).result.code(), "unknown_market");
  EXPECT_EQ(Avail(alice_), before);
  EXPECT_TRUE(x_.jobs().empty());
  EXPECT_TRUE(x_.orders().empty());
  // A client job id is taken once: a retry names the job it made.
  SubmitJob once = Job(1, 1, 10'000);
  const ApplyOutput first = Run(once);
  ASSERT_TRUE(first.result.accepted);
  const ApplyOutput again = Run(once);
  EXPECT_EQ(again.result.code(), "duplicate_client_job_id");
  EXPECT_EQ(again.result.job, first.result.job);
  // The exchange's own client order ids cannot be taken by hand.
  PlaceOrder mine;
  mine.actor = alice_;
  mine.market = "cpu";
  mine.client_order_id = "job:1:0:2";
  mine.price = 10'000;
  mine.quantity = 1;
  EXPECT_EQ(Run(mine).result.code(), "invalid_client_order_id");
}

TEST_F(JobTest, ATaskWhoseMachineGoesOfflineRunsAgainElsewhereThenIsLost) {
  Fund(alice_, 10 * kCredit);
  const JobId job = Run(Job(1, 1, 50'000)).result.job;
  const MachineId first = machine_;
  Sell(prov_, first, 40'000, 1);
  ASSERT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kRunning);
  const MachineId second = Register(other_prov_, 1);
  Sell(other_prov_, second, 40'000, 1);
  // The first machine goes quiet: its lease ends offline and the task trades on the second.
  now_ += x_.config().heartbeat_timeout - 5 * kSecond;
  Run(Heartbeat{second});
  now_ += 5 * kSecond;
  Run(Heartbeat{second});
  const JobTask& task = x_.jobs().at(job).tasks[0];
  EXPECT_EQ(task.state, JobTaskState::kRunning);
  EXPECT_EQ(task.attempts, 2);
  EXPECT_EQ(task.machine, second);
  // A late result from the first machine is kept for its lease but does not finish the task.
  // The second machine is reclaimed by its owner: the third and last attempt waits.
  ASSERT_TRUE(Run(EndLease{other_prov_, 0, task.lease, LeaseEndReason::kReclaimed}).result.accepted);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kWaiting);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].attempts, 3);
  const MachineId third = Register(other_prov_, 1);
  Sell(other_prov_, third, 40'000, 1);
  ASSERT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kRunning);
  ASSERT_TRUE(Run(EndLease{other_prov_, 0, x_.jobs().at(job).tasks[0].lease,
                           LeaseEndReason::kReclaimed}).result.accepted);
  // No attempt left: lost, and the job is over with nothing held for it.
  EXPECT_TRUE(x_.jobs().empty());
  EXPECT_EQ(Held(alice_), 0);
}

TEST_F(JobTest, CancellingAJobWithdrawsItsOrdersAndReleasesItsLeases) {
  Fund(alice_, 10 * kCredit);
  const JobId job = Run(Job(3, 4, 50'000)).result.job;
  Sell(prov_, machine_, 40'000, 4);
  ASSERT_EQ(x_.leases().size(), 1u);
  EXPECT_EQ(Run(CancelJob{bob_, job}).result.code(), "not_authorized");
  EXPECT_EQ(Run(CancelJob{alice_, job + 1}).result.code(), "unknown_job");
  const ApplyOutput cancelled = Run(CancelJob{alice_, job});
  ASSERT_TRUE(cancelled.result.accepted) << cancelled.result.code();
  EXPECT_EQ(Events<LeaseEnded>(cancelled).size(), 1u);
  EXPECT_EQ(Events<LeaseEnded>(cancelled)[0].reason, LeaseEndReason::kReleased);
  ASSERT_EQ(Events<JobEnded>(cancelled).size(), 1u);
  EXPECT_EQ(Events<JobEnded>(cancelled)[0].state, JobState::kCancelled);
  EXPECT_TRUE(x_.jobs().empty());
  EXPECT_TRUE(x_.orders().empty() || x_.orders().begin()->second.side == Side::kSell);
  EXPECT_EQ(Held(alice_), 0);
  EXPECT_EQ(Escrow(alice_), 0);
  EXPECT_EQ(Run(CancelJob{alice_, job}).result.code(), "unknown_job");
}

TEST_F(JobTest, ConstraintsSkipIneligibleMachinesAndKeepTheirPlace) {
  Fund(alice_, 10 * kCredit);
  Fund(bob_, 10 * kCredit);
  const MachineId us = RegisterIn(other_prov_, 4, "us");
  // Alice's constrained buy is first in time; Bob's plain buy at the same price comes second.
  const JobId job = Run(Job(1, 1, 50'000, R"(region == "eu")")).result.job;
  Buy(bob_, 50'000, 1);
  // The cheaper US ask goes to Bob: Alice's constraint rules the US machine out.
  Sell(other_prov_, us, 30'000, 1);
  ASSERT_EQ(x_.leases().size(), 1u);
  EXPECT_EQ(x_.leases().begin()->second.buyer, bob_);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kWaiting);
  // An EU ask trades with Alice.
  Sell(prov_, machine_, 45'000, 1);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].state, JobTaskState::kRunning);
  EXPECT_EQ(x_.jobs().at(job).tasks[0].machine, machine_);
  // A plain order's constraints use the same language.
  PlaceOrder c;
  c.actor = bob_;
  c.market = "cpu";
  c.client_order_id = "constrained";
  c.price = 50'000;
  c.quantity = 1;
  c.constraints = "price <= 0.03";  // Credits: 0.03 = 30,000 micro-credits.
  ASSERT_TRUE(Run(c).result.accepted);
  Sell(prov_, machine_, 40'000, 1);  // Too dear for the constraint.
  EXPECT_EQ(x_.leases().size(), 2u);
  Sell(other_prov_, us, 30'000, 1);
  EXPECT_EQ(x_.leases().size(), 3u);
  c.client_order_id = "sell-with-constraints";
  c.side = Side::kSell;
  c.machine = machine_;
  c.actor = prov_;
  EXPECT_EQ(Run(c).result.code(), "invalid_constraints");
}

TEST_F(JobTest, JobsAndConstraintsAreSnapshottedAndCarryOnAlike) {
  Fund(alice_, 10 * kCredit);
  Run(Job(3, 1, 50'000, R"(region in ["eu", "us"])"));
  Sell(prov_, machine_, 40'000, 1);
  ASSERT_EQ(x_.jobs().size(), 1u);
  auto restored = Exchange::Restore(ExchangeConfig::Default(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  (*restored)->CheckInvariants();
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
  // The same sell fills the same constrained task on both, and the job goes on alike.
  PlaceOrder sell;
  sell.actor = prov_;
  sell.market = "cpu";
  sell.client_order_id = "after";
  sell.side = Side::kSell;
  sell.price = 40'000;
  sell.quantity = 2;
  sell.machine = machine_;
  ApplyOutput a, b;
  x_.Apply(seq_ + 1, now_, sell, &a);
  (*restored)->Apply(seq_ + 1, now_, sell, &b);
  (*restored)->CheckInvariants();
  EXPECT_EQ(x_.StateHash(), (*restored)->StateHash());
  EXPECT_EQ(Events<TaskAssigned>(a).size(), 2u);
  EXPECT_EQ(Events<TaskAssigned>(b).size(), 2u);
}

TEST_F(JobTest, ReputationFollowsTheMachinesRecordAndConstraintsCanAskForIt) {
  Fund(alice_, 10 * kCredit);
  const Machine& machine = x_.machines().at(machine_);
  EXPECT_EQ(ReputationMicros(machine), 500'000);  // New: (0 + 1) / (0 + 2).
  Sell(prov_, machine_, 40'000, 1);
  Buy(alice_, 40'000, 1);
  ASSERT_TRUE(Run(EndLease{prov_, 0, OnlyLease(), LeaseEndReason::kReclaimed}).result.accepted);
  EXPECT_EQ(ReputationMicros(x_.machines().at(machine_)), 333'333);  // 1 / 3.
  // A buy that asks for reputation >= 0.5 skips it; a finished lease elsewhere counts for one.
  PlaceOrder c;
  c.actor = alice_;
  c.market = "cpu";
  c.client_order_id = "reputable";
  c.price = 50'000;
  c.quantity = 1;
  c.constraints = "reputation >= 0.5";
  ASSERT_TRUE(Run(c).result.accepted);
  Sell(prov_, machine_, 40'000, 1);
  EXPECT_TRUE(x_.leases().empty());
  const MachineId other = Register(other_prov_, 1);
  Sell(other_prov_, other, 45'000, 1);
  ASSERT_EQ(x_.leases().size(), 1u);
  EXPECT_EQ(x_.leases().begin()->second.machine, other);
  ASSERT_TRUE(Run(EndLease{0, other, OnlyLease(), LeaseEndReason::kFinished}).result.accepted);
  EXPECT_EQ(ReputationMicros(x_.machines().at(other)), 666'666);  // 2 / 3.
  // The record survives a snapshot.
  auto restored = Exchange::Restore(ExchangeConfig::Default(), x_.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(ReputationMicros((*restored)->machines().at(other)), 666'666);
  EXPECT_EQ((*restored)->StateHash(), x_.StateHash());
}

}  // namespace
}  // namespace ocx::core
