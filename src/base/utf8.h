// UTF-8 (RFC 3629) checks for text that comes from outside: no overlong forms, no
// surrogates, nothing past U+10FFFF. The one implementation every module uses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ocx::base {

// Length of the well-formed UTF-8 character at text[i] (1 to 4), or 0 when the bytes there
// are not one (including a sequence cut off by the end of `text`). Requires i < size.
size_t Utf8CharLength(std::string_view text, size_t i);

bool IsValidUtf8(std::string_view text);

// `bytes` as valid UTF-8: every byte that does not start a well-formed character becomes
// U+FFFD (so a character split across two chunks is replaced too).
std::string ToValidUtf8(std::string_view bytes);

// Whether `text` holds a control character (U+0000..U+001F or U+007F): refused in names,
// labels and attribute values, which are printed in listings and terminals.
bool HasControlCharacter(std::string_view text);

}  // namespace ocx::base
