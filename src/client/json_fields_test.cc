#include "src/client/json_fields.h"

#include <string>

#include "gtest/gtest.h"

namespace ocx::client {
namespace {

using Json = nlohmann::json;

TEST(JsonFieldsTest, ParseExchangeJsonIsStrict) {
  EXPECT_TRUE(ParseExchangeJson(R"({"type":"welcome","leases":[]})").has_value());
  EXPECT_TRUE(ParseExchangeJson("7").has_value());  // Any value; the reader checks its type.
  for (const std::string& text : {std::string("not json"), std::string(R"({"a":1} trailing)"),
                                  std::string(R"({"a":1,"a":2})"), std::string("{\"a\":\"\xff\"}"),
                                  std::string(200, '[') + std::string(200, ']'),
                                  std::string("{\"a\":1}\0", 8), std::string()}) {
    EXPECT_FALSE(ParseExchangeJson(text).has_value()) << text;
  }
}

TEST(JsonFieldsTest, FieldsOfTheWrongTypeAreAbsent) {
  const Json message = Json::parse(
      R"({"s":"x","n":5,"neg":-5,"big":18446744073709551615,"f":1.5,"b":true,"o":{},"a":[],"z":null})");
  EXPECT_EQ(StringField(message, "s"), "x");
  EXPECT_EQ(StringField(message, "n"), std::nullopt);
  EXPECT_EQ(Int64Field(message, "n"), 5);
  EXPECT_EQ(Int64Field(message, "neg"), -5);
  EXPECT_EQ(Int64Field(message, "big"), std::nullopt);  // Past int64.
  EXPECT_EQ(Int64Field(message, "f"), std::nullopt);    // Not an integer.
  EXPECT_EQ(Int64Field(message, "s"), std::nullopt);
  EXPECT_EQ(Uint64Field(message, "n"), 5u);
  EXPECT_EQ(Uint64Field(message, "neg"), std::nullopt);
  EXPECT_EQ(Uint64Field(message, "big"), UINT64_MAX);
  EXPECT_EQ(Uint64Field(message, "b"), std::nullopt);
  EXPECT_EQ(BoolField(message, "b"), true);
  EXPECT_EQ(BoolField(message, "n"), std::nullopt);
  EXPECT_NE(ObjectField(message, "o"), nullptr);
  EXPECT_EQ(ObjectField(message, "a"), nullptr);
  EXPECT_NE(ArrayField(message, "a"), nullptr);
  EXPECT_EQ(ArrayField(message, "o"), nullptr);
  EXPECT_NE(FindField(message, "z"), nullptr);
  EXPECT_EQ(FindField(message, "missing"), nullptr);
}

TEST(JsonFieldsTest, NonObjectsHaveNoFields) {
  for (const Json& value : {Json(7), Json("text"), Json::array({1, 2}), Json(nullptr)}) {
    EXPECT_EQ(FindField(value, "type"), nullptr) << value.dump();
    EXPECT_EQ(StringField(value, "type"), std::nullopt);
    EXPECT_EQ(Uint64Field(value, "lease"), std::nullopt);
  }
}

}  // namespace
}  // namespace ocx::client
