// JSON from outside, read strictly, and JSON written so that it never throws.
//
// nlohmann::json is the library; these are the only ways our code parses text from a client,
// an agent or a file into it, and writes it back out:
// - ParseJsonStrict: one value and nothing after it (a NUL byte ends nlohmann's input early,
//   so text holding one is refused up front), nesting bounded while parsing (a deep document
//   never gets built, and nothing recursive ever walks one), duplicate keys refused (two
//   readers of the same text must not see different values), UTF-8 checked by the lexer.
//   Never throws.
// - DumpJson: serializes with invalid UTF-8 replaced by U+FFFD instead of throwing (text in
//   answers can come from outside: a query, a path, a job's output).
// Typed field access on parsed objects lives with its users (api/fields.h); never call
// value() or get<T>() on untrusted input without checking the type first.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace ocx::base {

using Json = nlohmann::json;

// Named bound on how deeply arrays and objects may nest in a document from outside.
inline constexpr size_t kJsonDepthMax = 32;

enum class JsonParseError {
  kNone,
  kSyntax,        // Not JSON, or something after the value (a NUL byte included).
  kTooDeep,       // Nested deeper than the bound.
  kDuplicateKey,  // An object names the same key twice.
};

struct JsonParseResult {
  JsonParseError error = JsonParseError::kNone;
  std::string message;  // For people; empty when error is kNone.
  bool ok() const { return error == JsonParseError::kNone; }
};

// Parses `text` into *out (which is left null on error).
JsonParseResult ParseJsonStrict(std::string_view text, Json* out,
                                size_t depth_max = kJsonDepthMax);

// value.dump() that never throws: invalid UTF-8 in strings is replaced by U+FFFD.
std::string DumpJson(const Json& value);

}  // namespace ocx::base
