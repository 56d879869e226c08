// Vocabulary of the spot matching engine (RULEBOOK section 2).
#pragma once

#include <cstdint>
#include <optional>

namespace ocx::engine {

// Unique per book for the book's whole life (the exchange assigns it; `ocx replay` takes the
// file's `id`). Signed because replay files may use any JSON integer.
using OrderId = int64_t;
using AccountId = uint32_t;
// Credits per slot-hour in micro-credits; always a positive multiple of the book's tick.
using PriceMicros = int64_t;
// Slots. Positive, at most BookConfig::quantity_max per order.
using Quantity = int64_t;
// The timestamp of the sequenced command that carries it. The engine never reads a clock;
// it only compares these values, so any monotonic unit works (the exchange uses Unix
// microseconds).
using Timestamp = int64_t;

enum class Side : uint8_t { kBuy, kSell };
enum class OrderType : uint8_t { kLimit, kMarket };
enum class TimeInForce : uint8_t { kGtc, kIoc, kFok, kGtd };

inline Side Opposite(Side side) { return side == Side::kBuy ? Side::kSell : Side::kBuy; }

// A new order as it enters the engine.
struct NewOrder {
  OrderId id = 0;
  AccountId account = 0;
  Side side = Side::kBuy;
  OrderType type = OrderType::kLimit;
  TimeInForce tif = TimeInForce::kGtc;
  PriceMicros price = 0;  // Limit orders only; ignored for market orders.
  Quantity quantity = 0;
  // Buys only: every fill is a whole number of lots from one sell. A sell must leave it at 1.
  Quantity lot = 1;
  // Required for a limit `gtd` order: the order is cancelled once time reaches it.
  std::optional<Timestamp> expiry;
  // Buys only: an opaque handle of the order's constraint, 0 for none. When nonzero the
  // book asks its EligibilityOracle before trading this buy with a sell.
  uint32_t constraint = 0;
  // Sells only: an opaque handle of the machine whose capacity backs the sell.
  uint64_t machine = 0;
};

// Replace: a new price and/or a new remaining quantity for a resting order.
struct ReplaceRequest {
  OrderId id = 0;
  std::optional<PriceMicros> price;
  std::optional<Quantity> quantity;
};

// A resting order, as shown to callers (and to the eligibility oracle).
struct OrderView {
  OrderId id;
  AccountId account;
  Side side;
  TimeInForce tif;
  PriceMicros price;
  Quantity remaining;
  Quantity lot;
  Timestamp expiry;  // Meaningful for gtd only.
  uint32_t constraint;
  uint64_t machine;
};

// The seam through which job constraints (the discovery query language) decide whether a
// constrained buy may trade with a given sell. Called only for buys with constraint != 0.
// Must be a pure function of its arguments: the engine's determinism depends on it.
class EligibilityOracle {
 public:
  virtual ~EligibilityOracle() = default;
  virtual bool CanTrade(const OrderView& buy, const OrderView& sell) const = 0;
};

}  // namespace ocx::engine
