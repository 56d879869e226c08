#include "src/core/exchange.h"

#include "src/core/exchange_internal.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/query/query.h"

namespace ocx::core {

Refusal RefusalOf(engine::RejectReason reason) {
  switch (reason) {
    case engine::RejectReason::kNone: break;
    case engine::RejectReason::kInvalidPrice: return Refusal::kInvalidPrice;
    case engine::RejectReason::kOffTick: return Refusal::kOffTick;
    case engine::RejectReason::kInvalidQuantity: return Refusal::kInvalidQuantity;
    case engine::RejectReason::kInvalidLot: return Refusal::kInvalidLot;
    case engine::RejectReason::kLotMismatch: return Refusal::kLotMismatch;
    case engine::RejectReason::kMissingExpiry: return Refusal::kMissingExpiry;
    case engine::RejectReason::kExpiryInPast: return Refusal::kExpiryInPast;
    case engine::RejectReason::kDuplicateId: return Refusal::kDuplicateId;
    case engine::RejectReason::kUnknownOrder: return Refusal::kUnknownOrder;
    case engine::RejectReason::kFokUnfillable: return Refusal::kFokUnfillable;
    case engine::RejectReason::kBookFull: return Refusal::kBookFull;
  }
  OCX_ASSERT_MSG(false, "an engine rejection without a reason");
  return Refusal::kInternalError;
}

using namespace internal;  // NOLINT: this file is the state machine the helpers serve.

// Evaluates buy constraints for the books: a pure function of the query text, the sell's
// machine attributes and the sell's price, so matching stays deterministic.
class Exchange::ConstraintOracle final : public engine::EligibilityOracle {
 public:
  explicit ConstraintOracle(const Exchange& exchange) : exchange_(exchange) {}

  bool CanTrade(const engine::OrderView& buy, const engine::OrderView& sell) const override {
    const auto query = queries_.find(buy.constraint);
    OCX_ASSERT_MSG(query != queries_.end(), "a buy with an unknown constraint handle");
    const auto machine = exchange_.machines_.find(sell.machine);
    if (machine == exchange_.machines_.end()) return false;
    const query::Value price = query::Value::Number(sell.price);
    const query::Value reputation = query::Value::Number(ReputationMicros(machine->second));
    const auto& attributes = machine->second.spec.attributes;
    return query->second.Matches([&](std::string_view name) -> const query::Value* {
      if (name == "price") return &price;
      if (name == "reputation") return &reputation;
      const auto it = attributes.find(std::string(name));
      return it == attributes.end() ? nullptr : &it->second;
    });
  }

  uint32_t Add(query::Query query) {
    while (next_ == 0 || queries_.contains(next_)) ++next_;
    queries_.emplace(next_, std::move(query));
    return next_++;
  }
  void Remove(uint32_t handle) { queries_.erase(handle); }

