// Identities on the wire: API tokens and machine keys (libsodium), and the exact bytes a
// machine signs. Below both the exchange's API (which checks) and the provider agent (which
// signs), so that neither links the other.
//
// An API token is "ocx_" + 64 hex digits (256 random bits). The exchange keeps only its
// BLAKE2b-256 hash, which travels in the CreateAccount command and so in the journal. A
// token has full entropy, so a fast hash is enough: there is nothing to brute-force.
//
// A machine holds an Ed25519 key pair; the exchange knows its public key from
// RegisterMachine. The agent proves the key on connect by signing a fresh challenge, and
// signs every usage report (docs/api.md gives the exact bytes signed).
// Thread-safe: free functions without shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ocx::protocol {

inline constexpr std::string_view kTokenPrefix = "ocx_";

// A fresh random API token. Never log it.
std::string NewApiToken();
// Lowercase hex BLAKE2b-256 of the token's bytes.
std::string TokenHash(std::string_view token);
// True when `token` has the shape of an API token (prefix + 64 lowercase hex digits).
bool LooksLikeToken(std::string_view token);

// Random bytes as lowercase hex (challenge nonces, incident ids).
std::string RandomHex(size_t bytes);

struct MachineKeyPair {
  std::string public_key_hex;  // 32 bytes.
  std::string secret_key;      // 64 raw bytes (libsodium's secret key format).
};
MachineKeyPair NewMachineKeyPair();
// Detached Ed25519 signature, lowercase hex (128 digits).
std::string SignHex(std::string_view secret_key, std::string_view message);
// False for a malformed key or signature as well as a wrong one.
bool VerifySignatureHex(std::string_view public_key_hex, std::string_view message,
                        std::string_view signature_hex);

// What a usage report claims (docs/api.md, the agent channel's "usage" message).
struct UsageFigures {
  uint64_t lease = 0;
  int64_t wall_seconds = 0;
  int64_t cpu_seconds = 0;
  int64_t peak_memory_mib = 0;
  int64_t gpu_seconds = 0;
};

// The exact bytes an agent signs to answer a challenge, and to report usage.
std::string AgentAuthMessage(uint64_t machine, std::string_view nonce_hex);
std::string UsageMessage(uint64_t machine, const UsageFigures& usage);

}  // namespace ocx::protocol
