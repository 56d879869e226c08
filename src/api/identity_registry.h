// IdentityRegistry: who holds which API token and machine key, as the exchange knows them
// from durable events. Tokens and keys themselves are src/protocol/identity.h.
#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "src/core/events.h"
#include "src/core/types.h"
#include "src/protocol/identity.h"

namespace ocx::core {
class Exchange;
}

namespace ocx::api {

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