 private:
  const Exchange& exchange_;
  std::unordered_map<uint32_t, query::Query> queries_;
  uint32_t next_ = 1;
};

std::string Exchange::CheckConstraints(const std::string& text) const {
  if (text.empty()) return {};
  auto parsed = query::Query::Parse(text);
  if (const auto* error = std::get_if<query::SyntaxError>(&parsed)) {
    return "The constraints are not a valid query: column " + std::to_string(error->column) +
           ": " + error->message;
  }
  return {};
}

uint32_t Exchange::CompileConstraint(const std::string& text) {
  auto parsed = query::Query::Parse(text);
  OCX_ASSERT_MSG(std::holds_alternative<query::Query>(parsed), "compiling unchecked constraints");
  return oracle_->Add(std::move(std::get<query::Query>(parsed)));
}

void Exchange::ReleaseConstraint(uint32_t handle) {
  if (handle != 0) oracle_->Remove(handle);
}


ExchangeConfig ExchangeConfig::Default() {
  ExchangeConfig config;
  MarketConfig cpu;
  cpu.name = "cpu";
  config.markets.push_back(cpu);
  MarketConfig h100;
  h100.name = "gpu.h100";
  h100.slot = SlotSpec{8, 64 * 1024, 100, 1, "h100"};
  config.markets.push_back(h100);
  return config;
}

Exchange::Exchange(ExchangeConfig config)
    : config_(std::move(config)), oracle_(std::make_unique<ConstraintOracle>(*this)) {
  for (const MarketConfig& market : config_.markets) {
    engine::BookConfig book;
    book.tick_micros = market.tick_micros;
    book.expected_orders = 1024;
    book.expected_levels = 256;
    books_.push_back(std::make_unique<engine::OrderBook>(book));
    books_.back()->SetEligibilityOracle(oracle_.get());
  }
  engine_events_.reserve(256);
}

PriceMicros Exchange::BestAsk(const Machine& machine, size_t market) const {
  PriceMicros best = 0;
  for (const OrderId id : machine.sells) {
    const OrderState& order = orders_.at(id);
    if (order.market != market || order.remaining <= 0) continue;
    engine::OrderView view;
    if (!books_[market]->Find(id, &view)) continue;
    if (best == 0 || view.price < best) best = view.price;
  }
  return best;
}

Exchange::~Exchange() = default;

int64_t ReputationMicros(const Machine& machine) {
  const int64_t kept = machine.leases_ended - machine.leases_failed;
  return (kept + 1) * 1'000'000 / (machine.leases_ended + 2);
}

int Exchange::MarketIndex(const std::string& name) const {
  for (size_t i = 0; i < config_.markets.size(); ++i) {
    if (config_.markets[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

Micros Exchange::Balance(BalanceRef ref) const {
  const auto it = balances_.find(ref);
  return it == balances_.end() ? 0 : it->second;
}

Micros Exchange::HoldFor(PriceMicros price, Quantity quantity, int32_t hours, int32_t fee_bps) {
  const Micros cost = Cost(price, quantity, hours);
  if (cost > kAmountMax) return kAmountMax + 1;
  return cost + FeeOf(cost, fee_bps);
}

const Account* Exchange::FindAccount(AccountId id) const {
  const auto it = accounts_.find(id);
  return it == accounts_.end() ? nullptr : &it->second;
}

void Exchange::Transfer(BalanceRef from, BalanceRef to, Micros amount, TransferKind kind,
                        uint64_t reference, Ctx& ctx) {
  OCX_ASSERT(amount >= 0);
  if (amount == 0) return;
  balances_[from] -= amount;
  balances_[to] += amount;
  ctx.out->events.push_back(LedgerTransfer{next_entry_++, from, to, amount, kind, reference});
}

void Exchange::Reject(Ctx& ctx, Refusal refusal, std::string_view message) {
  OCX_ASSERT(refusal != Refusal::kNone);
  ctx.out->result.accepted = false;
  ctx.out->result.refusal = refusal;
  ctx.out->result.message = message.empty() ? std::string(protocol::Sentence(refusal))
                                            : std::string(message);
}

OrderId Exchange::FindClientOrder(AccountId account, const std::string& client_order_id) const {
  const auto it = client_order_ids_.find({account, client_order_id});
  return it == client_order_ids_.end() ? 0 : static_cast<OrderId>(it->second.id);
}

void Exchange::Remember(bool job, AccountId account, const std::string& key, uint64_t id) {
  auto& ids = job ? client_job_ids_ : client_order_ids_;
  ids[{account, key}] = RememberedId{id, now_};
  remembered_keys_.push_back(RememberedKey{now_, job, account, key});
}

void Exchange::ForgetOldClientIds() {
  while (!remembered_keys_.empty() &&
         now_ - remembered_keys_.front().time >= config_.client_id_retention) {
    RememberedKey entry = std::move(remembered_keys_.front());
    remembered_keys_.pop_front();
    auto& ids = entry.job ? client_job_ids_ : client_order_ids_;
    const auto it = ids.find({entry.account, entry.key});
    // An id used again after it was forgotten has a later entry of its own.
    if (it == ids.end() || it->second.time != entry.time) continue;
    const bool open = entry.job ? jobs_.contains(it->second.id)
                                : orders_.contains(static_cast<OrderId>(it->second.id));
    if (open) {
      // Still taken while its order or job is open: looked at again a retention later.
      it->second.time = now_;
      entry.time = now_;
      remembered_keys_.push_back(std::move(entry));
      continue;
    }
    ids.erase(it);
  }
}

// ---------------------------------------------------------------- apply

void Exchange::Apply(uint64_t sequence, Timestamp time, const CommandBody& command,
                     ApplyOutput* out) {
  OCX_ASSERT_MSG(sequence > last_sequence_, "sequence numbers must increase");
  OCX_ASSERT_MSG(time >= now_, "command time must not go backwards");
  last_sequence_ = sequence;
  now_ = time;
  out->result = CommandResult{};
  Ctx ctx{out, {}};
  ForgetOldClientIds();
  AdvanceTime(ctx);
  std::visit([this, &ctx](const auto& c) { Do(c, ctx); }, command);
}

void Exchange::AdvanceTime(Ctx& ctx) {
  for (size_t m = 0; m < books_.size(); ++m) {
    engine_events_.clear();
    books_[m]->AdvanceTime(now_, &engine_events_);
    if (!engine_events_.empty()) ProcessEngineEvents(m, ctx);
  }
  while (!lease_deadlines_.empty() && lease_deadlines_.begin()->first <= now_) {
    const LeaseId id = lease_deadlines_.begin()->second;
    EndLeaseNow(id, LeaseEndReason::kExpired, ctx);
  }
  while (!heartbeat_deadlines_.empty() && heartbeat_deadlines_.begin()->first <= now_) {
    const MachineId id = heartbeat_deadlines_.begin()->second;
    SetOffline(machines_.at(id), ctx);
  }
  while (!task_deadlines_.empty() && task_deadlines_.begin()->first <= now_) {
    const LeaseId id = task_deadlines_.begin()->second;
    task_deadlines_.erase(task_deadlines_.begin());
    const OpenTask& task = open_tasks_.at(id);
    ctx.out->events.push_back(TaskFinished{id, task.buyer, task.machine, {}});
    open_tasks_.erase(id);
    if (const auto job = job_leases_.find(id); job != job_leases_.end()) {
      const auto [job_id, index] = job->second;
      RetryJobTask(jobs_.at(job_id), index, ctx);
    }
  }
  FinishTouchedOrders(ctx);
}

void Exchange::ScheduleHeartbeatDeadline(Machine& machine, Timestamp heartbeat) {
  if (machine.online) {
    heartbeat_deadlines_.erase({machine.last_heartbeat + config_.heartbeat_timeout, machine.id});
  }
  machine.last_heartbeat = heartbeat;
  heartbeat_deadlines_.insert({heartbeat + config_.heartbeat_timeout, machine.id});
  Touch(machine);
}

void Exchange::Touch(Machine& machine) {
  machine.changed_sequence = last_sequence_;
  if (track_machine_changes_) changed_machines_.push_back(machine.id);
}

std::vector<MachineId> Exchange::TakeChangedMachines() {
  std::vector<MachineId> changed;
  changed.swap(changed_machines_);
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  return changed;
}

void Exchange::SetOffline(Machine& machine, Ctx& ctx) {
  OCX_ASSERT(machine.online);
  heartbeat_deadlines_.erase({machine.last_heartbeat + config_.heartbeat_timeout, machine.id});
  machine.online = false;
  Touch(machine);
  ctx.out->events.push_back(MachineStatusChanged{machine.id, false});
  // Its asks are cancelled; its leases end at the last reported usage (RULEBOOK 4).
  const std::vector<OrderId> sells(machine.sells.begin(), machine.sells.end());
  for (OrderId id : sells) {
    const size_t market = orders_.at(id).market;
    engine_events_.clear();
    books_[market]->Cancel(id, now_, &engine_events_);
    ProcessEngineEvents(market, ctx);
  }
  const std::vector<LeaseId> leases(machine.leases.begin(), machine.leases.end());
  for (LeaseId id : leases) EndLeaseNow(id, LeaseEndReason::kOffline, ctx);
}

// ---------------------------------------------------------------- accounts and money

void Exchange::Do(const CreateAccount& c, Ctx& ctx) {
  if (!ValidName(c.name)) {
    return Reject(ctx, Refusal::kInvalidName,
                  "An account name is 1 to 64 letters, digits, '.', '_' or '-'.");
  }
  if (!c.token_hash.empty() && !IsLowerHex(c.token_hash, kTokenHashHexLength)) {
    return Reject(ctx, Refusal::kInvalidTokenHash, "A token hash is 64 lowercase hex characters.");
  }
  if (account_names_.contains(c.name)) {
    return Reject(ctx, Refusal::kNameTaken, "An account with this name already exists.");
  }
  if (accounts_.size() >= config_.accounts_max) {
    return Reject(ctx, Refusal::kLimitReached, "The exchange holds its maximum number of accounts.");
  }
  if (c.role == Role::kOperator) {
    const bool any_operator = std::any_of(accounts_.begin(), accounts_.end(), [](const auto& a) {
      return a.second.role == Role::kOperator;
    });
    const Account* actor = FindAccount(c.actor);
    if (any_operator && (actor == nullptr || actor->role != Role::kOperator)) {
      return Reject(ctx, Refusal::kNotAuthorized, "Only an operator may create an operator account.");
    }
  }
  const AccountId id = next_account_++;
  accounts_[id] = Account{id, c.name, c.role, 0, c.token_hash};
  account_names_[c.name] = id;
  ctx.out->result.account = id;
  ctx.out->events.push_back(AccountCreated{id, c.name, c.role, c.token_hash});
}

void Exchange::Do(const RotateToken& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr || (actor->id != c.account && actor->role != Role::kOperator)) {
    return Reject(ctx, Refusal::kNotAuthorized,
                  "Only the account itself or an operator may replace its token.");
  }
  const auto it = accounts_.find(c.account);
  if (it == accounts_.end()) return Reject(ctx, Refusal::kUnknownAccount, "No account has this id.");
  if (!IsLowerHex(c.token_hash, kTokenHashHexLength)) {
    return Reject(ctx, Refusal::kInvalidTokenHash, "A token hash is 64 lowercase hex characters.");
  }
  it->second.token_hash = c.token_hash;
  ctx.out->events.push_back(TokenRotated{c.account, c.token_hash});
}

void Exchange::Do(const Deposit& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr || actor->role != Role::kOperator) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only an operator may deposit.");
  }
  if (FindAccount(c.account) == nullptr) {
    return Reject(ctx, Refusal::kUnknownAccount, "No account has this id.");
  }
  if (c.amount <= 0 || c.amount > kAmountMax || deposits_ > kAmountMax * 1000 - c.amount) {
    return Reject(ctx, Refusal::kInvalidAmount, "The amount must be positive and at most 1e9 credits.");
  }
  deposits_ += c.amount;
  Transfer({0, BalanceKind::kExternal}, {c.account, BalanceKind::kAvailable}, c.amount,
           TransferKind::kDeposit, 0, ctx);
}

void Exchange::Do(const Withdraw& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr || actor->role != Role::kOperator) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only an operator may withdraw.");
  }
  if (FindAccount(c.account) == nullptr) {
    return Reject(ctx, Refusal::kUnknownAccount, "No account has this id.");
  }
  if (c.from != BalanceKind::kAvailable && c.from != BalanceKind::kEarnings) {
    return Reject(ctx, Refusal::kInvalidBalance, "Withdrawals come from available or earnings.");
  }
  if (c.amount <= 0 || c.amount > kAmountMax) {
    return Reject(ctx, Refusal::kInvalidAmount, "The amount must be positive and at most 1e9 credits.");
  }
  if (Balance({c.account, c.from}) < c.amount) {
    return Reject(ctx, Refusal::kInsufficientFunds, "The balance does not cover the withdrawal.");
  }
  withdrawals_ += c.amount;
  Transfer({c.account, c.from}, {0, BalanceKind::kExternal}, c.amount, TransferKind::kWithdrawal,
           0, ctx);
}

