#include "src/api/fields.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "src/base/decimal.h"
#include "src/base/strings.h"
#include "src/core/types.h"

namespace ocx::api {

std::optional<Json> ParseJsonBody(const HttpRequest& request, HttpResponse* error) {
  // The media type, parameters (";charset=utf-8") aside, is application/json exactly:
  // "application/json-seq" or "application/jsonx" are other formats.
  std::string_view media_type = request.Header("content-type");
  media_type = media_type.substr(0, media_type.find(';'));
  while (!media_type.empty() && (media_type.back() == ' ' || media_type.back() == '\t')) {
    media_type.remove_suffix(1);
  }
  if (!base::EqualsIgnoreCase(media_type, "application/json")) {
    *error = Refuse(Refusal::kUnsupportedMediaType);
    return std::nullopt;
  }
  Json body;
  const base::JsonParseResult parsed = base::ParseJsonStrict(request.body, &body);
  if (!parsed.ok()) {
    *error = Refuse(Refusal::kInvalidJson, "The body is not valid JSON: " + parsed.message);
    return std::nullopt;
  }
  if (!body.is_object()) {
    *error = Refuse(Refusal::kInvalidJson, "The body must be a JSON object.");
    return std::nullopt;
  }
  return body;
}

std::optional<Json> ParseJsonMessage(std::string_view text, HttpResponse* error) {
  Json message;
  const base::JsonParseResult parsed = base::ParseJsonStrict(text, &message);
  if (!parsed.ok()) {
    *error = Refuse(Refusal::kInvalidMessage, "The message is not valid JSON: " + parsed.message);
    return std::nullopt;
  }
  if (!message.is_object()) {
    *error = Refuse(Refusal::kInvalidMessage, "A message is a JSON object.");
    return std::nullopt;
  }
  return message;
}

const Json* Fields::Find(const char* key) {
  seen_.emplace_back(key);
  const auto it = object_.find(key);
  return it == object_.end() || it->is_null() ? nullptr : &*it;
}

void Fields::Missing(const char* key) {
  if (refusal_ != Refusal::kNone) return;
  refusal_ = Refusal::kMissingField;
  message_ = std::string("The field '") + key + "' is required.";
}

void Fields::Invalid(const char* key, std::string_view what) {
  if (refusal_ != Refusal::kNone) return;
  refusal_ = Refusal::kInvalidField;
  message_ = std::string("The field '") + key + "' must be " + std::string(what) + ".";
}

bool Fields::Has(const char* key) { return Find(key) != nullptr; }

std::string Fields::Str(const char* key, bool required, size_t max_bytes) {
  const Json* v = Find(key);
  if (v == nullptr) {
    if (required) Missing(key);
    return {};
  }
  if (!v->is_string()) return Invalid(key, "a string"), std::string();
  const std::string& s = v->get_ref<const std::string&>();
  if (s.size() > max_bytes) {
    return Invalid(key, "a string of at most " + std::to_string(max_bytes) + " bytes"),
           std::string();
  }
  return s;
}

int64_t Fields::Int(const char* key, bool required, int64_t fallback, int64_t min, int64_t max) {
  const Json* v = Find(key);
  if (v == nullptr) {
    if (required) Missing(key);
    return fallback;
  }
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (v->is_number_unsigned()) {
    const uint64_t value = v->get<uint64_t>();
    if (value > static_cast<uint64_t>(max)) return Invalid(key, range), fallback;
    if (static_cast<int64_t>(value) < min) return Invalid(key, range), fallback;
    return static_cast<int64_t>(value);
  }
  if (v->is_number_integer()) {
    const int64_t value = v->get<int64_t>();
    if (value < min || value > max) return Invalid(key, range), fallback;
    return value;
  }
  return Invalid(key, range), fallback;
}

uint64_t Fields::Id(const char* key, bool required) {
  return static_cast<uint64_t>(Int(key, required, 0, 1, static_cast<int64_t>(kIdMax)));
}

bool Fields::Bool(const char* key, bool fallback) {
  const Json* v = Find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return Invalid(key, "true or false"), fallback;
  return v->get<bool>();
}

int64_t Fields::Money(const char* key, bool required) {
  const Json* v = Find(key);
  if (v == nullptr) {
    if (required) Missing(key);
    return 0;
  }
  if (!v->is_string()) {
    return Invalid(key, "a decimal string such as \"1.25\" (money is never a JSON number)"), 0;
  }
  const base::ParsedMicros parsed = base::ParseMicros(v->get_ref<const std::string&>());
  if (!parsed.ok()) return Invalid(key, "a decimal with at most 6 fractional digits"), 0;
  return parsed.micros;
}

const Json* Fields::Object(const char* key, bool required) {
  const Json* v = Find(key);
  if (v == nullptr) {
    if (required) Missing(key);
    return nullptr;
  }
  if (!v->is_object()) return Invalid(key, "an object"), nullptr;
  return v;
}

const Json* Fields::Array(const char* key, bool required) {
  const Json* v = Find(key);
  if (v == nullptr) {
    if (required) Missing(key);
    return nullptr;
  }
  if (!v->is_array()) return Invalid(key, "an array"), nullptr;
  return v;
}

const Json* Fields::Any(const char* key) { return Find(key); }

bool Fields::Finish() {
  if (refusal_ != Refusal::kNone) return false;
  for (const auto& [key, value] : object_.items()) {
    if (std::find(seen_.begin(), seen_.end(), key) == seen_.end()) {
      refusal_ = Refusal::kUnknownField;
      message_ = "The field '" + key + "' is not part of this request.";
      return false;
    }
  }
  return true;
}

HttpResponse Fields::Error() const { return Refuse(refusal_, message_); }

bool ParseUint(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

bool IdParam(const std::string& text, uint64_t* id, HttpResponse* error) {
  if (!ParseUint(text, id) || *id == 0 || *id > kIdMax) {
    *error = Refuse(Refusal::kBadRequest,
                    "The id in the path must be an integer from 1 to 9223372036854775807.");
    return false;
  }
  return true;
}

bool AccountIdParam(const std::string& text, uint64_t* id, HttpResponse* error) {
  if (!IdParam(text, id, error)) return false;
  if (*id > std::numeric_limits<core::AccountId>::max()) {
    *error = Refuse(Refusal::kUnknownAccount);
    return false;
  }
  return true;
}

bool PageParams(const HttpRequest& request, uint64_t* after, size_t* limit, HttpResponse* error) {
  *after = 0;
  *limit = kDefaultPageLimit;
  if (const auto it = request.query.find("after"); it != request.query.end()) {
    if (!ParseUint(it->second, after) || *after > kIdMax) {
      *error = Refuse(Refusal::kBadRequest,
                      "'after' must be an integer from 0 to 9223372036854775807.");
      return false;
    }
  }
  if (const auto it = request.query.find("limit"); it != request.query.end()) {
    uint64_t value = 0;
    if (!ParseUint(it->second, &value) || value < 1 || value > kPageLimitMax) {
      *error = Refuse(Refusal::kBadRequest, "'limit' must be an integer from 1 to 1000.");
      return false;
    }
    *limit = value;
  }
  return true;
}

}  // namespace ocx::api
