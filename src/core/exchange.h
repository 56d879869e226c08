// The exchange state machine: (state, command) -> (state, events). RULEBOOK sections 1-4.
//
// Accounts; a double-entry ledger in micro-credits; markets from configuration, each routed
// to its own engine::OrderBook; escrow holds for buys and capacity checks for sells; trades
// turned into leases that reserve machine capacity; per-second billing settled from escrow
// on usage reports; fees with a quarter to the insurance pool; lease ends (finished,
// released, reclaimed, max_hours, machine offline) with unused escrow returned.
//
// Deterministic: time and identity arrive on the command; ids are assigned in sequence;
// every container that is iterated is ordered. Replaying the same commands gives the same
// state (StateHash()) and the same events.
//
// Not thread-safe: owned and driven by the sequencer thread.
// Invariants (CheckInvariants()): the ledger sums to zero, the outside world's balance is
// minus (deposits - withdrawals); no account balance is negative; holds equal the orders'
// holds, escrow the leases' escrow; machine capacity covers offered + leased slots; every
// book's own invariants hold.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/core/commands.h"
#include "src/core/events.h"
#include "src/core/types.h"
#include "src/engine/order_book.h"

namespace ocx::core {

struct Account {
  AccountId id = 0;
  std::string name;
  Role role = Role::kConsumer;
  size_t open_orders = 0;
  std::string token_hash;  // See CreateAccount::token_hash.
  size_t machines = 0;  // Machines it registered. Derived (rebuilt on restore), not serialized.
};

// The exchange's view of an order that is still live in a book.
struct OrderState {
  OrderId id = 0;
  AccountId account = 0;
  size_t market = 0;
  engine::Side side = engine::Side::kBuy;
  std::string client_order_id;
  Quantity remaining = 0;
  Quantity lot = 1;
  // Buys: the price the hold was computed at (the limit, or for a market buy the worst ask
  // it could reach), the lease length it pays for, and what is still held for it.
  PriceMicros hold_price = 0;
  int32_t max_hours = 0;
  Micros hold = 0;
  MachineId machine = 0;  // Sells.
  std::string constraints;  // Buys: PlaceOrder::constraints, empty for none.
  uint32_t constraint_handle = 0;  // Its compiled form (not state: rebuilt on restore).
};

struct Machine {
  MachineId id = 0;
  AccountId owner = 0;
  MachineSpec spec;
  std::vector<Quantity> capacity;  // Per market index.
  std::vector<Quantity> offered;   // Remaining quantity of its live sell orders.
  std::vector<Quantity> leased;    // Slots of its active leases.
  Timestamp last_heartbeat = 0;
  bool online = true;
  std::set<OrderId> sells;
  std::set<LeaseId> leases;
  // The last command that changed anything shown of it (registration, heartbeat, online
  // status, its asks and leases). Not state: 0 after a restore, so readers refresh
  // everything then.
  uint64_t changed_sequence = 0;
  // Track record: leases that ended, and of those the ones it failed (went offline, or its
  // owner reclaimed the machine).
  int64_t leases_ended = 0;
  int64_t leases_failed = 0;
};

// A machine's reputation in micro-units of [0, 1]: (kept + 1) / (ended + 2), so a new machine
// starts at 0.5 and each lease moves it (the attribute `reputation` of discovery queries).
int64_t ReputationMicros(const Machine& machine);

struct Lease {
  LeaseId id = 0;
  AccountId buyer = 0;
  AccountId seller = 0;
  MachineId machine = 0;
  size_t market = 0;
  Quantity slots = 0;
  PriceMicros price = 0;
  int32_t max_hours = 0;
  Timestamp start = 0;
  OrderId buy_order = 0;
  OrderId sell_order = 0;
  int32_t buyer_fee_bps = 0;
  int32_t seller_fee_bps = 0;
  Micros escrow = 0;          // Still in escrow.
  Micros billed = 0;          // Cumulative bill (what the provider's side was charged for).
  Micros buyer_fee = 0;       // Cumulative fees charged to each side...
  Micros seller_fee = 0;
  Micros buyer_fee_insured = 0;   // ...and the parts of them sent to the insurance pool.
  Micros seller_fee_insured = 0;
  int64_t billed_seconds = 0;
  int64_t reported_wall_seconds = 0;
};

// A task whose result has not come yet (its lease active, or ended less than
// ExchangeConfig::task_result_grace ago).
struct OpenTask {
  LeaseId lease = 0;
  AccountId buyer = 0;
  MachineId machine = 0;
  std::string spec;
  Timestamp assigned = 0;
  Timestamp lease_ended = 0;  // 0 while the lease is active.
  JobId job = 0;              // As TaskAssigned.
  int32_t task_index = 0;
};

inline constexpr int32_t kJobTaskAttemptsMax = 3;
inline constexpr int32_t kJobTasksMax = 1000;

struct JobTask {
  JobTaskState state = JobTaskState::kWaiting;
  int32_t attempts = 0;
  OrderId order = 0;
  LeaseId lease = 0;
  MachineId machine = 0;
};

// A job that is not over yet (over: every task finished, lost or cancelled).
struct Job {
  JobId id = 0;
  SubmitJob spec;  // actor = the owner.
  Timestamp submitted = 0;
  std::vector<JobTask> tasks;
};

class Exchange {
 public:
  explicit Exchange(ExchangeConfig config);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Applies one sequenced command. `sequence` must increase and `time` must not decrease
  // (the sequencer guarantees both; asserted). Appends the events to out->events.
  void Apply(uint64_t sequence, Timestamp time, const CommandBody& command, ApplyOutput* out);

