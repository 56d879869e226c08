#include "src/protocol/identity.h"

#include "gtest/gtest.h"

namespace ocx::protocol {
namespace {

TEST(IdentityTest, TokensHaveTheirShape) {
  const std::string token = NewApiToken();
  EXPECT_TRUE(LooksLikeToken(token));
  EXPECT_FALSE(LooksLikeToken(token.substr(1)));
  EXPECT_FALSE(LooksLikeToken("ocx_" + std::string(64, 'G')));
  EXPECT_EQ(TokenHash(token).size(), 64u);
  EXPECT_NE(NewApiToken(), token);
}

TEST(IdentityTest, SignaturesVerifyOnlyWithTheirKeyAndMessage) {
  const MachineKeyPair pair = NewMachineKeyPair();
  const std::string message = AgentAuthMessage(7, "00ff");
  const std::string signature = SignHex(pair.secret_key, message);
  EXPECT_TRUE(VerifySignatureHex(pair.public_key_hex, message, signature));
  EXPECT_FALSE(VerifySignatureHex(pair.public_key_hex, AgentAuthMessage(8, "00ff"), signature));
  EXPECT_FALSE(VerifySignatureHex(NewMachineKeyPair().public_key_hex, message, signature));
  EXPECT_FALSE(VerifySignatureHex("zz", message, signature));
  EXPECT_FALSE(VerifySignatureHex(pair.public_key_hex, message, "00"));
}

TEST(IdentityTest, UsageMessageIsTheDocumentedBytes) {
  EXPECT_EQ(UsageMessage(3, UsageFigures{9, 10, 11, 12, 13}),
            "ocx-usage-v1\n3\n9\n10\n11\n12\n13");
}

}  // namespace
}  // namespace ocx::protocol
