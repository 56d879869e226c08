#include "src/cli/replay_format.h"

#include <sstream>

#include "gtest/gtest.h"

namespace ocx::cli {
namespace {

using engine::Command;
using engine::CommandOp;
using Outcome = ReplayParser::Outcome;

class ReplayParserTest : public ::testing::Test {
 protected:
  ReplayParser parser_;
  Command command_;
  std::string error_;

  Outcome Parse(std::string_view line) { return parser_.Parse(line, &command_, &error_); }
  void ExpectMalformed(std::string_view line, std::string_view why) {
    EXPECT_EQ(Parse(line), Outcome::kMalformed) << line;
    EXPECT_NE(error_.find(why), std::string::npos) << "error was: " << error_;
  }
};

TEST_F(ReplayParserTest, ParsesTheRulebookExamples) {
  ASSERT_EQ(Parse(R"({"op":"new","id":1,"account":"a1","side":"buy","type":"limit","tif":"gtc","price":"0.055","qty":100})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.op, CommandOp::kNew);
  EXPECT_EQ(command_.order.id, 1);
  EXPECT_EQ(command_.order.side, engine::Side::kBuy);
  EXPECT_EQ(command_.order.price, 55'000);
  EXPECT_EQ(command_.order.quantity, 100);
  EXPECT_EQ(command_.order.lot, 1);
  const engine::AccountId a1 = command_.order.account;

  ASSERT_EQ(Parse(R"({"op":"new","id":2,"account":"a2","side":"sell","type":"market","tif":"ioc","qty":5})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.order.type, engine::OrderType::kMarket);
  EXPECT_NE(command_.order.account, a1);

  ASSERT_EQ(Parse(R"({"op":"cancel","id":1})"), Outcome::kCommand);
  EXPECT_EQ(command_.op, CommandOp::kCancel);
  EXPECT_EQ(command_.cancel_id, 1);

  ASSERT_EQ(Parse(R"({"op":"replace","id":1,"price":"0.056","qty":80})"), Outcome::kCommand);
  EXPECT_EQ(command_.op, CommandOp::kReplace);
  EXPECT_EQ(command_.replace.price, 56'000);
  EXPECT_EQ(command_.replace.quantity, 80);
}

TEST_F(ReplayParserTest, SameAccountNameGetsSameId) {
  Parse(R"({"op":"new","id":1,"account":"x","side":"buy","price":"1","qty":1})");
  const engine::AccountId first = command_.order.account;
  Parse(R"({"op":"new","id":2,"account":"x","side":"sell","price":"1","qty":1})");
  EXPECT_EQ(command_.order.account, first);
}

TEST_F(ReplayParserTest, DefaultsToLimitGtcAndMarketIoc) {
  ASSERT_EQ(Parse(R"({"op":"new","id":1,"account":"a","side":"buy","price":"1","qty":1})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.order.type, engine::OrderType::kLimit);
  EXPECT_EQ(command_.order.tif, engine::TimeInForce::kGtc);
  ASSERT_EQ(Parse(R"({"op":"new","id":2,"account":"a","side":"buy","type":"market","qty":1})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.order.tif, engine::TimeInForce::kIoc);
}

TEST_F(ReplayParserTest, AcceptsNumericPricesExactly) {
  ASSERT_EQ(Parse(R"({"op":"new","id":1,"account":"a","side":"buy","price":0.055,"qty":1})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.order.price, 55'000);
  ASSERT_EQ(Parse(R"({"op":"new","id":2,"account":"a","side":"buy","price":3,"qty":1})"),
            Outcome::kCommand);
  EXPECT_EQ(command_.order.price, 3'000'000);
}

TEST_F(ReplayParserTest, OutOfDomainValuesBecomeEngineRejections) {
  // Well-formed but invalid values reach the engine, which rejects them with a reason.
  ASSERT_EQ(Parse(R"({"op":"new","id":1,"account":"a","side":"buy","price":"-1","qty":1})"),
            Outcome::kCommand);
  EXPECT_LE(command_.order.price, 0);
  ASSERT_EQ(Parse(R"({"op":"new","id":2,"account":"a","side":"buy","price":"0.0000001","qty":1})"),
            Outcome::kCommand);
  EXPECT_LE(command_.order.price, 0);
  ASSERT_EQ(Parse(R"({"op":"new","id":3,"account":"a","side":"buy","price":"1","qty":1.5})"),
            Outcome::kCommand);
  EXPECT_LT(command_.order.quantity, 1);
  ASSERT_EQ(Parse(R"({"op":"new","id":4,"account":"a","side":"buy","price":"1","qty":4,"lot":2.5})"),
            Outcome::kCommand);
  EXPECT_LT(command_.order.lot, 1);
}

TEST_F(ReplayParserTest, ReportsMalformedLinesWithAReason) {
  ExpectMalformed("{not json", "not valid JSON");
  ExpectMalformed("[1,2]", "JSON object");
  ExpectMalformed(R"({"id":1})", "missing \"op\"");
  ExpectMalformed(R"({"op":"buy"})", "unknown \"op\"");
  ExpectMalformed(R"({"op":"cancel"})", "missing \"id\"");
  ExpectMalformed(R"({"op":"cancel","id":"7"})", "\"id\" must be a 64-bit integer");
  ExpectMalformed(R"({"op":"new","id":1,"side":"buy","price":"1","qty":1})", "\"account\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"up","price":"1","qty":1})",
                  "\"side\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","type":"stop","price":"1","qty":1})",
                  "\"type\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","tif":"day","price":"1","qty":1})",
                  "\"tif\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","qty":1})", "needs \"price\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","price":"abc","qty":1})",
                  "not a decimal");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","price":"1"})", "\"qty\"");
  ExpectMalformed(R"({"op":"new","id":1,"account":"a","side":"buy","price":"1","qty":"5"})",
                  "\"qty\" must be an integer");
  ExpectMalformed(R"({"op":"replace","id":1})", "\"price\" and/or \"qty\"");
  ExpectMalformed(R"({"op":"time"})", "needs \"ts\"");
}

TEST_F(ReplayParserTest, TimeNeverGoesBackwards) {
  ASSERT_EQ(Parse(R"({"op":"time","ts":100})"), Outcome::kCommand);
  EXPECT_EQ(command_.time, 100);
  ASSERT_EQ(Parse(R"({"op":"cancel","id":1})"), Outcome::kCommand);
  EXPECT_EQ(command_.time, 100);  // No ts: the previous command's time.
  ExpectMalformed(R"({"op":"time","ts":99})", "before the previous");
  ASSERT_EQ(Parse(R"({"op":"time","ts":100})"), Outcome::kCommand);
}

TEST_F(ReplayParserTest, BlankLinesAreNotCommands) {
  EXPECT_EQ(Parse(""), Outcome::kBlank);
  EXPECT_EQ(Parse("  \t\r"), Outcome::kBlank);
}

TEST(ReplayEventJsonTest, TradeLineIsExactlyTheRulebookFormat) {
  engine::Event trade;
  trade.type = engine::EventType::kTrade;
  trade.id = 2;
  trade.maker_id = 1;
  trade.price = 55'000;
  trade.quantity = 5;
  std::string out;
  AppendEventJson(trade, &out);
  EXPECT_EQ(out, "{\"type\":\"trade\",\"taker\":2,\"maker\":1,\"price\":\"0.055\",\"qty\":5}\n");
}

TEST(ReplayTest, DuplicateIdIsRejectedEvenAfterTheFirstOrderFinished) {
  std::istringstream in(
      R"({"op":"new","id":1,"account":"a","side":"buy","price":"1","qty":1})"
      "\n"
      R"({"op":"cancel","id":1})"
      "\n"
      R"({"op":"new","id":1,"account":"a","side":"buy","price":"1","qty":1})"
      "\n");
  std::ostringstream out, errors;
  const ReplayStats stats = Replay(in, 100, out, errors);
  EXPECT_EQ(stats.commands, 3u);
  EXPECT_NE(out.str().find(R"({"type":"rejected","id":1,"op":"new","reason":"duplicate_id"})"),
            std::string::npos)
      << out.str();
  EXPECT_TRUE(errors.str().empty());
}

TEST(ReplayTest, IdOfAnOrderExpiringAtThisVeryCommandIsStillTaken) {
  // Found by the differential fuzzer: the id check ran before this command's time expired
  // the first order, so the id was accepted twice.
  std::istringstream in(
      R"({"op":"new","id":1,"account":"a","side":"sell","tif":"gtd","price":"1","qty":3,"expiry":6})"
      "\n"
      R"({"op":"new","id":1,"account":"a","side":"sell","price":"1","qty":4,"ts":7})"
      "\n"
      R"({"op":"new","id":3,"account":"b","side":"buy","type":"market","qty":10})"
      "\n");
  std::ostringstream out, errors;
  const ReplayStats stats = Replay(in, 100, out, errors);
  EXPECT_EQ(stats.trades, 0u) << out.str();
  const std::string text = out.str();
  const size_t expired = text.find(R"({"type":"expired","id":1,"qty":3})");
  const size_t rejected = text.find(R"({"type":"rejected","id":1,"op":"new","reason":"duplicate_id"})");
  ASSERT_NE(expired, std::string::npos) << text;
  ASSERT_NE(rejected, std::string::npos) << text;
  EXPECT_LT(expired, rejected);
}

TEST(ReplayTest, MalformedLineIsReportedWithItsNumberAndSkipped) {
  std::istringstream in(
      R"({"op":"new","id":1,"account":"a","side":"sell","price":"1","qty":2})"
      "\n"
      "garbage\n"
      R"({"op":"new","id":2,"account":"b","side":"buy","price":"1","qty":2})"
      "\n");
  std::ostringstream out, errors;
  const ReplayStats stats = Replay(in, 100, out, errors);
  EXPECT_EQ(stats.malformed, 1u);
  EXPECT_EQ(stats.trades, 1u);
  EXPECT_EQ(errors.str(), "line 2: not valid JSON\n");
  EXPECT_NE(out.str().find(R"({"type":"trade","taker":2,"maker":1,"price":"1","qty":2})"),
            std::string::npos);
}

TEST(ReplayTest, BookConfigSetsTheTickAndOnlyReservesLess) {
  const std::string file =
      R"({"op":"new","id":1,"account":"a","side":"sell","price":"0.05","qty":2})"
      "\n"
      R"({"op":"new","id":2,"account":"b","side":"buy","price":"0.051","qty":2})"
      "\n"
      R"({"op":"new","id":3,"account":"b","side":"buy","price":"0.05","qty":2})"
      "\n";
  std::istringstream by_tick_in(file);
  std::ostringstream by_tick, by_tick_errors;
  Replay(by_tick_in, 10'000, by_tick, by_tick_errors);

  engine::BookConfig small;
  small.tick_micros = 10'000;
  small.expected_orders = 4;
  small.expected_levels = 4;
  std::istringstream small_in(file);
  std::ostringstream events, errors;
  const ReplayStats stats = Replay(small_in, small, events, errors);
  EXPECT_EQ(stats.trades, 1u);
  EXPECT_EQ(events.str(), by_tick.str());
  EXPECT_NE(events.str().find(R"({"type":"rejected","id":2,"op":"new","reason":"off_tick"})"),
            std::string::npos)
      << events.str();
}

}  // namespace
}  // namespace ocx::cli