// ---------------------------------------------------------------- machines

void Exchange::Do(const RegisterMachine& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr || actor->role != Role::kProvider) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only a provider account may register a machine.");
  }
  if (c.spec.name.empty() || c.spec.name.size() > kNameMax) {
    return Reject(ctx, Refusal::kInvalidName, "A machine name is 1 to 64 characters.");
  }
  if (c.spec.attributes.size() > kAttributesMax) {
    return Reject(ctx, Refusal::kInvalidAttributes, "A machine has at most 64 attributes.");
  }
  if (!c.spec.public_key.empty() && !IsLowerHex(c.spec.public_key, kPublicKeyHexLength)) {
    return Reject(ctx, Refusal::kInvalidPublicKey,
                  "A machine public key is an Ed25519 key in 64 lowercase hex characters.");
  }
  if (machines_.size() >= config_.machines_max) {
    return Reject(ctx, Refusal::kLimitReached, "The exchange holds its maximum number of machines.");
  }
  if (actor->machines >= config_.machines_per_account_max) {
    return Reject(ctx, Refusal::kTooManyMachines,
                  "The account has registered its maximum of " +
                      std::to_string(config_.machines_per_account_max) + " machines.");
  }
  Machine machine;
  machine.capacity.assign(books_.size(), 0);
  machine.offered.assign(books_.size(), 0);
  machine.leased.assign(books_.size(), 0);
  for (const auto& [market, slots] : c.spec.capacity) {
    const int index = MarketIndex(market);
    if (index < 0) return Reject(ctx, Refusal::kUnknownMarket, "Capacity names an unknown market.");
    if (slots < 0 || slots > kCapacityMax) {
      return Reject(ctx, Refusal::kInvalidCapacity, "Capacity is 0 to 1,000,000 slots per market.");
    }
    machine.capacity[index] = slots;
  }
  machine.id = next_machine_++;
  machine.owner = c.actor;
  ++accounts_.at(c.actor).machines;
  machine.spec = c.spec;
  machine.online = false;
  ScheduleHeartbeatDeadline(machine, now_);  // Registering counts as a heartbeat.
  machine.online = true;
  Touch(machine);
  ctx.out->result.machine = machine.id;
  ctx.out->events.push_back(MachineRegistered{machine.id, machine.owner, machine.spec.name,
                                                    machine.spec.public_key});
  ctx.out->events.push_back(MachineStatusChanged{machine.id, true});
  machines_.emplace(machine.id, std::move(machine));
}

void Exchange::Do(const Heartbeat& c, Ctx& ctx) {
  const auto it = machines_.find(c.machine);
  if (it == machines_.end()) return Reject(ctx, Refusal::kUnknownMachine, "No machine has this id.");
  Machine& machine = it->second;
  const bool was_online = machine.online;
  ScheduleHeartbeatDeadline(machine, now_);
  machine.online = true;
  if (!was_online) {
    Touch(machine);
    ctx.out->events.push_back(MachineStatusChanged{machine.id, true});
  }
}

// ---------------------------------------------------------------- orders

