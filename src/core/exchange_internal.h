// What exchange.cc and exchange_jobs.cc share: the command context, named bounds and the
// arithmetic helpers of the state machine. Internal to src/core.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/hex.h"
#include "src/core/exchange.h"

namespace ocx::core {

struct Exchange::Ctx {
  ApplyOutput* out;
  std::vector<OrderId> touched;  // Orders whose engine events this command processed.
};

namespace internal {

using engine::EventType;
using engine::Side;

// Named bounds on amounts, so that every product below fits in int64 with room to spare.
inline constexpr Micros kAmountMax = Micros{1'000'000'000'000'000};  // 1e9 credits.
inline constexpr Quantity kCapacityMax = 1'000'000;
inline constexpr size_t kNameMax = 64;
inline constexpr size_t kClientOrderIdMax = 64;
inline constexpr size_t kAttributesMax = 64;
inline constexpr size_t kTokenHashHexLength = 64;  // BLAKE2b-256.
inline constexpr size_t kPublicKeyHexLength = 64;  // Ed25519, 32 bytes.
inline constexpr size_t kClientJobIdMax = 64;
inline constexpr std::string_view kJobOrderPrefix = "job:";

inline bool IsLowerHex(const std::string& text, size_t length) {
  return base::IsLowerHex(text, length);
}

inline Micros Cost(PriceMicros price, Quantity quantity, int64_t hours) {
  const __int128 cost = static_cast<__int128>(price) * quantity * hours;
  return cost > kAmountMax ? kAmountMax + 1 : static_cast<Micros>(cost);
}

inline Micros FeeOf(Micros amount, int32_t bps) {
  return static_cast<Micros>(static_cast<__int128>(amount) * bps / 10'000);
}

inline bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kNameMax) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

}  // namespace internal
}  // namespace ocx::core
