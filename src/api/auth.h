// Identities of the API: account tokens and machine keys (libsodium).
//
// An API token is "ocx_" + 64 hex digits (256 random bits). The exchange keeps only its
// BLAKE2b-256 hash, which travels in the CreateAccount command and so in the journal. A
// token has full entropy, so a fast hash is enough: there is nothing to brute-force.
//
// A machine holds an Ed25519 key pair; the exchange knows its public key from
// RegisterMachine. The agent proves the key on connect by signing a fresh challenge, and
// signs every usage report (docs/api.md gives the exact bytes signed).
#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "src/core/events.h"
#include "src/core/types.h"

namespace ocx::core {
class Exchange;
}

namespace ocx::api {

inline constexpr std::string_view kTokenPrefix = "ocx_";

// A fresh random API token. Never log it.
std::string NewApiToken();
// Lowercase hex BLAKE2b-256 of the token's bytes.
std::string TokenHash(std::string_view token);
// True when `token` has the shape of an API token (prefix + 64 lowercase hex digits).
bool LooksLikeToken(std::string_view token);

// Random bytes as lowercase hex (challenge nonces).
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

// The exact bytes an agent signs to answer a challenge, and to report usage.
std::string AgentAuthMessage(core::MachineId machine, std::string_view nonce_hex);
std::string UsageMessage(core::MachineId machine, const core::ReportUsage& usage);

struct AccountIdentity {
  core::AccountId id = 0;
  core::Role role = core::Role::kConsumer;
};

struct MachineIdentity {
  core::MachineId id = 0;
  core::AccountId owner = 0;
  std::string public_key_hex;
};

// Who holds which token and key, followed from durable events (and loaded from the state at
// start). Thread-safe: readers (API threads) share a lock; Apply (the journal's writer
// thread, via the sequencer's on_durable hook) takes it exclusively, briefly.
class IdentityRegistry {
 public:
  void Load(const core::Exchange& exchange);
  void Apply(const core::CoreEvent& event);

  std::optional<AccountIdentity> FindByToken(std::string_view token) const;
  // The account whose current token has this hash (TokenHash); nullopt once it was rotated.
  std::optional<AccountIdentity> FindByTokenHash(const std::string& hash) const;
  std::optional<AccountIdentity> FindAccount(core::AccountId id) const;
  std::optional<MachineIdentity> FindMachine(core::MachineId id) const;
  bool AnyOperator() const;

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, core::AccountId> token_hashes_;  // Guarded by mu_.
  // Each account's current token hash, so a rotation can drop the old one.
  std::unordered_map<core::AccountId, std::string> account_token_;  // Guarded by mu_.
  std::unordered_map<core::AccountId, AccountIdentity> accounts_;  // Guarded by mu_.
  std::unordered_map<core::MachineId, MachineIdentity> machines_;  // Guarded by mu_.
  bool any_operator_ = false;                                      // Guarded by mu_.
};

}  // namespace ocx::api