  // ---- Queries
  const ExchangeConfig& config() const { return config_; }
  uint64_t last_sequence() const { return last_sequence_; }
  Timestamp now() const { return now_; }
  Micros Balance(BalanceRef ref) const;
  Micros deposits() const { return deposits_; }
  Micros withdrawals() const { return withdrawals_; }
  const std::map<AccountId, Account>& accounts() const { return accounts_; }
  const std::map<OrderId, OrderState>& orders() const { return orders_; }
  const std::map<MachineId, Machine>& machines() const { return machines_; }
  // Machines whose shown state changed since the last call, each once, in id order (for the
  // read views published after each batch). Only recorded while tracking is on (the
  // sequencer turns it on once recovery is done, so a replay keeps no list).
  void TrackMachineChanges(bool on) { track_machine_changes_ = on; }
  std::vector<MachineId> TakeChangedMachines();
  // The machine's lowest ask in a market, or 0 when it has none.
  PriceMicros BestAsk(const Machine& machine, size_t market) const;
  const std::map<LeaseId, Lease>& leases() const { return leases_; }
  const std::map<LeaseId, OpenTask>& open_tasks() const { return open_tasks_; }
  const std::map<JobId, Job>& jobs() const { return jobs_; }
  // The job submitted with this client job id by this account (live or over), or 0.
  JobId FindClientJob(AccountId account, const std::string& client_job_id) const;
  const std::map<BalanceRef, Micros>& balances() const { return balances_; }
  // The order placed with this client order id by this account (live or finished), or 0;
  // always 0 for an id with kAutoClientOrderIdPrefix (not kept).
  OrderId FindClientOrder(AccountId account, const std::string& client_order_id) const;
  // Index of a market by name, or -1.
  int MarketIndex(const std::string& name) const;
  const engine::OrderBook& book(size_t market) const { return *books_[market]; }
  // Escrow a buy of `quantity` at `price` for `hours` needs, fee included (RULEBOOK 3).
  static Micros HoldFor(PriceMicros price, Quantity quantity, int32_t hours, int32_t fee_bps);

  void CheckInvariants() const;

  // ---- Snapshots (src/core/snapshot.cc)
  // The whole state as canonical JSON: equal states give equal bytes.
  std::string Serialize() const;
  static absl::StatusOr<std::unique_ptr<Exchange>> Restore(ExchangeConfig config,
                                                           std::string_view serialized);
  // BLAKE2b-256 of Serialize(), in hex.
  std::string StateHash() const;

 private:
  friend class SnapshotCodec;

  struct Ctx;  // Per-command scratch: output, touched orders.

  void Transfer(BalanceRef from, BalanceRef to, Micros amount, TransferKind kind,
                uint64_t reference, Ctx& ctx);
  // Refuses the command: `message` is a sentence more specific than the table's, or empty.
  void Reject(Ctx& ctx, Refusal refusal, std::string_view message);

  void AdvanceTime(Ctx& ctx);
  void ProcessEngineEvents(size_t market, Ctx& ctx);
  void FinishTouchedOrders(Ctx& ctx);
  void StartLease(size_t market, const engine::Event& trade, Ctx& ctx);
  void Bill(Lease& lease, int64_t seconds, Ctx& ctx);
  void ChargeFee(AccountId payer_escrow_owner, Micros fee_total, Micros* fee_charged,
                 Micros* fee_insured, LeaseId lease, Ctx& ctx);
  void EndLeaseNow(LeaseId id, LeaseEndReason reason, Ctx& ctx);
  void SetOffline(Machine& machine, Ctx& ctx);
  void ScheduleHeartbeatDeadline(Machine& machine, Timestamp heartbeat);
  // Records that something shown of the machine changed (changed_sequence, the change list).
  void Touch(Machine& machine);

  void Do(const CreateAccount& c, Ctx& ctx);
  void Do(const RotateToken& c, Ctx& ctx);
  void Do(const Deposit& c, Ctx& ctx);
  void Do(const Withdraw& c, Ctx& ctx);
  void Do(const RegisterMachine& c, Ctx& ctx);
  void Do(const Heartbeat& c, Ctx& ctx);
  void Do(const PlaceOrder& c, Ctx& ctx);
  void Do(const CancelOrder& c, Ctx& ctx);
  void Do(const ReplaceOrder& c, Ctx& ctx);
  void Do(const ReportUsage& c, Ctx& ctx);
  void Do(const EndLease& c, Ctx& ctx);
  void Do(const Tick& c, Ctx& ctx);
  void Do(const AssignTask& c, Ctx& ctx);
  void Do(const FinishTask& c, Ctx& ctx);
  void Do(const SubmitJob& c, Ctx& ctx);
  void Do(const CancelJob& c, Ctx& ctx);

