// Commands of the exchange state machine. Each is sequenced (sequence number + timestamp)
// and journaled before it is applied; applying the same commands in the same order always
// gives the same state and events.
//
// Who sent a command is part of it: `actor` is the authenticated account (the API checked
// the token), or for machine commands the authenticated machine (the API checked its
// signature). The core decides what that actor may do.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "src/core/types.h"

namespace ocx::core {

struct CreateAccount {
  AccountId actor = 0;  // 0 for self sign-up; an operator to create an operator.
  std::string name;
  Role role = Role::kConsumer;
  // Lowercase hex BLAKE2b-256 of the account's API token (the API made the token and shows it
  // once; only its hash is journaled). Empty: no token (accounts made by tests and replays).
  std::string token_hash;
};

// A new API token for an account, replacing its old one (which stops working once this is
// durable). The account itself or an operator; the API made the token, only its hash is here.
struct RotateToken {
  AccountId actor = 0;
  AccountId account = 0;
  std::string token_hash;  // Lowercase hex BLAKE2b-256, as in CreateAccount.
};

struct Deposit {
  AccountId actor = 0;  // Must be an operator.
  AccountId account = 0;
  Micros amount = 0;
};

struct Withdraw {
  AccountId actor = 0;  // Must be an operator.
  AccountId account = 0;
  Micros amount = 0;
  BalanceKind from = BalanceKind::kAvailable;  // kAvailable or kEarnings.
};

struct RegisterMachine {
  AccountId actor = 0;  // A provider: the machine's owner.
  MachineSpec spec;
};

struct Heartbeat {
  MachineId machine = 0;  // Authenticated machine.
};

// Client order ids with this prefix are made by the API for orders placed without an
// Idempotency-Key ("auto-<random>-<counter>"); clients cannot choose them (the API refuses
// such keys). Unique by construction, they need no duplicate check, so the core does not
// remember them: otherwise every order ever placed without a key would stay in memory (and
// in every snapshot) for good.
inline constexpr std::string_view kAutoClientOrderIdPrefix = "auto-";

struct PlaceOrder {
  AccountId actor = 0;
  std::string market;
  // Unique per account, forever (idempotency); ids with kAutoClientOrderIdPrefix excepted.
  std::string client_order_id;
  engine::Side side = engine::Side::kBuy;
  engine::OrderType type = engine::OrderType::kLimit;
  engine::TimeInForce tif = engine::TimeInForce::kGtc;
  PriceMicros price = 0;
  Quantity quantity = 0;
  Quantity lot = 1;                    // Buys.
  int32_t max_hours = 1;               // Buys: the longest lease it pays for.
  std::optional<Timestamp> expiry;     // gtd.
  MachineId machine = 0;               // Sells: the machine whose capacity backs it.
  // Buys: a discovery query (docs/formats/query.md) a machine must match for this order to
  // trade with its sells; empty for any machine.
  std::string constraints;
};

struct CancelOrder {
  AccountId actor = 0;
  OrderId order = 0;
};

struct ReplaceOrder {
  AccountId actor = 0;
  OrderId order = 0;
  std::optional<PriceMicros> price;
  std::optional<Quantity> quantity;
};

struct ReportUsage {
  MachineId machine = 0;  // Authenticated machine (the report is signed by its key).
  LeaseId lease = 0;
  int64_t wall_seconds = 0;  // Cumulative for the lease.
  int64_t cpu_seconds = 0;
  int64_t peak_memory_mib = 0;
  int64_t gpu_seconds = 0;
};

enum class LeaseEndReason : uint8_t {
  kFinished,  // The job finished (reported by the machine).
  kReleased,  // The buyer released it.
  kReclaimed, // The provider took the machine back.
  kExpired,   // max_hours ran out.
  kOffline,   // The machine stopped sending heartbeats.
};

struct EndLease {
  AccountId actor = 0;    // The buyer (kReleased) or the machine's owner (kReclaimed).
  MachineId machine = 0;  // Or the machine itself (kFinished, kReclaimed).
  LeaseId lease = 0;
  LeaseEndReason reason = LeaseEndReason::kReleased;
};

// Only advances time: expiries, max_hours, heartbeat timeouts.
struct Tick {};

// The buyer attaches the work to run on an active lease (one task per lease). `spec` is the
// task spec document (docs/formats/task.md): the API validated it; the core keeps it opaque
// and only bounds its size (kTaskDocumentBytesMax).
struct AssignTask {
  AccountId actor = 0;  // The lease's buyer.
  LeaseId lease = 0;
  std::string spec;
};

// The machine reports how its task ended (the task result document of docs/formats/task.md),
// while the lease is active or within kTaskResultGrace after it ended (a job killed by a
// reclaim or a release still reports what it left).
struct FinishTask {
  MachineId machine = 0;  // Authenticated machine: the lease's.
  LeaseId lease = 0;
  std::string result;
};

// A job (docs/formats/job.md): `tasks` copies of one task spec, each on a lease of
// `slots_per_task` slots. The exchange places one buy per task (limit max_price, lot = the
// whole order, so one fill is one lease on one machine), gives each fill its task, places a
// task again when its machine was lost or reclaimed (at most kJobTaskAttemptsMax times in
// all), and ends the job once every task is over.
struct SubmitJob {
  AccountId actor = 0;
  std::string client_job_id;  // Unique per account, forever (idempotency).
  std::string market;
  Quantity slots_per_task = 1;
  int32_t tasks = 1;
  PriceMicros max_price = 0;
  int32_t max_hours = 1;
  std::string constraints;  // As PlaceOrder::constraints.
  std::string task_spec;    // docs/formats/task.md: validated by the API, opaque here.
};

// The job's owner (or an operator) stops it: waiting orders are cancelled, running leases
// released (their machines kill the tasks).
struct CancelJob {
  AccountId actor = 0;
  JobId job = 0;
};

using CommandBody = std::variant<CreateAccount, Deposit, Withdraw, RegisterMachine, Heartbeat,
                                 PlaceOrder, CancelOrder, ReplaceOrder, ReportUsage, EndLease,
                                 Tick, AssignTask, FinishTask, SubmitJob, CancelJob, RotateToken>;

}  // namespace ocx::core
