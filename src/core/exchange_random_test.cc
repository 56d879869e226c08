// Seeded random commands against the exchange: after every command the ledger balances and
// every invariant holds; a replica fed the same commands through the journal codec ends in
// the same state hash; and a snapshot taken midway, restored and fed the rest, ends there too.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/core/codec.h"
#include "src/core/exchange.h"

namespace ocx::core {
namespace {

constexpr Timestamp kSecond = kMicrosPerSecond;

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  // Commands that set up operators, consumers, providers and machines.
  std::vector<CommandBody> Setup() {
    std::vector<CommandBody> out;
    out.push_back(CreateAccount{0, "op", Role::kOperator, {}});  // Account 1.
    for (int i = 0; i < 5; ++i) out.push_back(CreateAccount{0, "c" + std::to_string(i), Role::kConsumer, {}});
    for (int i = 0; i < 3; ++i) out.push_back(CreateAccount{0, "p" + std::to_string(i), Role::kProvider, {}});
    for (AccountId a = 2; a <= 6; ++a) out.push_back(Deposit{1, a, 50'000'000});
    for (int i = 0; i < 4; ++i) {
      RegisterMachine m;
      m.actor = static_cast<AccountId>(7 + i % 3);
      m.spec.name = "m" + std::to_string(i);
      m.spec.capacity["cpu"] = 8 + i;
      m.spec.capacity["gpu.h100"] = i % 2;
      m.spec.attributes["region"] = AttributeValue::Text(i % 2 == 0 ? "eu" : "us");
      out.push_back(m);
    }
    return out;
  }

