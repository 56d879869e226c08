#include "src/api/auth.h"

#include <sodium.h>

#include <mutex>

#include "src/base/assert.h"
#include "src/core/exchange.h"

namespace ocx::api {
namespace {

void EnsureSodium() {
  static const int initialized = sodium_init();
  OCX_ASSERT_MSG(initialized >= 0, "libsodium failed to initialize");
}

std::string ToHex(const unsigned char* bytes, size_t size) {
  std::string hex(size * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes, size);
  hex.pop_back();
  return hex;
}

bool FromHex(std::string_view hex, unsigned char* out, size_t size) {
  if (hex.size() != size * 2) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  size_t written = 0;
  return sodium_hex2bin(out, size, hex.data(), hex.size(), nullptr, &written, nullptr) == 0 &&
         written == size;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  EnsureSodium();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return ToHex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string NewApiToken() { return std::string(kTokenPrefix) + RandomHex(32); }

std::string TokenHash(std::string_view token) {
  EnsureSodium();
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  return ToHex(digest, sizeof digest);
}

bool LooksLikeToken(std::string_view token) {
  if (!token.starts_with(kTokenPrefix) || token.size() != kTokenPrefix.size() + 64) return false;
  for (char c : token.substr(kTokenPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

MachineKeyPair NewMachineKeyPair() {
  EnsureSodium();
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  MachineKeyPair pair;
  pair.secret_key.resize(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(public_key, reinterpret_cast<unsigned char*>(pair.secret_key.data()));
  pair.public_key_hex = ToHex(public_key, sizeof public_key);
  return pair;
}

std::string SignHex(std::string_view secret_key, std::string_view message) {
  EnsureSodium();
  OCX_ASSERT(secret_key.size() == crypto_sign_SECRETKEYBYTES);
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), reinterpret_cast<const unsigned char*>(secret_key.data()));
  return ToHex(signature, sizeof signature);
}

bool VerifySignatureHex(std::string_view public_key_hex, std::string_view message,
                        std::string_view signature_hex) {
  EnsureSodium();
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  unsigned char signature[crypto_sign_BYTES];
  if (!FromHex(public_key_hex, public_key, sizeof public_key) ||
      !FromHex(signature_hex, signature, sizeof signature)) {
    return false;
  }
  return crypto_sign_verify_detached(signature,
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), public_key) == 0;
}

std::string AgentAuthMessage(core::MachineId machine, std::string_view nonce_hex) {
  return "ocx-agent-auth-v1\n" + std::to_string(machine) + "\n" + std::string(nonce_hex);
}

std::string UsageMessage(core::MachineId machine, const core::ReportUsage& usage) {
  return "ocx-usage-v1\n" + std::to_string(machine) + "\n" + std::to_string(usage.lease) + "\n" +
         std::to_string(usage.wall_seconds) + "\n" + std::to_string(usage.cpu_seconds) + "\n" +
         std::to_string(usage.peak_memory_mib) + "\n" + std::to_string(usage.gpu_seconds);
}

void IdentityRegistry::Load(const core::Exchange& exchange) {
  std::unique_lock lock(mu_);
  for (const auto& [id, account] : exchange.accounts()) {
    accounts_[id] = AccountIdentity{id, account.role};
    if (!account.token_hash.empty()) {
      token_hashes_[account.token_hash] = id;
      account_token_[id] = account.token_hash;
    }
    if (account.role == core::Role::kOperator) any_operator_ = true;
  }
  for (const auto& [id, machine] : exchange.machines()) {
    machines_[id] = MachineIdentity{id, machine.owner, machine.spec.public_key};
  }
}

void IdentityRegistry::Apply(const core::CoreEvent& event) {
  if (const auto* created = std::get_if<core::AccountCreated>(&event)) {
    std::unique_lock lock(mu_);
    accounts_[created->account] = AccountIdentity{created->account, created->role};
    if (!created->token_hash.empty()) {
      token_hashes_[created->token_hash] = created->account;
      account_token_[created->account] = created->token_hash;
    }
    if (created->role == core::Role::kOperator) any_operator_ = true;
  } else if (const auto* rotated = std::get_if<core::TokenRotated>(&event)) {
    std::unique_lock lock(mu_);
    std::string& current = account_token_[rotated->account];
    if (!current.empty()) token_hashes_.erase(current);
    current = rotated->token_hash;
    token_hashes_[current] = rotated->account;
  } else if (const auto* machine = std::get_if<core::MachineRegistered>(&event)) {
    std::unique_lock lock(mu_);
    machines_[machine->machine] =
        MachineIdentity{machine->machine, machine->owner, machine->public_key};
  }
}

std::optional<AccountIdentity> IdentityRegistry::FindByToken(std::string_view token) const {
  if (!LooksLikeToken(token)) return std::nullopt;
  return FindByTokenHash(TokenHash(token));
}

std::optional<AccountIdentity> IdentityRegistry::FindByTokenHash(const std::string& hash) const {
  std::shared_lock lock(mu_);
  const auto it = token_hashes_.find(hash);
  if (it == token_hashes_.end()) return std::nullopt;
  return accounts_.at(it->second);
}

std::optional<AccountIdentity> IdentityRegistry::FindAccount(core::AccountId id) const {
  std::shared_lock lock(mu_);
  const auto it = accounts_.find(id);
  if (it == accounts_.end()) return std::nullopt;
  return it->second;
}

std::optional<MachineIdentity> IdentityRegistry::FindMachine(core::MachineId id) const {
  std::shared_lock lock(mu_);
  const auto it = machines_.find(id);
  if (it == machines_.end()) return std::nullopt;
  return it->second;
}

bool IdentityRegistry::AnyOperator() const {
  std::shared_lock lock(mu_);
  return any_operator_;
}

}  // namespace ocx::api