void Exchange::Do(const PlaceOrder& c, Ctx& ctx) {
  if (c.client_order_id.starts_with(kJobOrderPrefix)) {
    return Reject(ctx, Refusal::kInvalidClientOrderId,
                  "Client order ids starting with \"job:\" are the exchange's own, for jobs.");
  }
  PlaceOrderChecked(c, ctx);
}

void Exchange::PlaceOrderChecked(const PlaceOrder& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr) return Reject(ctx, Refusal::kUnknownAccount, "No account has this id.");
  const int market_index = MarketIndex(c.market);
  if (market_index < 0) return Reject(ctx, Refusal::kUnknownMarket, "No market has this name.");
  const size_t market = static_cast<size_t>(market_index);
  const MarketConfig& config = config_.markets[market];
  if (c.client_order_id.empty() || c.client_order_id.size() > kClientOrderIdMax) {
    return Reject(ctx, Refusal::kInvalidClientOrderId, "A client order id is 1 to 64 characters.");
  }
  const bool remembered = !c.client_order_id.starts_with(kAutoClientOrderIdPrefix);
  if (const auto used = remembered ? client_order_ids_.find({c.actor, c.client_order_id})
                                   : client_order_ids_.end();
      used != client_order_ids_.end()) {
    // The API answers an idempotent retry with the order this id placed.
    ctx.out->result.order = static_cast<OrderId>(used->second.id);
    return Reject(ctx, Refusal::kDuplicateClientOrderId,
                  "This account already used this client order id.");
  }
  if (actor->open_orders >= config_.open_orders_per_account_max) {
    return Reject(ctx, Refusal::kTooManyOrders, "The account has its maximum number of open orders.");
  }
  engine::NewOrder order;
  order.id = next_order_;
  order.account = c.actor;
  order.side = c.side;
  order.type = c.type;
  order.tif = c.tif;
  order.price = c.price;
  order.quantity = c.quantity;
  order.lot = c.lot;
  order.expiry = c.expiry;
  if (!c.constraints.empty()) {
    if (c.side != Side::kBuy) {
      return Reject(ctx, Refusal::kInvalidConstraints, "Only a buy order has constraints.");
    }
    if (const std::string error = CheckConstraints(c.constraints); !error.empty()) {
      return Reject(ctx, Refusal::kInvalidConstraints, error);
    }
  }

  OrderState state;
  state.id = order.id;
  state.account = c.actor;
  state.market = market;
  state.side = c.side;
  state.client_order_id = c.client_order_id;
  state.lot = c.lot;
  if (c.side == Side::kBuy) {
    if (c.max_hours < 1 || c.max_hours > config_.max_hours_max) {
      return Reject(ctx, Refusal::kInvalidMaxHours, "max_hours must be from 1 to 744.");
    }
    if (c.machine != 0) return Reject(ctx, Refusal::kInvalidMachine, "A buy names no machine.");
    // Escrow (RULEBOOK 3): price * qty * max_hours plus the taker fee; a market buy at the
    // worst price it could reach.
    state.hold_price = c.type == engine::OrderType::kMarket
                           ? books_[market]->WorstPrice(Side::kSell)
                           : c.price;
    state.max_hours = c.max_hours;
    // Only a well-formed order is priced: anything else is rejected by the engine below
    // with its precise reason (off_tick, invalid_quantity, ...), not as unfunded.
    if (c.quantity > 0 && c.quantity <= 1'000'000 && state.hold_price > 0 &&
        state.hold_price % config.tick_micros == 0) {
      state.hold = HoldFor(state.hold_price, c.quantity, c.max_hours, config.taker_fee_bps);
      if (state.hold > kAmountMax) {
        return Reject(ctx, Refusal::kOrderTooLarge, "The order's value exceeds 1e9 credits.");
      }
    }
    if (Balance({c.actor, BalanceKind::kAvailable}) < state.hold) {
      return Reject(ctx, Refusal::kInsufficientFunds,
                    "The available balance does not cover price * quantity * max_hours plus "
                    "the taker fee.");
    }
  } else {
    const auto it = machines_.find(c.machine);
    if (it == machines_.end()) return Reject(ctx, Refusal::kUnknownMachine, "No machine has this id.");
    const Machine& machine = it->second;
    if (machine.owner != c.actor) {
      return Reject(ctx, Refusal::kNotAuthorized, "Only the machine's owner may sell its capacity.");
    }
    if (!machine.online) return Reject(ctx, Refusal::kMachineOffline, "The machine is offline.");
    if (c.quantity > 0 &&
        machine.offered[market] + machine.leased[market] + c.quantity > machine.capacity[market]) {
      return Reject(ctx, Refusal::kInsufficientCapacity,
                    "The machine has fewer free slots in this market than the order offers.");
    }
    order.machine = c.machine;
    state.machine = c.machine;
  }

  // The engine's own checks first, so that a rejected order moves no money. The order id is
  // used up either way: every id the exchange prints names one attempt.
  ++next_order_;
  // The constraints are compiled before the precheck: a fok buy's "can it fill completely"
  // counts only the asks of machines its constraints accept, as the engine will.
  if (!c.constraints.empty()) {
    state.constraints = c.constraints;
    state.constraint_handle = CompileConstraint(c.constraints);
    order.constraint = state.constraint_handle;
  }
  const engine::RejectReason reason = books_[market]->PrecheckNew(order, now_);
  if (reason != engine::RejectReason::kNone) {
    ReleaseConstraint(state.constraint_handle);
    engine::Event rejected;
    rejected.type = EventType::kRejected;
    rejected.command = engine::CommandKind::kNew;
    rejected.reject = reason;
    rejected.side = order.side;
    rejected.id = order.id;
    rejected.account = order.account;
    rejected.price = order.type == engine::OrderType::kLimit ? order.price : 0;
    rejected.quantity = order.quantity;
    ctx.out->events.push_back(OrderEvent{config.name, rejected});
    return Reject(ctx, RefusalOf(reason), engine::ReasonMessage(reason));
  }
  // Hold first: trades in the engine call below draw on it.
  orders_[order.id] = state;
  Transfer({c.actor, BalanceKind::kAvailable}, {c.actor, BalanceKind::kHeld}, state.hold,
           TransferKind::kHold, order.id, ctx);
  engine_events_.clear();
  books_[market]->Submit(order, now_, &engine_events_);
  OCX_ASSERT_MSG(engine_events_.empty() || engine_events_.front().type != EventType::kRejected,
                 "the engine rejected an order its precheck accepted");
  if (remembered) Remember(false, c.actor, c.client_order_id, static_cast<uint64_t>(order.id));
  ++accounts_[c.actor].open_orders;
  if (c.side == Side::kSell) machines_.at(c.machine).sells.insert(order.id);
  ctx.out->result.order = order.id;
  ProcessEngineEvents(market, ctx);
  FinishTouchedOrders(ctx);
}