  CommandBody Next(const Exchange& x) {
    const uint64_t roll = rng_.Below(100);
    const AccountId consumer = static_cast<AccountId>(rng_.Between(2, 6));
    const AccountId provider = static_cast<AccountId>(rng_.Between(7, 9));
    const MachineId machine = static_cast<MachineId>(rng_.Between(1, 4));
    if (roll < 15) {
      // Mostly the machine that has waited longest, as its agent would; sometimes any.
      MachineId stalest = machine;
      Timestamp oldest = INT64_MAX;
      for (const auto& [id, m] : x.machines()) {
        if (m.last_heartbeat < oldest) {
          oldest = m.last_heartbeat;
          stalest = id;
        }
      }
      return Heartbeat{rng_.Percent(80) ? stalest : machine};
    }
    if (roll < 45) {
      PlaceOrder c;
      c.market = rng_.Percent(85) ? "cpu" : "gpu.h100";
      c.client_order_id = "o" + std::to_string(++orders_);
      c.side = rng_.Percent(50) ? engine::Side::kBuy : engine::Side::kSell;
      c.actor = c.side == engine::Side::kBuy ? consumer : provider;
      c.type = rng_.Percent(10) ? engine::OrderType::kMarket : engine::OrderType::kLimit;
      static constexpr engine::TimeInForce kTifs[] = {
          engine::TimeInForce::kGtc, engine::TimeInForce::kGtc, engine::TimeInForce::kIoc,
          engine::TimeInForce::kFok, engine::TimeInForce::kGtd};
      c.tif = kTifs[rng_.Below(5)];
      c.price = rng_.Between(90, 110) * 1000 + (rng_.Percent(3) ? 50 : 0);
      c.quantity = rng_.Between(rng_.Percent(2) ? -1 : 1, 4);
      c.max_hours = static_cast<int32_t>(rng_.Between(1, 3));
      if (c.side == engine::Side::kBuy && rng_.Percent(20)) {
        c.lot = 2;
        c.quantity = 2 * rng_.Between(1, 2);
      }
      if (c.tif == engine::TimeInForce::kGtd) c.expiry = now_ + rng_.Between(1, 120) * kSecond;
      c.machine = c.side == engine::Side::kSell ? machine : 0;
      if (c.side == engine::Side::kBuy && rng_.Percent(15)) c.constraints = Constraints();
      return c;
    }
    if (roll < 55 && !x.orders().empty()) {
      const auto it = Pick(x.orders());
      const bool owner = rng_.Percent(90);
      return CancelOrder{owner ? it->second.account : consumer, it->first};
    }
    if (roll < 62 && !x.orders().empty()) {
      const auto it = Pick(x.orders());
      ReplaceOrder c{it->second.account, it->first, std::nullopt, std::nullopt};
      if (rng_.Percent(60)) c.price = rng_.Between(90, 110) * 1000;
      if (rng_.Percent(60)) c.quantity = it->second.lot * rng_.Between(0, 3);
      return c;
    }
    if (roll < 85 && !x.leases().empty()) {
      const auto it = Pick(x.leases());
      const Lease& lease = it->second;
      const int64_t elapsed = (now_ - lease.start) / kSecond;
      const int64_t wall = std::max<int64_t>(lease.reported_wall_seconds,
                                             elapsed - rng_.Between(0, 3) + (rng_.Percent(5) ? 30 : 0));
      return ReportUsage{rng_.Percent(95) ? lease.machine : machine, it->first, wall,
                         wall * rng_.Between(0, 1), rng_.Between(0, 2048), 0};
    }
    if (roll < 90 && !x.leases().empty()) {
      const auto it = Pick(x.leases());
      switch (rng_.Below(3)) {
        case 0: return EndLease{it->second.buyer, 0, it->first, LeaseEndReason::kReleased};
        case 1: return EndLease{it->second.seller, 0, it->first, LeaseEndReason::kReclaimed};
        default: return EndLease{0, it->second.machine, it->first, LeaseEndReason::kFinished};
      }
    }
    if (roll < 93) return Withdraw{1, consumer, rng_.Between(1, 2'000'000), BalanceKind::kAvailable};
    if (roll < 95) return Withdraw{1, provider, rng_.Between(1, 200'000), BalanceKind::kEarnings};
    if (roll < 96) return Deposit{1, consumer, rng_.Between(1, 10'000'000)};
    if (roll < 97) {
      SubmitJob c;
      c.actor = consumer;
      c.client_job_id = "j" + std::to_string(++orders_);
      c.market = "cpu";
      c.tasks = static_cast<int32_t>(rng_.Between(1, 3));
      c.slots_per_task = rng_.Between(1, 2);
      c.max_price = rng_.Between(90, 110) * 1000;
      c.max_hours = static_cast<int32_t>(rng_.Between(1, 2));
      c.constraints = rng_.Percent(50) ? Constraints() : "";
      c.task_spec = R"({"command":["true"]})";
      return c;
    }
    if (roll < 99 && !x.open_tasks().empty()) {
      const auto it = Pick(x.open_tasks());
      return FinishTask{it->second.machine, it->first, R"({"status":"succeeded"})"};
    }
    if (!x.jobs().empty() && rng_.Percent(50)) {
      const auto it = Pick(x.jobs());
      return CancelJob{rng_.Percent(90) ? it->second.spec.actor : consumer, it->first};
    }
    if (rng_.Percent(10)) {
      // By the account itself, the operator, or (refused) another account; now and then a
      // hash that is not one (refused).
      static constexpr char kHex[] = "0123456789abcdef";
      std::string hash(64, '0');
      for (char& c : hash) c = kHex[rng_.Below(16)];
      if (rng_.Percent(5)) hash[rng_.Below(64)] = 'G';
      const uint64_t who = rng_.Below(10);
      return RotateToken{who < 6 ? consumer : who < 9 ? AccountId{1} : provider, consumer, hash};
    }
    return Tick{};
  }

  std::string Constraints() {
    static constexpr const char* kQueries[] = {R"(region == "eu")", "price <= 0.1",
                                               R"(region in ["us"] || price < 0.095)",
                                               R"(!(region =~ "^e"))"};
    return kQueries[rng_.Below(4)];
  }

  Timestamp AdvanceTime() {
    // Mostly sub-second steps; now and then a gap long enough for machines to go offline,
    // and rarely one of hours, so that leases run into their max_hours.
    if (rng_.Below(1000) < 5) {
      now_ += rng_.Between(3600, 7200) * kSecond;
    } else {
      now_ += rng_.Percent(1) ? rng_.Between(10, 20) * kSecond : rng_.Between(0, 1'000'000);
    }
    return now_;
  }
  Timestamp now() const { return now_; }

 private:
  template <typename Map>
  typename Map::const_iterator Pick(const Map& map) {
    auto it = map.begin();
    std::advance(it, static_cast<ptrdiff_t>(rng_.Below(map.size())));
    return it;
  }

  base::Rng rng_;
  Timestamp now_ = 1'700'000'000 * kSecond;
  int orders_ = 0;
};

void RunRandomStream(uint64_t seed, int commands) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const ExchangeConfig config = ExchangeConfig::Default();
  Exchange primary(config);
  Exchange replica(config);
  std::unique_ptr<Exchange> restored;
  Generator gen(seed);
  uint64_t sequence = 0;
  size_t leases_started = 0, bills = 0, rejections = 0, job_tasks_run = 0, jobs_ended = 0;
  std::set<LeaseEndReason> end_reasons;
  auto apply = [&](const CommandBody& command) {
    ++sequence;
    const Timestamp time = gen.now();
    ApplyOutput out;
    primary.Apply(sequence, time, command, &out);
    primary.CheckInvariants();
    rejections += !out.result.accepted;
    for (const CoreEvent& e : out.events) {
      leases_started += std::holds_alternative<LeaseStarted>(e);
      if (const auto* ended = std::get_if<LeaseEnded>(&e)) end_reasons.insert(ended->reason);
      if (const auto* t = std::get_if<LedgerTransfer>(&e)) bills += t->kind == TransferKind::kBill;
      if (const auto* t = std::get_if<TaskAssigned>(&e)) job_tasks_run += t->job != 0;
      jobs_ended += std::holds_alternative<JobEnded>(e);
    }
    // The replica sees the command as the journal stores it.
    const absl::StatusOr<CommandBody> decoded = DecodeCommand(EncodeCommand(command));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ApplyOutput replica_out;
    replica.Apply(sequence, time, *decoded, &replica_out);
    ASSERT_EQ(replica_out.result.code(), out.result.code()) << "sequence " << sequence;
    ASSERT_EQ(replica_out.events.size(), out.events.size()) << "sequence " << sequence;
    if (restored) {
      ApplyOutput restored_out;
      restored->Apply(sequence, time, *decoded, &restored_out);
      ASSERT_EQ(restored_out.result.code(), out.result.code()) << "sequence " << sequence;
    }
  };
  for (const CommandBody& command : gen.Setup()) apply(command);
  for (int i = 0; i < commands; ++i) {
    gen.AdvanceTime();
    apply(gen.Next(primary));
    if (::testing::Test::HasFatalFailure()) return;
    if (i == commands / 2) {
      auto snapshot = Exchange::Restore(config, primary.Serialize());
      ASSERT_TRUE(snapshot.ok()) << snapshot.status();
      restored = std::move(*snapshot);
      ASSERT_EQ(restored->StateHash(), primary.StateHash());
    }
  }
  EXPECT_EQ(replica.StateHash(), primary.StateHash());
  EXPECT_EQ(restored->StateHash(), primary.StateHash());
  // The stream must exercise the interesting paths, or it proves little.
  EXPECT_GT(leases_started, static_cast<size_t>(commands) / 200);
  EXPECT_GT(bills, static_cast<size_t>(commands) / 200);
  EXPECT_GT(rejections, 0u);
  EXPECT_GT(job_tasks_run, static_cast<size_t>(commands) / 1000);
  EXPECT_GT(jobs_ended, static_cast<size_t>(commands) / 1000);
  std::string seen;
  for (LeaseEndReason reason : end_reasons) seen += std::string(LeaseEndReasonName(reason)) + " ";
  EXPECT_EQ(end_reasons.size(), 5u) << "every way a lease ends should occur; seen: " << seen;
}

TEST(ExchangeRandomTest, LedgerBalancesAndReplayIsDeterministicSeed1) { RunRandomStream(1, 20'000); }
TEST(ExchangeRandomTest, LedgerBalancesAndReplayIsDeterministicSeed2) { RunRandomStream(2, 20'000); }
TEST(ExchangeRandomTest, LedgerBalancesAndReplayIsDeterministicSeed3) { RunRandomStream(3, 20'000); }

}  // namespace
}  // namespace ocx::core