  void PlaceOrderChecked(const PlaceOrder& c, Ctx& ctx);
  // Places the buy for a job's task (a new attempt); false when it could not (funds, limits).
  bool PlaceJobOrder(Job& job, int32_t index, Ctx& ctx);
  void AssignJobTask(Job& job, int32_t index, const Lease& lease, Ctx& ctx);
  void SetJobTask(Job& job, int32_t index, JobTaskState state, Ctx& ctx);
  // A running task lost its lease without a result (machine offline, reclaimed) or its result
  // never came: place it again while attempts remain.
  void RetryJobTask(Job& job, int32_t index, Ctx& ctx);
  void EndJobIfOver(JobId id, Ctx& ctx);
  const Account* FindAccount(AccountId id) const;

  // Constraints (docs/formats/query.md). CheckConstraints: "" when `text` is empty or a
  // valid query, else the error sentence. CompileConstraint: the engine's handle of a valid,
  // non-empty query; the eligibility oracle evaluates it against a sell's machine.
  std::string CheckConstraints(const std::string& text) const;
  uint32_t CompileConstraint(const std::string& text);
  void ReleaseConstraint(uint32_t handle);
  class ConstraintOracle;

  ExchangeConfig config_;
  std::unique_ptr<ConstraintOracle> oracle_;  // The books' eligibility oracle.
  std::vector<std::unique_ptr<engine::OrderBook>> books_;  // Per market index.
  std::vector<engine::Event> engine_events_;               // Reused scratch.

  uint64_t last_sequence_ = 0;
  Timestamp now_ = 0;
  AccountId next_account_ = 1;
  MachineId next_machine_ = 1;
  OrderId next_order_ = 1;
  LeaseId next_lease_ = 1;
  uint64_t next_entry_ = 1;
  Micros deposits_ = 0;
  Micros withdrawals_ = 0;

  std::map<AccountId, Account> accounts_;
  std::map<std::string, AccountId> account_names_;
  std::map<BalanceRef, Micros> balances_;
  std::map<OrderId, OrderState> orders_;
  // A client order or job id remembered for duplicate checks (idempotent retries): taken
  // while its order or job is open and for ExchangeConfig::client_id_retention after it was
  // used, whichever is longer (docs/formats/commands.md). The API's own single-use ones
  // (kAutoClientOrderIdPrefix) are never kept.
  struct RememberedId {
    uint64_t id = 0;
    Timestamp time = 0;  // When it was last found still needed (used, or its order open).
  };
  // The order in which remembered ids come up for forgetting (times never go backwards, so
  // appended in order). Derived: rebuilt from the two maps on restore.
  struct RememberedKey {
    Timestamp time = 0;
    bool job = false;
    AccountId account = 0;
    std::string key;
  };
  void Remember(bool job, AccountId account, const std::string& key, uint64_t id);
  // Forgets the ids past their retention (at the start of every command).
  void ForgetOldClientIds();
  std::map<std::pair<AccountId, std::string>, RememberedId> client_order_ids_;
  std::map<MachineId, Machine> machines_;
  // Not state: see TakeChangedMachines.
  bool track_machine_changes_ = false;
  std::vector<MachineId> changed_machines_;
  std::set<std::pair<Timestamp, MachineId>> heartbeat_deadlines_;  // Online machines.
  std::map<LeaseId, Lease> leases_;                                // Active leases.
  std::set<std::pair<Timestamp, LeaseId>> lease_deadlines_;        // start + max_hours.
  std::map<LeaseId, OpenTask> open_tasks_;
  // Tasks of ended leases: lease end + task_result_grace.
  std::set<std::pair<Timestamp, LeaseId>> task_deadlines_;
  JobId next_job_ = 1;
  std::map<JobId, Job> jobs_;  // Not over yet.
  std::map<std::pair<AccountId, std::string>, RememberedId> client_job_ids_;
  std::deque<RememberedKey> remembered_keys_;
  // Derived from jobs_ (rebuilt on restore): the waiting tasks' orders, the running tasks'
  // leases, each -> (job, task index).
  std::map<OrderId, std::pair<JobId, int32_t>> job_orders_;
  std::map<LeaseId, std::pair<JobId, int32_t>> job_leases_;
};

std::string_view RoleName(Role role);
std::string_view BalanceKindName(BalanceKind kind);
std::string_view TransferKindName(TransferKind kind);
std::string_view LeaseEndReasonName(LeaseEndReason reason);
std::string_view JobTaskStateName(JobTaskState state);
std::string_view JobStateName(JobState state);

}  // namespace ocx::core