void Exchange::Do(const CancelOrder& c, Ctx& ctx) {
  const auto it = orders_.find(c.order);
  const Account* actor = FindAccount(c.actor);
  if (it == orders_.end()) {
    return Reject(ctx, Refusal::kUnknownOrder, engine::ReasonMessage(engine::RejectReason::kUnknownOrder));
  }
  if (actor == nullptr || (it->second.account != c.actor && actor->role != Role::kOperator)) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only the order's owner or an operator may cancel it.");
  }
  if (const auto job = job_orders_.find(c.order); job != job_orders_.end()) {
    return Reject(ctx, Refusal::kJobOrder, "This order belongs to job " +
                                        std::to_string(job->second.first) + ": cancel the job.");
  }
  const size_t market = it->second.market;
  engine_events_.clear();
  books_[market]->Cancel(c.order, now_, &engine_events_);
  ctx.out->result.order = c.order;
  ProcessEngineEvents(market, ctx);
  FinishTouchedOrders(ctx);
}

void Exchange::Do(const ReplaceOrder& c, Ctx& ctx) {
  const auto it = orders_.find(c.order);
  if (it == orders_.end()) {
    return Reject(ctx, Refusal::kUnknownOrder, engine::ReasonMessage(engine::RejectReason::kUnknownOrder));
  }
  OrderState& state = it->second;
  if (state.account != c.actor) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only the order's owner may replace it.");
  }
  if (const auto job = job_orders_.find(c.order); job != job_orders_.end()) {
    return Reject(ctx, Refusal::kJobOrder, "This order belongs to job " +
                                        std::to_string(job->second.first) +
                                        ": the exchange manages it.");
  }
  const size_t market = state.market;
  const MarketConfig& config = config_.markets[market];
  const engine::ReplaceRequest request{c.order, c.price, c.quantity};
  if (const engine::RejectReason reason = books_[market]->PrecheckReplace(request);
      reason != engine::RejectReason::kNone) {
    engine::Event rejected;
    rejected.type = EventType::kRejected;
    rejected.command = engine::CommandKind::kReplace;
    rejected.reject = reason;
    rejected.side = state.side;
    rejected.id = c.order;
    rejected.account = state.account;
    ctx.out->events.push_back(OrderEvent{config.name, rejected});
    return Reject(ctx, RefusalOf(reason), engine::ReasonMessage(reason));
  }
  engine::OrderView view;
  OCX_ASSERT(books_[market]->Find(c.order, &view));
  const Quantity new_quantity = c.quantity.value_or(view.remaining);
  const PriceMicros new_price = c.price.value_or(view.price);
  const Micros old_hold = state.hold;
  Micros new_hold = old_hold;
  if (state.side == Side::kBuy && new_quantity > 0 && new_quantity <= 1'000'000 &&
      new_price > 0 && new_price % config.tick_micros == 0) {
    new_hold = HoldFor(new_price, new_quantity, state.max_hours, config.taker_fee_bps);
    if (new_hold > kAmountMax) {
      return Reject(ctx, Refusal::kOrderTooLarge, "The order's value exceeds 1e9 credits.");
    }
    if (new_hold - old_hold > Balance({c.actor, BalanceKind::kAvailable})) {
      return Reject(ctx, Refusal::kInsufficientFunds,
                    "The available balance does not cover the replaced order's escrow.");
    }
  }
  if (state.side == Side::kSell && new_quantity > view.remaining) {
    const Machine& machine = machines_.at(state.machine);
    if (machine.offered[market] + machine.leased[market] + new_quantity - view.remaining >
        machine.capacity[market]) {
      return Reject(ctx, Refusal::kInsufficientCapacity,
                    "The machine has fewer free slots in this market than the order offers.");
    }
  }
  // Adjust the hold before the engine runs: a replace that loses priority may trade at once.
  if (new_hold > old_hold) {
    Transfer({c.actor, BalanceKind::kAvailable}, {c.actor, BalanceKind::kHeld}, new_hold - old_hold,
             TransferKind::kHold, c.order, ctx);
  } else if (new_hold < old_hold) {
    Transfer({c.actor, BalanceKind::kHeld}, {c.actor, BalanceKind::kAvailable}, old_hold - new_hold,
             TransferKind::kRelease, c.order, ctx);
  }
  state.hold = new_hold;
  if (state.side == Side::kBuy) state.hold_price = new_price;
  engine_events_.clear();
  books_[market]->Replace(request, now_, &engine_events_);
  OCX_ASSERT_MSG(engine_events_.empty() || engine_events_.front().type != EventType::kRejected,
                 "the engine rejected a replace its precheck accepted");
  ctx.out->result.order = c.order;
  ProcessEngineEvents(market, ctx);
  FinishTouchedOrders(ctx);
}

void Exchange::ProcessEngineEvents(size_t market, Ctx& ctx) {
  const MarketConfig& config = config_.markets[market];
  for (const engine::Event& e : engine_events_) {
    ctx.out->events.push_back(OrderEvent{config.name, e});
    if (e.type != EventType::kRejected) {
      // A sell's machine changes its asks (for a trade, the maker may be the sell).
      for (const OrderId id : {e.id, e.maker_id}) {
        const auto order = orders_.find(id);
        if (order != orders_.end() && order->second.side == Side::kSell) {
          Touch(machines_.at(order->second.machine));
        }
      }
    }
    switch (e.type) {
      case EventType::kAccepted: {
        OrderState& state = orders_.at(e.id);
        state.remaining = e.quantity;
        if (state.side == Side::kSell) machines_.at(state.machine).offered[market] += e.quantity;
        ctx.touched.push_back(e.id);
        break;
      }
      case EventType::kTrade:
        StartLease(market, e, ctx);
        ctx.touched.push_back(e.id);
        ctx.touched.push_back(e.maker_id);
        break;
      case EventType::kCancelled:
      case EventType::kExpired: {
        OrderState& state = orders_.at(e.id);
        state.remaining -= e.quantity;
        OCX_ASSERT(state.remaining == 0);
        if (state.side == Side::kSell) machines_.at(state.machine).offered[market] -= e.quantity;
        ctx.touched.push_back(e.id);
        break;
      }
      case EventType::kReplaced: {
        OrderState& state = orders_.at(e.id);
        if (state.side == Side::kSell) {
          machines_.at(state.machine).offered[market] += e.quantity - state.remaining;
        }
        state.remaining = e.quantity;
        ctx.touched.push_back(e.id);
        break;
      }
      case EventType::kRejected:
        break;  // Handled by the command that got it.
    }
  }
  engine_events_.clear();
}

