#include "src/base/strings.h"

#include "gtest/gtest.h"

namespace ocx::base {
namespace {

TEST(StringsTest, EqualsIgnoreCaseComparesAsciiLettersWithoutCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Length", "content-length"));
  EXPECT_TRUE(EqualsIgnoreCase("CLOSE", "close"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("close", "closed"));  // Lengths differ.
  EXPECT_FALSE(EqualsIgnoreCase("Cache-Control", "Cache_Control"));
  // Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the case bit but are not
  // letters.
  EXPECT_FALSE(EqualsIgnoreCase("@", "`"));
  EXPECT_FALSE(EqualsIgnoreCase("\xC3\x89", "\xC3\xA9"));  // É and é in UTF-8: not ASCII.
}

}  // namespace
}  // namespace ocx::base
