// Unit tests of the API's Boost-free pieces: the identity registry, request targets, the
// market-data book built from engine events, and the route table behind /openapi.json.
// (Tokens and signatures: src/protocol/identity_test.cc.)
#include <gtest/gtest.h>

#include <set>

#include "nlohmann/json.hpp"
#include "src/api/api.h"
#include "src/api/identity_registry.h"
#include "src/protocol/identity.h"
#include "src/api/http_types.h"
#include "src/api/market_data.h"
#include "src/core/exchange.h"
#include "src/store/sqlite/store_test_util.h"

namespace ocx::api {
namespace {

using protocol::NewApiToken;
using protocol::TokenHash;

TEST(IdentityRegistryTest, FollowsAccountAndMachineEvents) {
  IdentityRegistry registry;
  const std::string token = NewApiToken();
  EXPECT_FALSE(registry.FindByToken(token));
  registry.Apply(core::AccountCreated{5, "alice", core::Role::kProvider, TokenHash(token)});
  const auto found = registry.FindByToken(token);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, 5u);
  EXPECT_EQ(found->role, core::Role::kProvider);
  EXPECT_FALSE(registry.FindByToken(NewApiToken()));
  EXPECT_FALSE(registry.AnyOperator());
  registry.Apply(core::MachineRegistered{9, 5, "box", std::string(64, 'a')});
  ASSERT_TRUE(registry.FindMachine(9));
  EXPECT_EQ(registry.FindMachine(9)->owner, 5u);
}

TEST(HttpTargetTest, DecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_TRUE(ParseTarget("/v1/orders?status=open&limit=5&x=a%20b+c", &path, &query));
  EXPECT_EQ(path, "/v1/orders");
  EXPECT_EQ(query["status"], "open");
  EXPECT_EQ(query["limit"], "5");
  EXPECT_EQ(query["x"], "a b c");
  ASSERT_TRUE(ParseTarget("/v1/markets/gpu.h100/book", &path, &query));
  EXPECT_EQ(path, "/v1/markets/gpu.h100/book");
  EXPECT_TRUE(query.empty());
  EXPECT_FALSE(ParseTarget("/v1/%zz", &path, &query));
  EXPECT_FALSE(ParseTarget("/v1/%00", &path, &query));
  EXPECT_FALSE(ParseTarget("/v1/%4", &path, &query));
  EXPECT_FALSE(ParseTarget("v1/orders", &path, &query));
  // Text that is not UTF-8, in the path or the query, is refused here: it would otherwise
  // end up in answers (an error message quoting a query).
  EXPECT_FALSE(ParseTarget("/v1/offers?q=%FF", &path, &query));
  EXPECT_FALSE(ParseTarget("/v1/%C3", &path, &query));
  EXPECT_TRUE(ParseTarget("/v1/offers?q=%C3%A9", &path, &query));
  std::string many = "/v1/x?";
  for (int i = 0; i < 65; ++i) many += "k" + std::to_string(i) + "=1&";
  EXPECT_FALSE(ParseTarget(many, &path, &query));
}

// A sink that keeps what it is given.
class RecordingSink : public StreamSink {
 public:
  void Deliver(std::shared_ptr<const std::string> message) override {
    messages.push_back(nlohmann::json::parse(*message));
  }
  std::vector<nlohmann::json> messages;
};

core::CoreEvent Engine(engine::EventType type, core::OrderId id, engine::Side side,
                       core::PriceMicros price, core::Quantity quantity,
                       core::OrderId maker = 0) {
  engine::Event e;
  e.type = type;
  e.id = id;
  e.side = side;
  e.price = price;
  e.quantity = quantity;
  e.maker_id = maker;
  e.account = 1;
  e.maker_account = 2;
  return core::OrderEvent{"cpu", e};
}

TEST(MarketDataTest, BookFollowsEventsAndSubscribersGetSnapshotThenChangedLevels) {
  core::Exchange empty(core::ExchangeConfig::Default());
  MarketData data;
  data.Load(empty);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(data.IsPublicChannel("book:cpu"));
  EXPECT_FALSE(data.IsPublicChannel("book:nope"));
  data.Subscribe("book:cpu", sink);
  ASSERT_EQ(sink->messages.size(), 1u);
  EXPECT_EQ(sink->messages[0]["type"], "book_snapshot");

  using engine::EventType;
  using engine::Side;
  // Two asks at 0.05 (3 + 2), one at 0.06; a bid that rests at 0.04.
  data.Publish(1, 10, {Engine(EventType::kAccepted, 1, Side::kSell, 50'000, 3)});
  data.Publish(2, 11, {Engine(EventType::kAccepted, 2, Side::kSell, 50'000, 2)});
  data.Publish(3, 12, {Engine(EventType::kAccepted, 3, Side::kSell, 60'000, 4)});
  data.Publish(4, 13, {Engine(EventType::kAccepted, 4, Side::kBuy, 40'000, 1)});
  auto depth = data.Depth("cpu", 10);
  ASSERT_TRUE(depth);
  ASSERT_EQ(depth->asks.size(), 2u);
  EXPECT_EQ(depth->asks[0].price, 50'000);
  EXPECT_EQ(depth->asks[0].quantity, 5);
  EXPECT_EQ(depth->bids[0].quantity, 1);
  // A limit buy at 0.05 for 4 takes 3 then 1 and leaves nothing resting: the 0.05 level
  // falls to 1, the buy's own transient level never shows.
  sink->messages.clear();
  data.Publish(5, 14,
               {Engine(EventType::kAccepted, 5, Side::kBuy, 50'000, 4),
                Engine(EventType::kTrade, 5, Side::kBuy, 50'000, 3, 1),
                Engine(EventType::kTrade, 5, Side::kBuy, 50'000, 1, 2)});
  depth = data.Depth("cpu", 10);
  EXPECT_EQ(depth->asks[0].quantity, 1);
  EXPECT_EQ(depth->bids.size(), 1u);
  ASSERT_EQ(sink->messages.size(), 1u);
  const auto& update = sink->messages[0];
  EXPECT_EQ(update["type"], "book_update");
  EXPECT_EQ(update["sequence"], 5);
  EXPECT_EQ(update["bids"].size(), 0u);
  ASSERT_EQ(update["asks"].size(), 1u);
  EXPECT_EQ(update["asks"][0][0], "0.05");
  EXPECT_EQ(update["asks"][0][1], 1);
  ASSERT_TRUE(data.Last("cpu"));
  EXPECT_EQ(data.Last("cpu")->quantity, 1);
  // Replace moves the 0.06 ask to 0.055; cancel removes the bid.
  data.Publish(6, 15, {Engine(EventType::kReplaced, 3, Side::kSell, 55'000, 2)});
  data.Publish(7, 16, {Engine(EventType::kCancelled, 4, Side::kBuy, 40'000, 1)});
  depth = data.Depth("cpu", 10);
  ASSERT_EQ(depth->asks.size(), 2u);
  EXPECT_EQ(depth->asks[1].price, 55'000);
  EXPECT_EQ(depth->asks[1].quantity, 2);
  EXPECT_TRUE(depth->bids.empty());
  // A gone subscriber is dropped, not called.
  sink.reset();
  data.Publish(8, 17, {Engine(EventType::kAccepted, 9, Side::kBuy, 10'000, 1)});
}

TEST(OpenApiTest, DescribesEveryRouteOfTheTable) {
  const auto document = nlohmann::json::parse(Api::OpenApiJson());
  EXPECT_EQ(document["openapi"], "3.0.3");
  size_t operations = 0;
  for (const auto& [path, methods] : document["paths"].items()) operations += methods.size();
  EXPECT_EQ(operations, Api::Routes().size());
  for (const Route& route : Api::Routes()) {
    std::string method = route.method;
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    EXPECT_TRUE(document["paths"][route.pattern].contains(method)) << route.pattern;
  }
}

TEST(RouteTableTest, EveryRouteHasAHandlerAndAnAuthRequirementOfItsKind) {
  std::set<std::string> seen;
  for (const Route& route : Api::Routes()) {
    EXPECT_NE(route.handler, nullptr) << route.pattern;
    EXPECT_TRUE(seen.insert(route.method + " " + route.pattern).second) << route.pattern;
    // Whatever changes state needs an account (sign-up excepted); the WebSocket routes say
    // how they authenticate themselves.
    if (route.method != "GET" && route.pattern != "/v1/accounts") {
      EXPECT_NE(route.auth, Auth::kNone) << route.method << " " << route.pattern;
    }
    if (route.body == Body::kBlob) {
      EXPECT_NE(route.auth, Auth::kNone) << route.pattern;
    }
  }
}

// The hand-written answer to a placed order is PlacedOrderJson's dump byte for byte, over a
// seeded random stream through a real exchange (fills with their leases, ioc and fok
// remainders cancelled, orders left open, market orders), and for text that needs escaping.
TEST(PlacedOrderBodyTest, EqualsTheJsonDumpForEveryPlacedOrder) {
  store::testing::ExchangeDriver driver;
  store::testing::CommandGenerator generator(7);
  for (const core::CommandBody& command : generator.Setup()) driver.Run(command);
  std::map<std::string, int> by_status;
  int with_fills = 0;
  for (int i = 0; i < 4000; ++i) {
    driver.Advance(generator.NextStep());
    const core::CommandBody command = generator.Next(driver.exchange(), driver.now());
    core::CommandResult result;
    const store::AppliedCommand& applied = driver.Run(command, &result);
    const auto* place = std::get_if<core::PlaceOrder>(&command);
    if (place == nullptr || !result.accepted) continue;
    core::Acked acked;
    acked.sequence = applied.sequence;
    acked.time = applied.time_micros;
    acked.output.result = result;
    acked.output.events = applied.events;
    const nlohmann::json expected = PlacedOrderJson(*place, acked);
    ASSERT_EQ(PlacedOrderBody(*place, acked), expected.dump()) << "command " << i;
    ++by_status[expected["order"]["status"].get<std::string>()];
    with_fills += !expected["fills"].empty();
  }
  for (const char* status : {"open", "filled", "cancelled"}) {
    EXPECT_GT(by_status[status], 0) << status;
  }
  EXPECT_GT(with_fills, 0);

  core::PlaceOrder odd;
  odd.actor = 4;
  odd.market = "m\"\\\n\t\x01\x7f é";
  odd.client_order_id = "key \"with\" quotes\r\n";
  odd.type = engine::OrderType::kMarket;
  odd.quantity = 3;
  core::Acked acked;
  acked.sequence = 99;
  acked.output.result.order = 12;
  EXPECT_EQ(PlacedOrderBody(odd, acked), PlacedOrderJson(odd, acked).dump());
}

}  // namespace
}  // namespace ocx::api
