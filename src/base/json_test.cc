#include "src/base/json.h"

#include <string>

#include "gtest/gtest.h"

namespace ocx::base {
namespace {

TEST(ParseJsonStrictTest, ParsesAnObject) {
  Json value;
  ASSERT_TRUE(ParseJsonStrict(R"({"a":[1,2,{"b":"c"}],"d":null})", &value).ok());
  EXPECT_EQ(value["a"][2]["b"], "c");
}

TEST(ParseJsonStrictTest, RefusesWhatFollowsTheValue) {
  Json value;
  EXPECT_EQ(ParseJsonStrict(R"({"a":1} {"b":2})", &value).error, JsonParseError::kSyntax);
  EXPECT_EQ(ParseJsonStrict(R"({"a":1}x)", &value).error, JsonParseError::kSyntax);
  EXPECT_TRUE(value.is_null());
}

TEST(ParseJsonStrictTest, RefusesANulByteAndWhatFollowsIt) {
  // nlohmann stops at a NUL as at the end of input: {"a":1}\0garbage would parse.
  Json value;
  const std::string text("{\"a\":1}\0{\"b\":2}", 15);
  const JsonParseResult result = ParseJsonStrict(text, &value);
  EXPECT_EQ(result.error, JsonParseError::kSyntax);
  EXPECT_FALSE(result.message.empty());
}

TEST(ParseJsonStrictTest, RefusesNestingPastTheBoundWhileParsing) {
  Json value;
  std::string deep(100'000, '[');  // Never closed: the parse stops at the bound, not the end.
  EXPECT_EQ(ParseJsonStrict(deep, &value, 32).error, JsonParseError::kTooDeep);
  std::string ok(32, '[');
  ok += std::string(32, ']');
  EXPECT_TRUE(ParseJsonStrict(ok, &value, 32).ok());
  std::string too_deep(33, '[');
  too_deep += std::string(33, ']');
  EXPECT_EQ(ParseJsonStrict(too_deep, &value, 32).error, JsonParseError::kTooDeep);
  std::string objects;
  for (int i = 0; i < 40; ++i) objects += "{\"k\":";
  objects += "1" + std::string(40, '}');
  EXPECT_EQ(ParseJsonStrict(objects, &value, 32).error, JsonParseError::kTooDeep);
}

TEST(ParseJsonStrictTest, RefusesDuplicateKeys) {
  Json value;
  const JsonParseResult result = ParseJsonStrict(R"({"amount":"1","amount":"1000"})", &value);
  EXPECT_EQ(result.error, JsonParseError::kDuplicateKey);
  EXPECT_NE(result.message.find("amount"), std::string::npos);
  // The same key in two different objects is fine.
  EXPECT_TRUE(ParseJsonStrict(R"({"a":{"k":1},"b":{"k":2}})", &value).ok());
}

TEST(ParseJsonStrictTest, RefusesInvalidUtf8InStrings) {
  Json value;
  EXPECT_EQ(ParseJsonStrict("{\"a\":\"\xff\"}", &value).error, JsonParseError::kSyntax);
  EXPECT_EQ(ParseJsonStrict(R"({"a":"\ud800"})", &value).error, JsonParseError::kSyntax);
  EXPECT_TRUE(ParseJsonStrict("{\"a\":\"\xc3\xa9\"}", &value).ok());
}

TEST(ParseJsonStrictTest, BigNumbersAreNotIntegers) {
  Json value;
  ASSERT_TRUE(ParseJsonStrict(R"({"n":18446744073709551616})", &value).ok());
  EXPECT_FALSE(value["n"].is_number_integer());
  ASSERT_TRUE(ParseJsonStrict(R"({"n":18446744073709551615})", &value).ok());
  EXPECT_TRUE(value["n"].is_number_unsigned());
  EXPECT_EQ(ParseJsonStrict(R"({"n":1e400})", &value).error, JsonParseError::kSyntax);
}

TEST(DumpJsonTest, ReplacesInvalidUtf8InsteadOfThrowing) {
  Json value{{"q", std::string("a\xff")}};
  EXPECT_EQ(DumpJson(value), "{\"q\":\"a\xEF\xBF\xBD\"}");
}

}  // namespace
}  // namespace ocx::base
