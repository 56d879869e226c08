#include "src/core/codec.h"

#include "src/core/exchange.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

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
  machine.spec.public_key = std::string(64, 'a');
  const std::vector<CommandBody> commands = {
      CreateAccount{1, "alice", Role::kProvider, {}},
      CreateAccount{0, "bob", Role::kConsumer, std::string(64, 'f')},
      Deposit{1, 2, 5'000'000},
      Withdraw{1, 2, 7, BalanceKind::kEarnings},
      machine,
      Heartbeat{9},
      order,
      CancelOrder{3, 17},
      ReplaceOrder{3, 17, std::nullopt, 2},
      ReportUsage{9, 4, 60, 55, 1024, 0},
      EndLease{0, 9, 4, LeaseEndReason::kFinished},
      Tick{},
      AssignTask{2, 4, R"({"command":["sh","-c","echo \"hi\"\n"]})"},
      FinishTask{9, 4, R"({"status":"succeeded","exit_code":0})"},
      CancelJob{3, 2},
      RotateToken{1, 2, std::string(64, 'c')}};
  for (const CommandBody& command : commands) {
    const std::string encoded = EncodeCommand(command);
    const absl::StatusOr<CommandBody> decoded = DecodeCommand(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status();
    EXPECT_EQ(decoded->index(), command.index());
    EXPECT_EQ(EncodeCommand(*decoded), encoded);
  }
  // The identity fields survive the round trip.
  const auto account = DecodeCommand(EncodeCommand(commands[1]));
  ASSERT_TRUE(account.ok());
  EXPECT_EQ(std::get<CreateAccount>(*account).token_hash, std::string(64, 'f'));
  const auto rotated = DecodeCommand(EncodeCommand(commands.back()));
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(std::get<RotateToken>(*rotated).account, 2u);
  EXPECT_EQ(std::get<RotateToken>(*rotated).token_hash, std::string(64, 'c'));
  const auto registered = DecodeCommand(EncodeCommand(machine));
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ(std::get<RegisterMachine>(*registered).spec.public_key, std::string(64, 'a'));
}

TEST(CodecTest, EncodingIsCanonicalJson) {
  PlaceOrder order;
  order.actor = 3;
  order.market = "cpu";
  order.client_order_id = "quote\" back\\ tab\t nl\n bell\x07 snow\u2603";
  order.price = 1;
  order.quantity = 2;
  order.expiry = -5;
  RegisterMachine machine;
  machine.spec.name = "m";
  machine.spec.attributes["z"] = AttributeValue{true, -1, ""};
  machine.spec.attributes["a"] = AttributeValue{false, 0, "x"};
  machine.spec.capacity["gpu.h100"] = 1;
  machine.spec.capacity["cpu"] = 2;
  for (const CommandBody& command : std::vector<CommandBody>{order, machine, Tick{},
                                                             CreateAccount{0, "\x01", Role::kConsumer, {}}}) {
    const std::string encoded = EncodeCommand(command);
    // Sorted keys and escapes exactly as a JSON library writes them.
    EXPECT_EQ(nlohmann::json::parse(encoded).dump(), encoded);
    const auto decoded = DecodeCommand(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(EncodeCommand(*decoded), encoded);
  }
  const auto decoded = DecodeCommand(EncodeCommand(order));
  EXPECT_EQ(std::get<PlaceOrder>(*decoded).client_order_id, order.client_order_id);
}

TEST(CodecTest, TextMustBeValidUtf8) {
  EXPECT_TRUE(TextIsValid(CreateAccount{0, "caf\xc3\xa9 \xf0\x9f\x98\x80", Role::kConsumer, {}}));
  for (const char* bad : {"\xff", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe2\x82"}) {
    EXPECT_FALSE(TextIsValid(CreateAccount{0, bad, Role::kConsumer, {}})) << bad;
  }
  PlaceOrder order;
  order.client_order_id = "\x80";
  EXPECT_FALSE(TextIsValid(order));
  EXPECT_FALSE(TextIsValid(RotateToken{1, 2, "\xff"}));
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

// A value past its field's range is refused, never narrowed or wrapped: the record must mean
// what it says or nothing (found by fuzz/command_codec_fuzz.cc).
TEST(CodecTest, IntegersPastTheirRangeAreDataLossNotAnotherValue) {
  for (const char* payload :
       {R"({"actor":4294967297,"order":1,"type":"cancel_order"})",
        R"({"actor":-1,"order":-5,"type":"cancel_order"})",
        R"({"actor":1,"spec":{"attributes":{"x":{"n":9223372036854775808}},"capacity":{},"name":"m"},"type":"register_machine"})",
        R"({"actor":1,"spec":{"attributes":{},"capacity":{"cpu":18446744073709551615},"name":"m"},"type":"register_machine"})"}) {
    SCOPED_TRACE(payload);
    EXPECT_EQ(DecodeCommand(payload).status().code(), absl::StatusCode::kDataLoss);
  }
}

// A snapshot body that is JSON but not what Serialize writes is data loss, never the end of
// the process (found by fuzz/snapshot_fuzz.cc).
TEST(CodecTest, MalformedSnapshotsAreDataLoss) {
  Exchange x(ExchangeConfig::Default());
  nlohmann::json good = nlohmann::json::parse(x.Serialize());
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  nlohmann::json no_markets = good;
  no_markets.erase("markets");
  for (const std::string& body :
       {with("version", "1"), no_markets.dump(), with("now", -1),
        with("now", 9223372036854775807LL), with("client_order_ids", {{"a", "b", "c"}}),
        with("client_order_ids", {{1, "k", -1}}), std::string("[]"), std::string("{}")}) {
    SCOPED_TRACE(body.substr(0, 200));
    const auto restored = Exchange::Restore(ExchangeConfig::Default(), body);
    EXPECT_FALSE(restored.ok());
  }
}

}  // namespace
}  // namespace ocx::core
