#include "src/api/authorization.h"

namespace ocx::api {

bool IsOperator(const Caller& caller) {
  return caller && caller->role == core::Role::kOperator;
}

bool MayReadAccount(const Caller& caller, core::AccountId account) {
  return caller && (caller->id == account || IsOperator(caller));
}

bool MayListAccounts(const Caller& caller) { return IsOperator(caller); }

bool MayReadLease(const Caller& caller, core::AccountId buyer, core::AccountId seller) {
  return caller && (caller->id == buyer || caller->id == seller || IsOperator(caller));
}

bool MayReadJob(const Caller& caller, core::AccountId owner) {
  return caller && (caller->id == owner || IsOperator(caller));
}

bool MayReadOrder(const Caller& caller, core::AccountId owner) {
  return caller && caller->id == owner;
}

bool MayReadBlob(const Caller& caller, bool uploaded_by_caller, bool granted) {
  return caller && (uploaded_by_caller || granted || IsOperator(caller));
}

}  // namespace ocx::api
