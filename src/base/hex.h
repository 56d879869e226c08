// Lowercase hexadecimal, the one implementation (digests, keys, signatures, tokens, nonces).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ocx::base {

// Lowercase hex of `bytes` (two digits per byte).
std::string HexEncode(std::string_view bytes);
// The bytes of `hex` (lowercase digits only, an even count); false, leaving `out` unspecified,
// for anything else.
bool HexDecode(std::string_view hex, std::string* out);
// Whether `text` is exactly `digits` lowercase hex digits (0-9, a-f).
bool IsLowerHex(std::string_view text, size_t digits);

}  // namespace ocx::base
