#include "src/api/identity_registry.h"

#include <mutex>

#include "src/core/exchange.h"

namespace ocx::api {

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
  if (!protocol::LooksLikeToken(token)) return std::nullopt;
  return FindByTokenHash(protocol::TokenHash(token));
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
