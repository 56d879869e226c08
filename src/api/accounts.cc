// Accounts: sign-up, balances, tokens, deposits and withdrawals, ledger and statements, and
// the whole ledger's check (docs/api.md, "Accounts").
#include <map>

#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/base/files.h"
#include "src/core/exchange.h"

namespace ocx::api {
namespace {

constexpr size_t kAccountNameBytesMax = 64;
constexpr size_t kOperatorTokenFileBytesMax = 4096;

Json AccountJson(const store::AccountRow& a) {
  return Json{{"id", a.id},
              {"name", a.name},
              {"role", core::RoleName(a.role)},
              {"created_time", a.created_time}};
}

Json BalanceRefJson(const core::BalanceRef& ref) {
  return Json{{"account", ref.owner}, {"balance", core::BalanceKindName(ref.kind)}};
}

Json LedgerJson(const store::LedgerEntryRow& e) {
  return Json{{"entry", e.entry},
              {"sequence", e.sequence},
              {"time", e.time},
              {"from", BalanceRefJson(e.from)},
              {"to", BalanceRefJson(e.to)},
              {"amount", Money(e.amount)},
              {"kind", core::TransferKindName(e.kind)},
              {"reference", e.reference}};
}

// The account's id from the path, checked against who asks.
bool AccountFromPath(const CallPtr& call, uint64_t* id) {
  HttpResponse error;
  if (!AccountIdParam(call->params[0], id, &error)) return call->Respond(std::move(error)), false;
  if (!MayReadAccount(call->caller, static_cast<core::AccountId>(*id))) {
    call->Respond(Refuse(Refusal::kForbidden, "This is not your account."));
    return false;
  }
  return true;
}

void RespondAccount(Api& api, const CallPtr& call, uint64_t id) {
  store::Store* store = api.deps().store;
  api.ReadStore(call, [store, id] {
    const auto rows = store->ListAccounts(static_cast<core::AccountId>(id - 1), 1);
    if (!rows.ok()) return StoreError(rows.status());
    if (rows->empty() || rows->front().id != id) return Refuse(Refusal::kUnknownAccount);
    const auto balances = store->Balances(static_cast<core::AccountId>(id));
    if (!balances.ok()) return StoreError(balances.status());
    Json b{{"available", "0"}, {"held", "0"}, {"escrow", "0"}, {"earnings", "0"}};
    for (const store::BalanceRow& row : *balances) {
      b[std::string(core::BalanceKindName(row.kind))] = Money(row.amount);
    }
    Json account = AccountJson(rows->front());
    account["balances"] = b;
    return JsonResponse(200, Json{{"account", account}});
  });
}

void CreateAccount(Api& api, const CallPtr& call) {
  HttpResponse error;
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  Fields f(*body);
  const std::string name = f.Str("name", true, kAccountNameBytesMax);
  const std::string role_text = f.Str("role", false);
  if (!f.Finish()) return call->Respond(f.Error());
  core::Role role = core::Role::kConsumer;
  if (role_text == "provider") {
    role = core::Role::kProvider;
  } else if (role_text == "operator") {
    role = core::Role::kOperator;
  } else if (!role_text.empty() && role_text != "consumer") {
    return call->Respond(
        Refuse(Refusal::kInvalidField, "The field 'role' must be consumer, provider or operator."));
  }
  const bool by_operator = IsOperator(call->caller);
  if (role == core::Role::kOperator && !by_operator) {
    return call->Respond(
        Refuse(Refusal::kForbidden, "Only an operator may create an operator account."));
  }
  if (!by_operator && !api.deps().config.allow_signup) {
    return call->Respond(Refuse(Refusal::kSignupDisabled));
  }
  const std::string token = protocol::NewApiToken();
  core::CreateAccount command{by_operator ? call->caller->id : 0, name, role,
                              protocol::TokenHash(token)};
  api.Submit(call, std::move(command), [token, name, role](const core::Acked& acked) {
    if (!acked.output.result.accepted) return Refuse(acked.output.result);
    return JsonResponse(
        201,
        Json{
            {"account",
             {{"id", acked.output.result.account}, {"name", name}, {"role", core::RoleName(role)}}},
            {"token", token},
            {"sequence", acked.sequence}});
  });
}

void ListAccounts(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  api.ReadStore(call, [store, after, limit] {
    const auto rows = store->ListAccounts(
        static_cast<core::AccountId>(std::min<uint64_t>(after, UINT32_MAX)), limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(
        200, PageJson(*rows, limit, AccountJson, [](const auto& row) { return row.id; }));
  });
}

void GetAccount(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  if (!AccountFromPath(call, &id)) return;
  RespondAccount(api, call, id);
}

void GetMe(Api& api, const CallPtr& call) { RespondAccount(api, call, call->caller->id); }

void RotateToken(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  if (!AccountFromPath(call, &id)) return;
  // Like account creation: the token is made here, shown once in the answer, and only its
  // hash is journaled. The answer comes once the command is durable, and by then the
  // registry (fed before the answer) no longer knows the old token.
  const std::string token = protocol::NewApiToken();
  // The operator whose token <data_dir>/operator.token holds gets the new one written there
  // too: were the answer lost, the only operator would otherwise be locked out for good.
  std::string token_file = api.deps().operator_token_path;
  if (!token_file.empty()) {
    const auto held = base::ReadFileBounded(token_file, kOperatorTokenFileBytesMax);
    std::optional<AccountIdentity> holder;
    if (held.ok()) {
      std::string_view text = *held;
      if (const size_t end = text.find('\n'); end != std::string_view::npos) {
        text = text.substr(0, end);
      }
      holder = api.deps().identities->FindByToken(text);
    }
    if (!holder || holder->id != id) token_file.clear();
  }
  api.Submit(call,
             core::RotateToken{call->caller->id, static_cast<core::AccountId>(id),
                               protocol::TokenHash(token)},
             [token, id, token_file](const core::Acked& acked) {
               if (!acked.output.result.accepted) return Refuse(acked.output.result);
               Json body{{"account", id}, {"token", token}, {"sequence", acked.sequence}};
               if (!token_file.empty()) {
                 const absl::Status written =
                     base::WriteFileAtomically(token_file, token + "\n", 0600);
                 body["token_file"] = written.ok() ? "written" : "not_written";
               }
               return JsonResponse(200, body);
             });
}

void LedgerSummary(Api& api, const CallPtr& call) {
  // Read from the core itself (one consistent state): per kind over every account, the
  // system balances, and whether the whole ledger sums to zero. Operators only, and rare:
  // the one read that holds the sequencer for its duration.
  Json kinds = Json::object();
  core::Micros sum = 0, deposits = 0, withdrawals = 0;
  uint64_t sequence = 0;
  size_t accounts = 0;
  api.deps().gateway->Read([&](const core::Exchange& x) {
    std::map<core::BalanceKind, core::Micros> totals;
    for (const auto& [ref, amount] : x.balances()) {
      totals[ref.kind] += amount;
      sum += amount;
    }
    for (const auto& [kind, amount] : totals) {
      kinds[std::string(core::BalanceKindName(kind))] = Money(amount);
    }
    deposits = x.deposits();
    withdrawals = x.withdrawals();
    sequence = x.last_sequence();
    accounts = x.accounts().size();
  });
  call->Respond(JsonResponse(200, Json{{"totals", kinds},
                                       {"sum", Money(sum)},
                                       {"balanced", sum == 0},
                                       {"deposits", Money(deposits)},
                                       {"withdrawals", Money(withdrawals)},
                                       {"accounts", accounts},
                                       {"sequence", sequence}}));
}

// The answer to a deposit or a withdrawal once the core decided.
auto MoneyMoved(uint64_t account, int64_t amount) {
  return [account, amount](const core::Acked& acked) {
    if (!acked.output.result.accepted) return Refuse(acked.output.result);
    return JsonResponse(
        201, Json{{"account", account}, {"amount", Money(amount)}, {"sequence", acked.sequence}});
  };
}

void DepositTo(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  Fields f(*body);
  const int64_t amount = f.Money("amount", true);
  if (!f.Finish()) return call->Respond(f.Error());
  api.Submit(call, core::Deposit{call->caller->id, static_cast<core::AccountId>(id), amount},
             MoneyMoved(id, amount));
}

void WithdrawFrom(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!AccountIdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  Fields f(*body);
  const int64_t amount = f.Money("amount", true);
  const std::string from = f.Str("from", false);
  if (!f.Finish()) return call->Respond(f.Error());
  core::BalanceKind kind = core::BalanceKind::kAvailable;
  if (from == "earnings") {
    kind = core::BalanceKind::kEarnings;
  } else if (!from.empty() && from != "available") {
    return call->Respond(
        Refuse(Refusal::kInvalidField, "The field 'from' must be available or earnings."));
  }
  api.Submit(call, core::Withdraw{call->caller->id, static_cast<core::AccountId>(id), amount, kind},
             MoneyMoved(id, amount));
}

void AccountLedger(Api& api, const CallPtr& call) {
  uint64_t id = 0, after = 0;
  size_t limit = 0;
  if (!AccountFromPath(call, &id)) return;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  api.ReadStore(call, [store, id, after, limit] {
    const auto rows = store->ListLedgerEntries(static_cast<core::AccountId>(id), after, limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(
        200, PageJson(*rows, limit, LedgerJson, [](const auto& row) { return row.entry; }));
  });
}

void AccountStatement(Api& api, const CallPtr& call) {
  uint64_t id = 0, from = 0, to = static_cast<uint64_t>(INT64_MAX);
  if (!AccountFromPath(call, &id)) return;
  const auto& query = call->request.query;
  if (const auto it = query.find("from"); it != query.end() && !ParseUint(it->second, &from)) {
    return call->Respond(Refuse(Refusal::kBadRequest, "'from' is microseconds since the epoch."));
  }
  if (const auto it = query.find("to"); it != query.end() && !ParseUint(it->second, &to)) {
    return call->Respond(Refuse(Refusal::kBadRequest, "'to' is microseconds since the epoch."));
  }
  if (from > to || to > static_cast<uint64_t>(INT64_MAX)) {
    return call->Respond(
        Refuse(Refusal::kBadRequest, "'from' must not be after 'to', and both at most 2^63 - 1."));
  }
  store::Store* store = api.deps().store;
  api.ReadStore(call, [store, id, from, to] {
    const auto statement = store->Statement(static_cast<core::AccountId>(id),
                                            static_cast<int64_t>(from), static_cast<int64_t>(to));
    if (!statement.ok()) return StoreError(statement.status());
    Json lines = Json::array();
    for (const store::StatementLine& l : statement->lines) {
      lines.push_back({{"balance", core::BalanceKindName(l.kind)},
                       {"opening", Money(l.opening)},
                       {"closing", Money(l.closing)}});
    }
    Json entries = Json::array();
    for (const auto& e : statement->entries) entries.push_back(LedgerJson(e));
    return JsonResponse(200, Json{{"account", id},
                                  {"from", statement->from_time},
                                  {"to", statement->to_time},
                                  {"balances", lines},
                                  {"entries", entries},
                                  {"truncated", statement->truncated}});
  });
}

}  // namespace

void AddAccountRoutes(std::vector<Route>* routes) {
  routes->insert(
      routes->end(),
      {
          {"POST", "/v1/accounts", "Create an account; returns its API token once", Auth::kNone,
           201, Body::kJson, false, &CreateAccount},
          {"GET", "/v1/accounts", "List accounts", Auth::kOperator, 200, Body::kNone, false,
           &ListAccounts},
          {"GET", "/v1/accounts/{id}", "An account with its balances", Auth::kAccount, 200,
           Body::kNone, false, &GetAccount},
          {"GET", "/v1/me", "The caller's own account with its balances", Auth::kAccount, 200,
           Body::kNone, false, &GetMe},
          {"POST", "/v1/accounts/{id}/token",
           "Replace the account's API token; returns the new one once, the old one stops working",
           Auth::kAccount, 200, Body::kNone, false, &RotateToken},
          {"POST", "/v1/accounts/{id}/deposits", "Deposit credits", Auth::kOperator, 201,
           Body::kJson, false, &DepositTo},
          {"POST", "/v1/accounts/{id}/withdrawals", "Withdraw credits", Auth::kOperator, 201,
           Body::kJson, false, &WithdrawFrom},
          {"GET", "/v1/accounts/{id}/ledger", "Ledger entries of an account", Auth::kAccount, 200,
           Body::kNone, false, &AccountLedger},
          {"GET", "/v1/accounts/{id}/statement", "Opening/closing balances and entries",
           Auth::kAccount, 200, Body::kNone, false, &AccountStatement},
          {"GET", "/v1/ledger", "The whole ledger's totals per balance kind and its check",
           Auth::kOperator, 200, Body::kNone, false, &LedgerSummary},
      });
}

}  // namespace ocx::api
