#include "src/base/decimal.h"

#include <limits>

namespace ocx::base {

ParsedMicros ParseMicros(std::string_view text) {
  ParsedMicros result;
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && text[pos] == '-') {
    negative = true;
    ++pos;
  }
  const size_t integer_start = pos;
  // Accumulate as a negative number so that INT64_MIN-adjacent values do not overflow
  // before the sign is applied.
  constexpr int64_t kLimit = std::numeric_limits<int64_t>::min();
  int64_t value = 0;
  auto accumulate = [&](char c) -> bool {
    const int digit = c - '0';
    if (value < (kLimit + digit) / 10) return false;
    value = value * 10 - digit;
    return true;
  };
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    if (!accumulate(text[pos])) return {0, DecimalError::kOutOfRange};
    ++pos;
  }
  if (pos == integer_start) return {0, DecimalError::kSyntax};
  int fraction_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const size_t fraction_start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (fraction_digits == kMaxFractionDigits) {
        // Keep scanning so that "1.2345678x" is a syntax error rather than a digit error.
        ++pos;
        continue;
      }
      if (!accumulate(text[pos])) return {0, DecimalError::kOutOfRange};
      ++fraction_digits;
      ++pos;
    }
    if (pos == fraction_start) return {0, DecimalError::kSyntax};
    if (pos != text.size()) return {0, DecimalError::kSyntax};
    if (pos - fraction_start > static_cast<size_t>(kMaxFractionDigits)) {
      return {0, DecimalError::kTooManyDigits};
    }
  }
  if (pos != text.size()) return {0, DecimalError::kSyntax};
  for (int i = fraction_digits; i < kMaxFractionDigits; ++i) {
    if (value < kLimit / 10) return {0, DecimalError::kOutOfRange};
    value *= 10;
  }
  if (!negative) {
    if (value == kLimit) return {0, DecimalError::kOutOfRange};
    value = -value;
  }
  result.micros = value;
  return result;
}

void AppendMicros(int64_t micros, std::string* out) {
  // Work on the unsigned magnitude so that INT64_MIN formats correctly.
  uint64_t magnitude = micros < 0 ? 0 - static_cast<uint64_t>(micros) : micros;
  if (micros < 0) out->push_back('-');
  const uint64_t whole = magnitude / kMicrosPerUnit;
  uint64_t fraction = magnitude % kMicrosPerUnit;
  char digits[24];
  int n = 0;
  uint64_t w = whole;
  do {
    digits[n++] = static_cast<char>('0' + w % 10);
    w /= 10;
  } while (w != 0);
  while (n > 0) out->push_back(digits[--n]);
  if (fraction == 0) return;
  int width = kMaxFractionDigits;
  while (fraction % 10 == 0) {
    fraction /= 10;
    --width;
  }
  out->push_back('.');
  char frac[kMaxFractionDigits];
  for (int i = width - 1; i >= 0; --i) {
    frac[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  out->append(frac, width);
}

std::string FormatMicros(int64_t micros) {
  std::string out;
  AppendMicros(micros, &out);
  return out;
}

}  // namespace ocx::base
