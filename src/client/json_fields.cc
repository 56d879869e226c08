#include "src/client/json_fields.h"

#include <limits>

#include "src/base/json.h"

namespace ocx::client {

using Json = nlohmann::json;

std::optional<Json> ParseExchangeJson(std::string_view text) {
  Json parsed;
  if (!base::ParseJsonStrict(text, &parsed).ok()) return std::nullopt;
  return parsed;
}

const Json* FindField(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const Json* ObjectField(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  return field != nullptr && field->is_object() ? field : nullptr;
}

const Json* ArrayField(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  return field != nullptr && field->is_array() ? field : nullptr;
}

std::optional<std::string> StringField(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  if (field == nullptr || !field->is_string()) return std::nullopt;
  return field->get_ref<const std::string&>();
}

std::optional<bool> BoolField(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  if (field == nullptr || !field->is_boolean()) return std::nullopt;
  return field->get<bool>();
}

std::optional<int64_t> AsInt64(const Json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t n = value.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(n);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

std::optional<uint64_t> AsUint64(const Json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

std::optional<int64_t> Int64Field(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  return field == nullptr ? std::nullopt : AsInt64(*field);
}

std::optional<uint64_t> Uint64Field(const Json& object, std::string_view key) {
  const Json* field = FindField(object, key);
  return field == nullptr ? std::nullopt : AsUint64(*field);
}

}  // namespace ocx::client
