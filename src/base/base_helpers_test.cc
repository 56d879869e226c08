// Tests of the small shared helpers: UTF-8, hex, SHA-256, errno statuses, bounded reads.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "src/base/errno_status.h"
#include "src/base/files.h"
#include "src/base/hex.h"
#include "src/base/sha256.h"
#include "src/base/testing/temp_dir.h"
#include "src/base/utf8.h"

namespace ocx::base {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
}

TEST(Utf8Test, RefusesMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // Cut off.
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // Overlong '/'.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // A surrogate.
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // Past U+10FFFF.
  EXPECT_FALSE(IsValidUtf8("ok\x80"));
}

TEST(Utf8Test, ToValidUtf8ReplacesEachBadByte) {
  EXPECT_EQ(ToValidUtf8("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(ToValidUtf8("\xc3"), "\xEF\xBF\xBD");
  EXPECT_EQ(ToValidUtf8("\xc3\xa9"), "\xc3\xa9");
}

TEST(HexTest, RoundTrips) {
  const std::string bytes("\x00\x01\xab\xff", 4);
  EXPECT_EQ(HexEncode(bytes), "0001abff");
  std::string decoded;
  ASSERT_TRUE(HexDecode("0001abff", &decoded));
  EXPECT_EQ(decoded, bytes);
}

TEST(HexTest, RefusesUppercaseOddAndForeignDigits) {
  std::string out;
  EXPECT_FALSE(HexDecode("AB", &out));
  EXPECT_FALSE(HexDecode("abc", &out));
  EXPECT_FALSE(HexDecode("zz", &out));
  EXPECT_TRUE(IsLowerHex("00ff", 4));
  EXPECT_FALSE(IsLowerHex("00ff", 6));
  EXPECT_FALSE(IsLowerHex("00FF", 4));
}

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 incremental;
  incremental.Update("a");
  incremental.Update("bc");
  EXPECT_EQ(incremental.FinishHex(), Sha256Hex("abc"));
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex("abc"));
}

TEST(Sha256Test, HashesWhatIsLeftOfAFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/f";
  std::ofstream(path) << "abc";
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto digest = Sha256HexOfFd(fd);
  ::close(fd);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, Sha256Hex("abc"));
}

TEST(ErrnoStatusTest, MapsCodesAndNamesTheOperation) {
  const absl::Status missing = ErrnoStatus(ENOENT, "open", "/nowhere");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("open /nowhere"), absl::string_view::npos);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "write").code(), absl::StatusCode::kResourceExhausted);
}

TEST(FilesTest, ReadFileBoundedStopsPastTheBound) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100, 'x'), 0600).ok());
  const auto whole = ReadFileBounded(path, 100);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->size(), 100u);
  EXPECT_EQ(ReadFileBounded(path, 99).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ReadFileBounded(dir.path() + "/missing", 10).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ocx::base
