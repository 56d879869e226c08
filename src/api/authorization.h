// Who may read what: every read-side authorization rule of the API, in one place, so that the
// authorization matrix test (tests/integration/api_auth_test.cc) checks them all. Write-side
// rules live in the core (it refuses with not_authorized) and in each route's Auth
// requirement (api.h). A resource the caller may not read answers as if it did not exist
// (404 unknown_...), so that ids cannot be probed.
// Thread-safe: pure functions.
#pragma once

#include <optional>

#include "src/api/identity_registry.h"
#include "src/core/types.h"

namespace ocx::api {

using Caller = std::optional<AccountIdentity>;

bool IsOperator(const Caller& caller);
// An account's balances, ledger, statement and token: the account itself or an operator.
bool MayReadAccount(const Caller& caller, core::AccountId account);
// The list of all accounts and the whole ledger's totals: operators.
bool MayListAccounts(const Caller& caller);
// A lease, its usage and its task: its buyer, its seller or an operator.
bool MayReadLease(const Caller& caller, core::AccountId buyer, core::AccountId seller);
// A job and its tasks: its owner or an operator.
bool MayReadJob(const Caller& caller, core::AccountId owner);
// An order: its owner only (operators see orders through the ledger and the store).
bool MayReadOrder(const Caller& caller, core::AccountId owner);
// A blob: an account that uploaded it, one to which a task it may see (as a lease's buyer or
// seller) grants it (`granted`: the store says so), or an operator.
bool MayReadBlob(const Caller& caller, bool uploaded_by_caller, bool granted);
// Machines, offers, markets, books and trades are public.

}  // namespace ocx::api
