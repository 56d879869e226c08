// String helpers shared by modules that build messages (journal, client). The Abseil build
// we use has its own absl::string_view (not std::string_view), which absl::StrCat and the
// absl ASCII helpers insist on; these take std::string_view so callers need no conversions.
#pragma once

#include <concepts>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"

namespace ocx::base {

inline void AppendPiece(std::string* out, std::string_view piece) { out->append(piece); }
inline void AppendPiece(std::string* out, const char* piece) { out->append(piece); }
inline void AppendPiece(std::string* out, const std::string& piece) { out->append(piece); }
inline void AppendPiece(std::string* out, absl::string_view piece) {
  out->append(piece.data(), piece.size());
}
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void AppendPiece(std::string* out,
                                                                            T value) {
  out->append(std::to_string(value));
}

// Concatenates strings, string views (std and absl) and integers.
template <typename... Pieces>
std::string Cat(const Pieces&... pieces) {
  std::string out;
  (AppendPiece(&out, pieces), ...);
  return out;
}

inline std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  return out;
}

inline std::string AsciiUpper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = absl::ascii_toupper(static_cast<unsigned char>(c));
  return out;
}

// ASCII case-insensitive equality, without copying either side (HTTP header names are
// compared on every request).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace ocx::base
