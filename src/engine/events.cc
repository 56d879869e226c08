#include "src/engine/events.h"

namespace ocx::engine {

std::string_view ReasonCode(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "none";
    case RejectReason::kInvalidPrice: return "invalid_price";
    case RejectReason::kOffTick: return "off_tick";
    case RejectReason::kInvalidQuantity: return "invalid_quantity";
    case RejectReason::kInvalidLot: return "invalid_lot";
    case RejectReason::kLotMismatch: return "lot_mismatch";
    case RejectReason::kMissingExpiry: return "missing_expiry";
    case RejectReason::kExpiryInPast: return "expiry_in_past";
    case RejectReason::kDuplicateId: return "duplicate_id";
    case RejectReason::kUnknownOrder: return "unknown_order";
    case RejectReason::kFokUnfillable: return "fok_unfillable";
    case RejectReason::kBookFull: return "book_full";
  }
  return "unknown";
}

std::string_view ReasonCode(CancelReason reason) {
  switch (reason) {
    case CancelReason::kNone: return "none";
    case CancelReason::kRequested: return "requested";
    case CancelReason::kSelfTrade: return "self_trade";
    case CancelReason::kUnfilled: return "unfilled";
    case CancelReason::kReplacedToZero: return "replaced_to_zero";
  }
  return "unknown";
}

std::string_view ReasonMessage(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "No rejection.";
    case RejectReason::kInvalidPrice:
      return "The price must be a positive decimal with at most 6 fractional digits.";
    case RejectReason::kOffTick: return "The price is not a multiple of the market's tick size.";
    case RejectReason::kInvalidQuantity:
      return "The quantity must be a whole number of slots from 1 to the market's maximum.";
    case RejectReason::kInvalidLot:
      return "The lot must be a positive whole number, and only buy orders may carry one.";
    case RejectReason::kLotMismatch: return "The quantity is not a multiple of the order's lot.";
    case RejectReason::kMissingExpiry: return "A gtd order needs an expiry time.";
    case RejectReason::kExpiryInPast: return "The gtd expiry is not after the current time.";
    case RejectReason::kDuplicateId: return "An order with this id already exists.";
    case RejectReason::kUnknownOrder: return "No resting order has this id (unknown or finished).";
    case RejectReason::kFokUnfillable:
      return "The fill-or-kill order cannot be filled completely at once; nothing happened.";
    case RejectReason::kBookFull: return "The order book is at its capacity of resting orders.";
  }
  return "Unknown reason.";
}

}  // namespace ocx::engine
