#include "src/protocol/refusal.h"

#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "src/base/testing/build_paths.h"

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

// docs/api.md lists every code with its status: the table there is the public contract.
TEST(RefusalTableTest, TheApiDocumentListsEveryCodeWithItsStatus) {
  std::ifstream in(std::string(base::testing::SourceDir()) + "/docs/api.md");
  ASSERT_TRUE(in) << "docs/api.md";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const Refusal refusal : AllRefusals()) {
    const std::string row =
        "| `" + std::string(Code(refusal)) + "` | " + std::to_string(HttpStatus(refusal)) + " |";
    EXPECT_NE(doc.find(row), std::string::npos) << "docs/api.md lacks the row " << row;
  }
}

}  // namespace
}  // namespace ocx::protocol
