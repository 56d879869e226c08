#include "src/protocol/refusal.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace ocx::protocol {
namespace {

TEST(RefusalTableTest, CodesAreUniqueSnakeCaseAndRoundTrip) {
  std::set<std::string_view> codes;
  for (const Refusal refusal : AllRefusals()) {
    const RefusalInfo& info = Info(refusal);
    EXPECT_TRUE(codes.insert(info.code).second) << "duplicate code " << info.code;
    for (char c : info.code) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << info.code;
    EXPECT_EQ(RefusalFromCode(info.code), refusal);
    EXPECT_GE(info.http_status, 400) << info.code;
    EXPECT_LT(info.http_status, 600) << info.code;
    EXPECT_FALSE(info.sentence.empty()) << info.code;
    EXPECT_EQ(info.sentence.back(), '.') << info.code;
  }
  EXPECT_FALSE(RefusalFromCode("no_such_code").has_value());
}

TEST(RefusalTableTest, StatusesOfKnownCodes) {
  EXPECT_EQ(HttpStatus(Refusal::kInsufficientFunds), 422);
  EXPECT_EQ(HttpStatus(Refusal::kUnknownOrder), 404);
  EXPECT_EQ(HttpStatus(Refusal::kNotAuthorized), 403);
  EXPECT_EQ(HttpStatus(Refusal::kDuplicateClientOrderId), 409);
  EXPECT_EQ(HttpStatus(Refusal::kRateLimited), 429);
  EXPECT_EQ(Code(Refusal::kInternalError), "internal_error");
}

}  // namespace
}  // namespace ocx::protocol
