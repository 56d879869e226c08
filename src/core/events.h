// What applying a command did. Events drive the reply to the caller, the market-data and
// agent streams, and the query store's projection; they are never the source of truth.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "src/core/commands.h"
#include "src/engine/events.h"
#include "src/protocol/refusal.h"

namespace ocx::core {

using protocol::Refusal;

// The refusal for an engine reason (the engine keeps its own codes for the replay format).
Refusal RefusalOf(engine::RejectReason reason);

struct AccountCreated {
  AccountId account;
  std::string name;
  Role role;
  std::string token_hash;  // As on the command (the API's token registry follows it).
};

// The account's API token was replaced: `token_hash` is the only one that authenticates it
// from now on (the API's token registry follows it; open private streams are closed).
struct TokenRotated {
  AccountId account;
  std::string token_hash;
};

// One double-entry movement: `amount` leaves `from` and enters `to`.
enum class TransferKind : uint8_t {
  kDeposit, kWithdrawal, kHold, kRelease, kEscrow, kBill, kFee, kInsurance, kRefund,
};
struct LedgerTransfer {
  uint64_t entry;  // Ledger entry number, 1, 2, 3, ...
  BalanceRef from;
  BalanceRef to;
  Micros amount;
  TransferKind kind;
  uint64_t reference;  // The order or lease it belongs to (0: none).
};

struct MachineRegistered {
  MachineId machine;
  AccountId owner;
  std::string name;
  std::string public_key;  // As in the spec (the API's machine registry follows it).
};

struct MachineStatusChanged {
  MachineId machine;
  bool online;
};

// An engine outcome in one market, with the exchange's view of the order.
struct OrderEvent {
  std::string market;
  engine::Event event;
};

struct LeaseStarted {
  LeaseId lease;
  AccountId buyer;
  AccountId seller;
  MachineId machine;
  std::string market;
  Quantity slots;
  PriceMicros price;
  int32_t max_hours;
  Timestamp start;
  Micros escrow;
  OrderId buy_order;
  OrderId sell_order;
};

struct UsageRecorded {
  LeaseId lease;
  int64_t wall_seconds;
  int64_t cpu_seconds;
  int64_t peak_memory_mib;
  int64_t gpu_seconds;
  Micros billed_total;  // Cumulative bill of the lease after this report.
};

struct LeaseEnded {
  LeaseId lease;
  LeaseEndReason reason;
  Timestamp end;
  int64_t billed_seconds;
  Micros billed_total;
  Micros refunded;
};

struct TaskAssigned {
  LeaseId lease;
  AccountId buyer;
  MachineId machine;
  std::string spec;  // docs/formats/task.md
  JobId job = 0;             // The job it belongs to, 0 for a task given by hand.
  int32_t task_index = 0;    // Its place in the job, 0-based.
};

// A task is over: its machine reported `result`, or (result empty) none came within
// kTaskResultGrace after its lease ended.
struct TaskFinished {
  LeaseId lease;
  AccountId buyer;
  MachineId machine;
  std::string result;  // docs/formats/task.md; empty: never reported.
};

enum class JobTaskState : uint8_t {
  kWaiting,    // Its buy order rests in the book.
  kRunning,    // It has a lease (or its lease ended and its result may still come).
  kFinished,   // Its machine reported a result.
  kLost,       // No result, and no attempt left (or no funds for another).
  kCancelled,  // The job was cancelled, or its order was (self-trade prevention, an operator).
};
enum class JobState : uint8_t { kActive, kDone, kCancelled };

struct JobSubmitted {
  JobId job;
  AccountId owner;
  SubmitJob spec;  // As submitted (actor = owner).
  Timestamp submitted;
};

// One task of a job changed state, or moved to a new order (attempt) or lease.
struct JobTaskChanged {
  JobId job;
  int32_t task_index;
  JobTaskState state;
  int32_t attempts;  // Orders placed for it so far.
  OrderId order;     // Its current (or last) buy order.
  LeaseId lease;     // Its current lease, 0 before the first fill.
  MachineId machine;
};

struct JobEnded {
  JobId job;
  AccountId owner;
  JobState state;  // kDone or kCancelled.
  Timestamp end;
};

using CoreEvent = std::variant<AccountCreated, LedgerTransfer, MachineRegistered,
                               MachineStatusChanged, OrderEvent, LeaseStarted, UsageRecorded,
                               LeaseEnded, TaskAssigned, TaskFinished, JobSubmitted,
                               JobTaskChanged, JobEnded, TokenRotated>;

// The answer to the command's sender. A rejection changed nothing.
struct CommandResult {
  bool accepted = true;
  Refusal refusal = Refusal::kNone;  // Why, when not accepted (src/protocol/refusal.h).
  std::string message;               // One sentence for people.
  AccountId account = 0;
  MachineId machine = 0;
  OrderId order = 0;
  JobId job = 0;

  // The refusal's stable code ("none" when accepted).
  std::string_view code() const { return protocol::Code(refusal); }
};

struct ApplyOutput {
  CommandResult result;
  std::vector<CoreEvent> events;
};

}  // namespace ocx::core
