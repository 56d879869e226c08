#include "src/core/codec.h"

#include "gtest/gtest.h"

namespace ocx::core {
namespace {

TEST(CodecTest, EveryCommandRoundTrips) {
  PlaceOrder order;
  order.actor = 3;
  order.market = "gpu.h100";
  order.client_order_id = "job-7";
  order.side = engine::Side::kBuy;
  order.type = engine::OrderType::kLimit;
  order.tif = engine::TimeInForce::kGtd;
  order.price = 1'234'500;
  order.quantity = 8;
  order.lot = 4;
  order.max_hours = 5;
  order.expiry = 99;
  RegisterMachine machine;
  machine.actor = 2;
  machine.spec.name = "box";
  machine.spec.attributes["region"] = AttributeValue{false, 0, "eu"};
  machine.spec.attributes["cpu.factor"] = AttributeValue{true, 1'350'000, ""};
  machine.spec.capacity["cpu"] = 12;
  const std::vector<CommandBody> commands = {
      CreateAccount{1, "alice", Role::kProvider},
      Deposit{1, 2, 5'000'000},
      Withdraw{1, 2, 7, BalanceKind::kEarnings},
      machine,
      Heartbeat{9},
      order,
      CancelOrder{3, 17},
      ReplaceOrder{3, 17, std::nullopt, 2},
      ReportUsage{9, 4, 60, 55, 1024, 0},
      EndLease{0, 9, 4, LeaseEndReason::kFinished},
      Tick{}};
  for (const CommandBody& command : commands) {
    const std::string encoded = EncodeCommand(command);
    const absl::StatusOr<CommandBody> decoded = DecodeCommand(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status();
    EXPECT_EQ(decoded->index(), command.index());
    EXPECT_EQ(EncodeCommand(*decoded), encoded);
  }
}

TEST(CodecTest, BadPayloadsAreDataLoss) {
  for (const char* bad : {"", "[]", "{", R"({"type":"launch"})", R"({"type":"deposit"})",
                          R"({"type":"deposit","actor":1,"account":"x","amount":5})",
                          R"({"type":"place_order","actor":1,"side":"up"})"}) {
    const absl::StatusOr<CommandBody> decoded = DecodeCommand(bad);
    EXPECT_FALSE(decoded.ok()) << bad;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace ocx::core
