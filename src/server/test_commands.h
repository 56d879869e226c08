// A seeded stream of plausible exchange commands for sequencer tests: two consumers, one
// provider with one machine, orders that cross, usage reports, lease ends and heartbeats.
// Account and machine ids are fixed (the setup always creates them in the same order), so
// the stream needs no view of the state and can run across restarts (where the setup is
// simply rejected as already done).
#pragma once

#include <string>
#include <vector>

#include "src/base/rng.h"
#include "src/core/commands.h"

namespace ocx::server::testing {

inline std::vector<core::CommandBody> SetupCommands() {
  using namespace core;
  std::vector<CommandBody> out;
  out.push_back(CreateAccount{0, "op", Role::kOperator, {}});     // 1
  out.push_back(CreateAccount{0, "alice", Role::kConsumer, {}});  // 2
  out.push_back(CreateAccount{0, "bob", Role::kConsumer, {}});    // 3
  out.push_back(CreateAccount{0, "prov", Role::kProvider, {}});   // 4
  out.push_back(Deposit{1, 2, 1'000'000'000});
  out.push_back(Deposit{1, 3, 1'000'000'000});
  RegisterMachine machine;
  machine.actor = 4;
  machine.spec.name = "box";
  machine.spec.capacity["cpu"] = 64;
  out.push_back(machine);  // Machine 1.
  return out;
}

class CommandStream {
 public:
  explicit CommandStream(uint64_t seed) : rng_(seed), prefix_(std::to_string(seed) + "-") {}

  core::CommandBody Next() {
    using namespace core;
    const uint64_t roll = rng_.Below(100);
    if (roll < 10) return Heartbeat{1};
    if (roll < 60) {
      PlaceOrder c;
      c.market = "cpu";
      c.client_order_id = prefix_ + std::to_string(++count_);
      c.side = rng_.Percent(50) ? engine::Side::kBuy : engine::Side::kSell;
      c.actor = c.side == engine::Side::kBuy ? static_cast<AccountId>(rng_.Between(2, 3)) : 4;
      c.machine = c.side == engine::Side::kSell ? 1 : 0;
      c.tif = rng_.Percent(70) ? engine::TimeInForce::kGtc : engine::TimeInForce::kIoc;
      c.price = rng_.Between(95, 105) * 1000;
      c.quantity = rng_.Between(1, 3);
      c.max_hours = 1;
      return c;
    }
    if (roll < 75) return CancelOrder{static_cast<AccountId>(rng_.Between(2, 4)),
                                      static_cast<OrderId>(rng_.Between(1, count_ + 1))};
    if (roll < 90) {
      return ReportUsage{1, static_cast<LeaseId>(rng_.Between(1, count_ / 2 + 1)),
                         rng_.Between(0, 2), 0, 0, 0};
    }
    if (roll < 97) {
      return EndLease{static_cast<AccountId>(rng_.Between(2, 3)), 0,
                      static_cast<LeaseId>(rng_.Between(1, count_ / 2 + 1)),
                      LeaseEndReason::kReleased};
    }
    return Tick{};
  }

 private:
  base::Rng rng_;
  std::string prefix_;
  uint64_t count_ = 0;
};

}  // namespace ocx::server::testing
