// Vocabulary of the exchange core (RULEBOOK sections 1, 3 and 4).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/engine/types.h"
#include "src/query/value.h"

namespace ocx::core {

using AccountId = uint32_t;  // 0: nobody (the system).
using MachineId = uint64_t;  // 0: none.
using LeaseId = uint64_t;
using JobId = uint64_t;
using OrderId = engine::OrderId;  // Assigned by the exchange: 1, 2, 3, ...
using Micros = int64_t;           // Credits in micro-credits. Never a float.
using PriceMicros = engine::PriceMicros;
using Quantity = engine::Quantity;
// Unix time in microseconds, from the sequenced command. The core never reads a clock.
using Timestamp = int64_t;

inline constexpr Timestamp kMicrosPerSecond = 1'000'000;

enum class Role : uint8_t { kConsumer, kProvider, kOperator };

// What one slot of a market is (RULEBOOK section 1).
struct SlotSpec {
  int32_t vcpus = 1;
  int64_t mem_mib = 2048;
  int64_t disk_gib = 10;
  int32_t gpus = 0;
  std::string gpu_model;  // For gpu.<model> markets.
};

struct MarketConfig {
  std::string name;                 // "cpu", "gpu.h100".
  PriceMicros tick_micros = 100;    // 0.0001 credits.
  SlotSpec slot;
  int32_t taker_fee_bps = 20;
  int32_t maker_fee_bps = 0;
};

struct ExchangeConfig {
  std::vector<MarketConfig> markets;
  Timestamp heartbeat_timeout = 15 * kMicrosPerSecond;
  // A usage report may claim wall time up to this far ahead of the exchange's own clock
  // (the agent's clock and the network lag behind), never more.
  Timestamp usage_clock_slack = 5 * kMicrosPerSecond;
  int32_t max_hours_max = 24 * 31;
  // Named bounds on what grows from outside input.
  size_t accounts_max = 1'000'000;
  size_t machines_max = 1'000'000;
  size_t machines_per_account_max = 10'000;
  size_t open_orders_per_account_max = 10'000;
  // Task spec and task result documents (docs/formats/task.md), each at most this long.
  size_t task_document_bytes_max = 64 * 1024;
  // A client order id or client job id (the API's Idempotency-Key) stays taken this long
  // after it was used, and while its order or job is open: a retry within it is answered
  // with what the first request did; after it the id may be used again.
  Timestamp client_id_retention = 24 * 3600 * kMicrosPerSecond;
  // A task whose lease ended may still report its result this long afterwards.
  Timestamp task_result_grace = 10 * 60 * kMicrosPerSecond;

  // cpu (1 vCPU, 2 GiB, 10 GiB) and gpu.h100 (1 GPU, 8 vCPU, 64 GiB, 100 GiB).
  static ExchangeConfig Default();
};

// A machine attribute: a number (held exactly, in micro-units) or a string. The same type
// the discovery query language evaluates (docs/formats/query.md).
using AttributeValue = query::Value;

struct MachineSpec {
  std::string name;
  // Measured and declared attributes: cpu.cores, cpu.model, cpu.factor, mem.gib, disk.gib,
  // gpu.count, gpu.model, gpu.mem_gib, region, os, arch, and provider labels.
  std::map<std::string, AttributeValue> attributes;
  // Slots offered per market name, already bounded by the machine's shared resources.
  std::map<std::string, Quantity> capacity;
  // The machine's Ed25519 public key, lowercase hex (64 characters); it signs the agent's
  // challenge response and usage reports. Empty: a machine without an agent (tests).
  std::string public_key;
};

// Which balance of the ledger (RULEBOOK section 3). Per-account kinds belong to an account;
// system kinds have owner 0.
enum class BalanceKind : uint8_t {
  kAvailable,  // Spendable.
  kHeld,       // Reserved by resting and incoming buy orders.
  kEscrow,     // Reserved for running leases (as buyer).
  kEarnings,   // What a provider has earned.
  kExternal,   // System: the world outside; deposits come from it, withdrawals go to it.
  kFees,       // System: the exchange's fee income.
  kInsurance,  // System: the SLA insurance pool.
};

struct BalanceRef {
  AccountId owner = 0;
  BalanceKind kind = BalanceKind::kAvailable;
  auto operator<=>(const BalanceRef&) const = default;
};

}  // namespace ocx::core
