#include "src/protocol/identity.h"

#include <sodium.h>

#include "src/base/assert.h"
#include "src/base/hex.h"

namespace ocx::protocol {
namespace {

void EnsureSodium() {
  static const int initialized = sodium_init();
  OCX_ASSERT_MSG(initialized >= 0, "libsodium failed to initialize");
}

std::string_view Bytes(const unsigned char* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

const unsigned char* Unsigned(std::string_view bytes) {
  return reinterpret_cast<const unsigned char*>(bytes.data());
}

}  // namespace

std::string RandomHex(size_t bytes) {
  EnsureSodium();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return base::HexEncode(raw);
}

std::string NewApiToken() { return std::string(kTokenPrefix) + RandomHex(32); }

std::string TokenHash(std::string_view token) {
  EnsureSodium();
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest, Unsigned(token), token.size(), nullptr, 0);
  return base::HexEncode(Bytes(digest, sizeof digest));
}

bool LooksLikeToken(std::string_view token) {
  return token.starts_with(kTokenPrefix) &&
         base::IsLowerHex(token.substr(kTokenPrefix.size()), 64);
}

MachineKeyPair NewMachineKeyPair() {
  EnsureSodium();
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  MachineKeyPair pair;
  pair.secret_key.resize(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(public_key, reinterpret_cast<unsigned char*>(pair.secret_key.data()));
  pair.public_key_hex = base::HexEncode(Bytes(public_key, sizeof public_key));
  return pair;
}

std::string SignHex(std::string_view secret_key, std::string_view message) {
  EnsureSodium();
  OCX_ASSERT(secret_key.size() == crypto_sign_SECRETKEYBYTES);
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, Unsigned(message), message.size(),
                       Unsigned(secret_key));
  return base::HexEncode(Bytes(signature, sizeof signature));
}

bool VerifySignatureHex(std::string_view public_key_hex, std::string_view message,
                        std::string_view signature_hex) {
  EnsureSodium();
  std::string public_key, signature;
  if (!base::IsLowerHex(public_key_hex, 2 * crypto_sign_PUBLICKEYBYTES) ||
      !base::IsLowerHex(signature_hex, 2 * crypto_sign_BYTES) ||
      !base::HexDecode(public_key_hex, &public_key) ||
      !base::HexDecode(signature_hex, &signature)) {
    return false;
  }
  return crypto_sign_verify_detached(Unsigned(signature), Unsigned(message), message.size(),
                                     Unsigned(public_key)) == 0;
}

std::string AgentAuthMessage(uint64_t machine, std::string_view nonce_hex) {
  return "ocx-agent-auth-v1\n" + std::to_string(machine) + "\n" + std::string(nonce_hex);
}

std::string UsageMessage(uint64_t machine, const UsageFigures& usage) {
  return "ocx-usage-v1\n" + std::to_string(machine) + "\n" + std::to_string(usage.lease) + "\n" +
         std::to_string(usage.wall_seconds) + "\n" + std::to_string(usage.cpu_seconds) + "\n" +
         std::to_string(usage.peak_memory_mib) + "\n" + std::to_string(usage.gpu_seconds);
}

}  // namespace ocx::protocol
