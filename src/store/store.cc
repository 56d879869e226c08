#include "src/store/store.h"

namespace ocx::store {

std::string_view OrderStatusName(OrderStatus status) {
  switch (status) {
    case OrderStatus::kOpen:
      return "open";
    case OrderStatus::kFilled:
      return "filled";
    case OrderStatus::kCancelled:
      return "cancelled";
    case OrderStatus::kExpired:
      return "expired";
  }
  return "unknown";
}

std::string_view LeaseStatusName(LeaseStatus status) {
  switch (status) {
    case LeaseStatus::kActive:
      return "active";
    case LeaseStatus::kEnded:
      return "ended";
  }
  return "unknown";
}

}  // namespace ocx::store
