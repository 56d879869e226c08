#include "src/base/decimal.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace ocx::base {
namespace {

TEST(DecimalTest, ParsesWholeAndFractionalValues) {
  EXPECT_EQ(ParseMicros("0.055").micros, 55'000);
  EXPECT_EQ(ParseMicros("7").micros, 7'000'000);
  EXPECT_EQ(ParseMicros("12.345678").micros, 12'345'678);
  EXPECT_EQ(ParseMicros("-0.000001").micros, -1);
  EXPECT_EQ(ParseMicros("0").micros, 0);
  EXPECT_EQ(ParseMicros("00.5").micros, 500'000);
}

TEST(DecimalTest, RejectsMalformedText) {
  for (const char* bad : {"", "-", ".5", "1.", "abc", "1e3", "+1", " 1", "1 ", "1.2.3", "1,5",
                          "0x10", "1.5x", "--1"}) {
    EXPECT_EQ(ParseMicros(bad).error, DecimalError::kSyntax) << "input: '" << bad << "'";
  }
}

TEST(DecimalTest, RejectsMoreThanSixFractionalDigits) {
  EXPECT_EQ(ParseMicros("0.0000001").error, DecimalError::kTooManyDigits);
  EXPECT_EQ(ParseMicros("1.0000000").error, DecimalError::kTooManyDigits);
}

TEST(DecimalTest, RejectsValuesBeyondInt64Micros) {
  EXPECT_EQ(ParseMicros("9223372036854.775807").micros, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseMicros("9223372036854.775808").error, DecimalError::kOutOfRange);
  EXPECT_EQ(ParseMicros("-9223372036854.775808").micros, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseMicros("99999999999999999999").error, DecimalError::kOutOfRange);
}

TEST(DecimalTest, FormatsShortestExactDecimal) {
  EXPECT_EQ(FormatMicros(55'000), "0.055");
  EXPECT_EQ(FormatMicros(2'000'000), "2");
  EXPECT_EQ(FormatMicros(-1), "-0.000001");
  EXPECT_EQ(FormatMicros(0), "0");
  EXPECT_EQ(FormatMicros(10'100'000), "10.1");
  EXPECT_EQ(FormatMicros(std::numeric_limits<int64_t>::min()), "-9223372036854.775808");
}

TEST(DecimalTest, FormatThenParseRoundTrips) {
  for (int64_t v : {int64_t{1}, int64_t{999'999}, int64_t{1'000'001}, int64_t{-123'456'789},
                    std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(ParseMicros(FormatMicros(v)).micros, v);
  }
}

}  // namespace
}  // namespace ocx::base
