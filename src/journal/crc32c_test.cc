#include "src/journal/crc32c.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "src/base/rng.h"

namespace ocx::journal {
namespace {

TEST(Crc32cTest, CheckValueOfTheStandardString) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST(Crc32cTest, EmptyInputIsZero) { EXPECT_EQ(Crc32c(std::string_view()), 0u); }

// The iSCSI test vectors of RFC 3720, appendix B.4.
TEST(Crc32cTest, Rfc3720Vectors) {
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  std::string ones(32, '\xFF');
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
  const unsigned char read_command[48] = {
      0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Crc32c(read_command, sizeof(read_command)), 0xD9963A56u);
}

TEST(Crc32cTest, ExtendEqualsOneShot) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t split = 0; split <= text.size(); ++split) {
    const uint32_t first = Crc32c(text.data(), split);
    EXPECT_EQ(Crc32cExtend(first, text.data() + split, text.size() - split), Crc32c(text))
        << "split at " << split;
  }
}

// The SSE4.2 and portable implementations agree at every length and alignment.
TEST(Crc32cTest, HardwareAndPortableAgree) {
  if (!internal::HaveSse42()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  base::Rng rng(20240611);
  std::string buffer(4096 + 16, '\0');
  for (char& c : buffer) c = static_cast<char>(rng.Next());
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t length = 0; length < 300; ++length) {
      const char* p = buffer.data() + offset;
      ASSERT_EQ(internal::Crc32cExtendSse42(0, p, length),
                internal::Crc32cExtendPortable(0, p, length))
          << "offset " << offset << " length " << length;
    }
  }
  const uint32_t seed_crc = 0x12345678;
  EXPECT_EQ(internal::Crc32cExtendSse42(seed_crc, buffer.data(), 4096),
            internal::Crc32cExtendPortable(seed_crc, buffer.data(), 4096));
}

TEST(Crc32cTest, PortableMatchesCheckValue) {
  EXPECT_EQ(internal::Crc32cExtendPortable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string data(64, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 37);
  const uint32_t original = Crc32c(data);
  for (size_t byte = 0; byte < data.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      data[byte] = static_cast<char>(data[byte] ^ (1 << bit));
      EXPECT_NE(Crc32c(data), original) << byte << ":" << bit;
      data[byte] = static_cast<char>(data[byte] ^ (1 << bit));
    }
  }
}

}  // namespace
}  // namespace ocx::journal