void Exchange::FinishTouchedOrders(Ctx& ctx) {
  for (OrderId id : ctx.touched) {
    const auto it = orders_.find(id);
    if (it == orders_.end()) continue;
    const OrderState& state = it->second;
    if (books_[state.market]->Contains(id)) continue;
    OCX_ASSERT(state.remaining == 0);
    // Rounding left over from partial fills, or a cancelled remainder: back to available.
    Transfer({state.account, BalanceKind::kHeld}, {state.account, BalanceKind::kAvailable},
             state.hold, TransferKind::kRelease, id, ctx);
    --accounts_.at(state.account).open_orders;
    if (state.side == Side::kSell) machines_.at(state.machine).sells.erase(id);
    ReleaseConstraint(state.constraint_handle);
    orders_.erase(it);
    // A job's order leaves the book filled (StartLease took it out of job_orders_) or
    // cancelled by something other than the job (self-trade prevention): its task ends.
    if (const auto job = job_orders_.find(id); job != job_orders_.end()) {
      const auto [job_id, index] = job->second;
      job_orders_.erase(job);
      SetJobTask(jobs_.at(job_id), index, JobTaskState::kCancelled, ctx);
      EndJobIfOver(job_id, ctx);
    }
  }
  ctx.touched.clear();
}

// ---------------------------------------------------------------- leases and billing

void Exchange::StartLease(size_t market, const engine::Event& trade, Ctx& ctx) {
  const MarketConfig& config = config_.markets[market];
  const bool buyer_is_taker = trade.side == Side::kBuy;
  const OrderId buy_id = buyer_is_taker ? trade.id : trade.maker_id;
  const OrderId sell_id = buyer_is_taker ? trade.maker_id : trade.id;
  OrderState& buy = orders_.at(buy_id);
  OrderState& sell = orders_.at(sell_id);
  const Quantity slots = trade.quantity;
  buy.remaining -= slots;
  sell.remaining -= slots;
  OCX_ASSERT(buy.remaining >= 0 && sell.remaining >= 0);

  Lease lease;
  lease.id = next_lease_++;
  lease.buyer = buy.account;
  lease.seller = sell.account;
  lease.machine = sell.machine;
  lease.market = market;
  lease.slots = slots;
  lease.price = trade.price;
  lease.max_hours = buy.max_hours;
  lease.start = now_;
  lease.buy_order = buy_id;
  lease.sell_order = sell_id;
  lease.buyer_fee_bps = buyer_is_taker ? config.taker_fee_bps : config.maker_fee_bps;
  lease.seller_fee_bps = buyer_is_taker ? config.maker_fee_bps : config.taker_fee_bps;

  // The hold for these slots at the hold price moves to the lease's escrow at the trade
  // price; the difference (price improvement, a maker's lower fee) goes back to available.
  const Micros hold_used =
      buy.remaining == 0
          ? buy.hold
          : std::min(buy.hold, HoldFor(buy.hold_price, slots, buy.max_hours, config.taker_fee_bps));
  const Micros escrow = HoldFor(trade.price, slots, buy.max_hours, lease.buyer_fee_bps);
  OCX_ASSERT_MSG(escrow <= hold_used, "a trade needs more escrow than its order held");
  buy.hold -= hold_used;
  Transfer({buy.account, BalanceKind::kHeld}, {buy.account, BalanceKind::kEscrow}, escrow,
           TransferKind::kEscrow, lease.id, ctx);
  Transfer({buy.account, BalanceKind::kHeld}, {buy.account, BalanceKind::kAvailable},
           hold_used - escrow, TransferKind::kRelease, buy_id, ctx);
  lease.escrow = escrow;

  Machine& machine = machines_.at(sell.machine);
  machine.offered[market] -= slots;
  machine.leased[market] += slots;
  machine.leases.insert(lease.id);
  lease_deadlines_.insert({lease.start + Timestamp{lease.max_hours} * 3600 * kMicrosPerSecond,
                           lease.id});
  ctx.out->events.push_back(LeaseStarted{lease.id, lease.buyer, lease.seller, lease.machine,
                                         config.name, slots, lease.price, lease.max_hours,
                                         lease.start, escrow, buy_id, sell_id});
  leases_.emplace(lease.id, lease);
  if (const auto job = job_orders_.find(buy_id); job != job_orders_.end()) {
    const auto [job_id, index] = job->second;
    job_orders_.erase(job);
    AssignJobTask(jobs_.at(job_id), index, leases_.at(lease.id), ctx);
  }
}

void Exchange::ChargeFee(AccountId payer, Micros fee_total, Micros* fee_charged,
                         Micros* fee_insured, LeaseId lease, Ctx& ctx) {
  // Cumulative, so that rounding never accumulates: the pool's share of a fee stream is
  // always floor(total fee / 4).
  const Micros fee_delta = fee_total - *fee_charged;
  const Micros insured_delta = fee_total / 4 - *fee_insured;
  OCX_ASSERT(fee_delta >= 0 && insured_delta >= 0 && insured_delta <= fee_delta);
  Transfer({payer, BalanceKind::kEscrow}, {0, BalanceKind::kInsurance}, insured_delta,
           TransferKind::kInsurance, lease, ctx);
  Transfer({payer, BalanceKind::kEscrow}, {0, BalanceKind::kFees}, fee_delta - insured_delta,
           TransferKind::kFee, lease, ctx);
  *fee_charged = fee_total;
  *fee_insured = fee_total / 4;
}

