// Typed reads of the fields of JSON that came from the exchange: its REST answers and its
// WebSocket messages. The exchange is a peer, not part of this process: a buggy or
// compromised one must not crash the agent or the CLI, so nothing is read from its JSON
// with nlohmann's value() or get<T>() unchecked (both throw on a type they did not expect).
// Each reader checks the type and the range and gives nullopt (or null) otherwise; callers
// decide whether a missing field is an error, a default, or a message to ignore.
//
// Parse the text with base::ParseJsonStrict (ParseExchangeJson below) first.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace ocx::client {

// `text` parsed strictly (base::ParseJsonStrict: one value, bounded depth, no duplicate keys,
// valid UTF-8); nullopt when it is not such a document.
std::optional<nlohmann::json> ParseExchangeJson(std::string_view text);

// The field `key` of `object`; null when `object` is not an object or has no such key.
const nlohmann::json* FindField(const nlohmann::json& object, std::string_view key);

// The field when it is an object (an array); null otherwise.
const nlohmann::json* ObjectField(const nlohmann::json& object, std::string_view key);
const nlohmann::json* ArrayField(const nlohmann::json& object, std::string_view key);

std::optional<std::string> StringField(const nlohmann::json& object, std::string_view key);
std::optional<bool> BoolField(const nlohmann::json& object, std::string_view key);
// An integer (not a float, not a string) that fits the type.
std::optional<int64_t> Int64Field(const nlohmann::json& object, std::string_view key);
std::optional<uint64_t> Uint64Field(const nlohmann::json& object, std::string_view key);

// The same for a value rather than a field.
std::optional<int64_t> AsInt64(const nlohmann::json& value);
std::optional<uint64_t> AsUint64(const nlohmann::json& value);

}  // namespace ocx::client
