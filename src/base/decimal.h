// Exact decimal <-> integer micro-unit conversion for prices and money.
// RULEBOOK section 1: prices and credits are decimal strings with at most 6 fractional
// digits, held as int64 micro-units. Never a floating-point number on this path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ocx::base {

inline constexpr int64_t kMicrosPerUnit = 1'000'000;
inline constexpr int kMaxFractionDigits = 6;

enum class DecimalError {
  kNone,
  kSyntax,          // not a decimal number at all ("abc", "1.", "", "1e3")
  kTooManyDigits,   // more than 6 fractional digits
  kOutOfRange,      // does not fit in int64 micro-units
};

struct ParsedMicros {
  int64_t micros = 0;
  DecimalError error = DecimalError::kNone;
  bool ok() const { return error == DecimalError::kNone; }
};

// Parses "-12.345678", "0.055", "7" into micro-units. Accepts an optional leading '-'
// (the caller decides whether negatives are allowed), digits, and an optional '.' followed
// by 1..6 digits. No exponents, no spaces, no '+'.
ParsedMicros ParseMicros(std::string_view text);

// Formats micro-units as the shortest exact decimal: 55000 -> "0.055", 2000000 -> "2",
// -1 -> "-0.000001".
std::string FormatMicros(int64_t micros);

// Appends FormatMicros(micros) to *out without a temporary string.
void AppendMicros(int64_t micros, std::string* out);

}  // namespace ocx::base
