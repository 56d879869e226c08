// What applying a command did. Events drive the reply to the caller, the market-data and
// agent streams, and the query store's projection; they are never the source of truth.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "src/core/commands.h"
#include "src/engine/events.h"

namespace ocx::core {

struct AccountCreated {
  AccountId account;
  std::string name;
  Role role;
  std::string token_hash;  // As on the command (the API's token registry follows it).
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
};

// A task is over: its machine reported `result`, or (result empty) none came within
// kTaskResultGrace after its lease ended.
struct TaskFinished {
  LeaseId lease;
  AccountId buyer;
  MachineId machine;
  std::string result;  // docs/formats/task.md; empty: never reported.
};

using CoreEvent = std::variant<AccountCreated, LedgerTransfer, MachineRegistered,
                               MachineStatusChanged, OrderEvent, LeaseStarted, UsageRecorded,
                               LeaseEnded, TaskAssigned, TaskFinished>;

// The answer to the command's sender. A rejection changed nothing.
struct CommandResult {
  bool accepted = true;
  std::string code;     // Stable snake_case reason when rejected.
  std::string message;  // One sentence for people.
  AccountId account = 0;
  MachineId machine = 0;
  OrderId order = 0;
};

struct ApplyOutput {
  CommandResult result;
  std::vector<CoreEvent> events;
};

}  // namespace ocx::core