void Exchange::Bill(Lease& lease, int64_t seconds, Ctx& ctx) {
  seconds = std::min<int64_t>(seconds, int64_t{lease.max_hours} * 3600);
  if (seconds <= lease.billed_seconds) return;
  lease.billed_seconds = seconds;
  // RULEBOOK 3: floor(price * slots * t / 3600) on the cumulative seconds.
  const Micros due =
      static_cast<Micros>(static_cast<__int128>(lease.price) * lease.slots * seconds / 3600);
  const Micros delta = due - lease.billed;
  if (delta == 0) return;
  const Micros seller_fee_total = FeeOf(due, lease.seller_fee_bps);
  const Micros buyer_fee_total = FeeOf(due, lease.buyer_fee_bps);
  const Micros seller_fee_delta = seller_fee_total - lease.seller_fee;
  const Micros buyer_fee_delta = buyer_fee_total - lease.buyer_fee;
  const Micros escrow_before = lease.escrow;
  // The seller's fee is deducted from what it earns; the buyer's comes on top of the bill.
  Transfer({lease.buyer, BalanceKind::kEscrow}, {lease.seller, BalanceKind::kEarnings},
           delta - seller_fee_delta, TransferKind::kBill, lease.id, ctx);
  ChargeFee(lease.buyer, seller_fee_total, &lease.seller_fee, &lease.seller_fee_insured, lease.id,
            ctx);
  ChargeFee(lease.buyer, buyer_fee_total, &lease.buyer_fee, &lease.buyer_fee_insured, lease.id,
            ctx);
  lease.billed = due;
  lease.escrow = escrow_before - delta - buyer_fee_delta;
  OCX_ASSERT_MSG(lease.escrow >= 0, "a lease billed more than its escrow");
}

void Exchange::EndLeaseNow(LeaseId id, LeaseEndReason reason, Ctx& ctx) {
  Lease& lease = leases_.at(id);
  const int64_t elapsed = (now_ - lease.start) / kMicrosPerSecond;
  switch (reason) {
    case LeaseEndReason::kFinished:
    case LeaseEndReason::kReleased:
    case LeaseEndReason::kReclaimed:
    case LeaseEndReason::kExpired:
      // Billing stops now (at the reclaim, at the release, at max_hours).
      Bill(lease, std::max(elapsed, lease.reported_wall_seconds), ctx);
      break;
    case LeaseEndReason::kOffline:
      // Nothing after the last report is billed (RULEBOOK 4).
      break;
  }
  const Micros refund = lease.escrow;
  Transfer({lease.buyer, BalanceKind::kEscrow}, {lease.buyer, BalanceKind::kAvailable}, refund,
           TransferKind::kRefund, lease.id, ctx);
  lease.escrow = 0;
  Machine& machine = machines_.at(lease.machine);
  machine.leased[lease.market] -= lease.slots;
  machine.leases.erase(id);
  ++machine.leases_ended;
  if (reason == LeaseEndReason::kOffline || reason == LeaseEndReason::kReclaimed) {
    ++machine.leases_failed;
  }
  Touch(machine);
  lease_deadlines_.erase(
      {lease.start + Timestamp{lease.max_hours} * 3600 * kMicrosPerSecond, lease.id});
  ctx.out->events.push_back(
      LeaseEnded{id, reason, now_, lease.billed_seconds, lease.billed, refund});
  leases_.erase(id);
  if (const auto task = open_tasks_.find(id); task != open_tasks_.end()) {
    task->second.lease_ended = now_;
    task_deadlines_.insert({now_ + config_.task_result_grace, id});
  }
  // A job's task whose machine went away (or was taken back) before it reported runs again
  // elsewhere; a result that still comes for this lease is kept but no longer counts.
  if (reason == LeaseEndReason::kOffline || reason == LeaseEndReason::kReclaimed) {
    if (const auto job = job_leases_.find(id);
        job != job_leases_.end() && open_tasks_.contains(id)) {
      const auto [job_id, index] = job->second;
      RetryJobTask(jobs_.at(job_id), index, ctx);
    }
  }
}

void Exchange::Do(const ReportUsage& c, Ctx& ctx) {
  const auto machine = machines_.find(c.machine);
  if (machine == machines_.end()) return Reject(ctx, Refusal::kUnknownMachine, "No machine has this id.");
  const auto it = leases_.find(c.lease);
  if (it == leases_.end() || it->second.machine != c.machine) {
    return Reject(ctx, Refusal::kUnknownLease, "This machine has no active lease with this id.");
  }
  Lease& lease = it->second;
  const SlotSpec& slot = config_.markets[lease.market].slot;
  const int64_t limit_seconds = int64_t{lease.max_hours} * 3600;
  const int64_t clock_seconds = (now_ + config_.usage_clock_slack - lease.start) / kMicrosPerSecond;
  if (c.wall_seconds < 0 || c.cpu_seconds < 0 || c.peak_memory_mib < 0 || c.gpu_seconds < 0) {
    return Reject(ctx, Refusal::kInvalidUsage, "Usage figures cannot be negative.");
  }
  if (c.wall_seconds > clock_seconds) {
    return Reject(ctx, Refusal::kUsageAheadOfClock,
                  "The report claims more wall time than has passed since the lease started.");
  }
  if (c.wall_seconds > limit_seconds || c.cpu_seconds > c.wall_seconds * lease.slots * slot.vcpus ||
      c.peak_memory_mib > lease.slots * slot.mem_mib ||
      c.gpu_seconds > c.wall_seconds * lease.slots * slot.gpus) {
    return Reject(ctx, Refusal::kUsageExceedsAllocation,
                  "The report claims more than the lease's slots allow.");
  }
  if (c.wall_seconds < lease.reported_wall_seconds) {
    return Reject(ctx, Refusal::kStaleUsage, "A later report for this lease was already recorded.");
  }
  lease.reported_wall_seconds = c.wall_seconds;
  Bill(lease, c.wall_seconds, ctx);
  ctx.out->events.push_back(UsageRecorded{lease.id, c.wall_seconds, c.cpu_seconds,
                                          c.peak_memory_mib, c.gpu_seconds, lease.billed});
}

void Exchange::Do(const EndLease& c, Ctx& ctx) {
  const auto it = leases_.find(c.lease);
  if (it == leases_.end()) return Reject(ctx, Refusal::kUnknownLease, "No active lease has this id.");
  const Lease& lease = it->second;
  bool allowed = false;
  switch (c.reason) {
    case LeaseEndReason::kReleased:
      allowed = c.actor != 0 && c.actor == lease.buyer;
      break;
    case LeaseEndReason::kReclaimed:
      allowed = (c.actor != 0 && c.actor == lease.seller) ||
                (c.machine != 0 && c.machine == lease.machine);
      break;
    case LeaseEndReason::kFinished:
      allowed = c.machine != 0 && c.machine == lease.machine;
      break;
    case LeaseEndReason::kExpired:
    case LeaseEndReason::kOffline:
      return Reject(ctx, Refusal::kInvalidReason, "Leases expire and go offline by themselves.");
  }
  if (!allowed) return Reject(ctx, Refusal::kNotAuthorized, "This caller may not end this lease so.");
  EndLeaseNow(c.lease, c.reason, ctx);
}

