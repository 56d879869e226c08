// Every outcome of an engine command is an Event (RULEBOOK section 2). Domain outcomes such
// as a rejection are values, not errors (house style, kind 1).
#pragma once

#include <cstdint>
#include <string_view>

#include "src/engine/types.h"

namespace ocx::engine {

enum class EventType : uint8_t {
  kAccepted,   // A new order passed validation; trades and/or resting follow.
  kTrade,      // `id` (taker) traded `quantity` with `maker_id` at the maker's price.
  kCancelled,  // `quantity` of order `id` left the book or was not filled (see CancelReason).
  kRejected,   // The command changed nothing (see RejectReason).
  kReplaced,   // A resting order got a new price/quantity (`priority_kept` says which rule).
  kExpired,    // A gtd order reached its expiry; `quantity` is what was still open.
};

// Stable codes: they appear in replay output and the API, so never renumber or rename.
enum class RejectReason : uint8_t {
  kNone,
  kInvalidPrice,     // Not positive, or not a decimal with at most 6 fractional digits.
  kOffTick,          // Not a multiple of the market's tick.
  kInvalidQuantity,  // Not in 1..quantity_max.
  kInvalidLot,       // Lot below 1, or a lot on a sell.
  kLotMismatch,      // Quantity is not a multiple of the lot.
  kMissingExpiry,    // A gtd order without an expiry.
  kExpiryInPast,     // A gtd order whose expiry is not after the command's time.
  kDuplicateId,      // The id is already in use.
  kUnknownOrder,     // Cancel/replace of an order that is not resting (unknown or finished).
  kFokUnfillable,    // A fok order that other accounts' orders cannot fill completely now.
  kBookFull,         // The book holds BookConfig::resting_orders_max orders already.
};

enum class CancelReason : uint8_t {
  kNone,
  kRequested,       // A cancel command.
  kSelfTrade,       // A resting order reached by an order of the same account.
  kUnfilled,        // The remainder of an ioc or market order (or a market order that met
                    // nothing to trade against).
  kReplacedToZero,  // A replace with quantity 0.
};

enum class CommandKind : uint8_t { kNew, kCancel, kReplace };

struct Event {
  EventType type = EventType::kAccepted;
  CommandKind command = CommandKind::kNew;  // For kRejected: which command was refused.
  RejectReason reject = RejectReason::kNone;
  CancelReason cancel = CancelReason::kNone;
  bool priority_kept = false;        // kReplaced only.
  Side side = Side::kBuy;            // Side of order `id` (the taker's side for a trade).
  OrderId id = 0;                    // The order concerned; the taker for a trade.
  OrderId maker_id = 0;              // kTrade only.
  AccountId account = 0;             // Owner of `id`.
  AccountId maker_account = 0;       // kTrade only.
  PriceMicros price = 0;             // Trade price (the maker's), or the new price (kReplaced).
  Quantity quantity = 0;             // Traded, cancelled, expired, or new remaining quantity.
  uint64_t machine = 0;              // kTrade: the sell's machine.
};

// The stable snake_case code for a reason, as written in replay output and API errors.
std::string_view ReasonCode(RejectReason reason);
std::string_view ReasonCode(CancelReason reason);
// One sentence for people.
std::string_view ReasonMessage(RejectReason reason);

}  // namespace ocx::engine