void Exchange::Do(const Tick&, Ctx&) {}

// ---------------------------------------------------------------- invariants

void Exchange::CheckInvariants() const {
  Micros total = 0;
  for (const auto& [ref, amount] : balances_) {
    total += amount;
    if (ref.kind != BalanceKind::kExternal) OCX_ASSERT_MSG(amount >= 0, "a negative balance");
  }
  OCX_ASSERT_MSG(total == 0, "the ledger does not balance");
  OCX_ASSERT(Balance({0, BalanceKind::kExternal}) == withdrawals_ - deposits_);

  std::map<AccountId, Micros> held, escrow;
  std::map<AccountId, size_t> open;
  for (const auto& [id, order] : orders_) {
    OCX_ASSERT(books_[order.market]->Contains(id));
    held[order.account] += order.hold;
    ++open[order.account];
  }
  for (const auto& [id, lease] : leases_) escrow[lease.buyer] += lease.escrow;
  for (const auto& [id, account] : accounts_) {
    OCX_ASSERT(Balance({id, BalanceKind::kHeld}) == held[id]);
    OCX_ASSERT(Balance({id, BalanceKind::kEscrow}) == escrow[id]);
    OCX_ASSERT(account.open_orders == open[id]);
  }
  std::map<AccountId, size_t> machines_of;
  for (const auto& [id, machine] : machines_) ++machines_of[machine.owner];
  for (const auto& [id, account] : accounts_) OCX_ASSERT(account.machines == machines_of[id]);
  for (const auto& [id, machine] : machines_) {
    for (size_t m = 0; m < books_.size(); ++m) {
      OCX_ASSERT(machine.offered[m] >= 0 && machine.leased[m] >= 0);
      OCX_ASSERT(machine.offered[m] + machine.leased[m] <= machine.capacity[m]);
    }
  }
  for (size_t m = 0; m < books_.size(); ++m) {
    size_t resting = 0;
    for (const auto& [id, order] : orders_) resting += order.market == m;
    OCX_ASSERT(books_[m]->resting_orders() == resting);
    books_[m]->CheckInvariants();
  }
  // An open task's lease is active, or it ended and the task waits out its grace period.
  size_t ended = 0;
  for (const auto& [id, task] : open_tasks_) {
    if (task.lease_ended == 0) {
      OCX_ASSERT_MSG(leases_.contains(id), "an open task of a lease that is not active");
    } else {
      OCX_ASSERT(!leases_.contains(id));
      OCX_ASSERT(task_deadlines_.contains({task.lease_ended + config_.task_result_grace, id}));
      ++ended;
    }
  }
  OCX_ASSERT(task_deadlines_.size() == ended);
  // A waiting job task has a resting order, a running one a lease (active, or ended with its
  // result still awaited); the lookups hold exactly those.
  size_t waiting = 0, running = 0;
  for (const auto& [id, job] : jobs_) {
    bool live = false;
    for (int32_t i = 0; i < static_cast<int32_t>(job.tasks.size()); ++i) {
      const JobTask& task = job.tasks[i];
      OCX_ASSERT(task.attempts >= 0 && task.attempts <= kJobTaskAttemptsMax);
      if (task.state == JobTaskState::kWaiting) {
        ++waiting;
        live = true;
        OCX_ASSERT_MSG(orders_.contains(task.order), "a waiting job task without its order");
        OCX_ASSERT(job_orders_.at(task.order) == std::make_pair(id, i));
      } else if (task.state == JobTaskState::kRunning) {
        ++running;
        live = true;
        OCX_ASSERT(job_leases_.at(task.lease) == std::make_pair(id, i));
        OCX_ASSERT_MSG(leases_.contains(task.lease) || open_tasks_.contains(task.lease),
                       "a running job task with neither a lease nor an open task");
      }
    }
    OCX_ASSERT_MSG(live, "a job that is over is still kept");
  }
  OCX_ASSERT(job_orders_.size() == waiting && job_leases_.size() == running);
}

// ---------------------------------------------------------------- names

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kConsumer: return "consumer";
    case Role::kProvider: return "provider";
    case Role::kOperator: return "operator";
  }
  return "unknown";
}

std::string_view BalanceKindName(BalanceKind kind) {
  switch (kind) {
    case BalanceKind::kAvailable: return "available";
    case BalanceKind::kHeld: return "held";
    case BalanceKind::kEscrow: return "escrow";
    case BalanceKind::kEarnings: return "earnings";
    case BalanceKind::kExternal: return "external";
    case BalanceKind::kFees: return "fees";
    case BalanceKind::kInsurance: return "insurance";
  }
  return "unknown";
}

std::string_view TransferKindName(TransferKind kind) {
  switch (kind) {
    case TransferKind::kDeposit: return "deposit";
    case TransferKind::kWithdrawal: return "withdrawal";
    case TransferKind::kHold: return "hold";
    case TransferKind::kRelease: return "release";
    case TransferKind::kEscrow: return "escrow";
    case TransferKind::kBill: return "bill";
    case TransferKind::kFee: return "fee";
    case TransferKind::kInsurance: return "insurance";
    case TransferKind::kRefund: return "refund";
  }
  return "unknown";
}

std::string_view JobTaskStateName(JobTaskState state) {
  switch (state) {
    case JobTaskState::kWaiting: return "waiting";
    case JobTaskState::kRunning: return "running";
    case JobTaskState::kFinished: return "finished";
    case JobTaskState::kLost: return "lost";
    case JobTaskState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kActive: return "active";
    case JobState::kDone: return "done";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view LeaseEndReasonName(LeaseEndReason reason) {
  switch (reason) {
    case LeaseEndReason::kFinished: return "finished";
    case LeaseEndReason::kReleased: return "released";
    case LeaseEndReason::kReclaimed: return "reclaimed";
    case LeaseEndReason::kExpired: return "expired";
    case LeaseEndReason::kOffline: return "offline";
  }
  return "unknown";
}

}  // namespace ocx::core
