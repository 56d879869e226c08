// Reading what a client sent: a JSON body parsed strictly (base::ParseJsonStrict), an object's
// fields with their types and ranges checked, ids and pages from the path and the query.
// Every failure is a refusal (400) with a sentence naming the field; nothing here throws or
// reads a value without checking its type first.
// Thread-safe: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/api/errors.h"
#include "src/api/http_types.h"

namespace ocx::api {

// The request's body as a JSON object: 415 unsupported_media_type unless the content type is
// JSON, 400 invalid_json (with why) unless the body is one JSON object and nothing else.
std::optional<Json> ParseJsonBody(const HttpRequest& request, HttpResponse* error);
// Text (a WebSocket message) as one JSON object; 400 invalid_message otherwise.
std::optional<Json> ParseJsonMessage(std::string_view text, HttpResponse* error);

// Reads a JSON object's fields with types checked; remembers the first problem and, on
// Finish, refuses fields it was not asked about.
class Fields {
 public:
  explicit Fields(const Json& object) : object_(object) {}

  bool Has(const char* key);
  // A string of at most `max_bytes` bytes (valid UTF-8: the parser checked it).
  std::string Str(const char* key, bool required, size_t max_bytes = 256);
  // An integer in [min, max]; `fallback` when absent (or invalid: check Finish).
  int64_t Int(const char* key, bool required, int64_t fallback, int64_t min, int64_t max);
  // An id: an integer from 1 to 2^63 - 1.
  uint64_t Id(const char* key, bool required);
  bool Bool(const char* key, bool fallback);
  // A decimal string of credits ("1.25"): never a JSON number (it would pass through double).
  int64_t Money(const char* key, bool required);
  const Json* Object(const char* key, bool required);
  const Json* Array(const char* key, bool required);
  // Any JSON value (echoed back, such as a request id); nullptr when absent.
  const Json* Any(const char* key);
  // OK when every field was asked for and valid.
  bool Finish();
  // The refusal for the first problem (400 missing_field, invalid_field or unknown_field).
  HttpResponse Error() const;
  Refusal refusal() const { return refusal_; }
  const std::string& message() const { return message_; }

 private:
  const Json* Find(const char* key);
  void Missing(const char* key);
  void Invalid(const char* key, std::string_view what);

  const Json& object_;
  std::vector<std::string_view> seen_;  // Keys asked for (string literals of the callers).
  Refusal refusal_ = Refusal::kNone;
  std::string message_;
};

// A decimal integer of 1 to 19 digits, nothing else (no sign, no spaces).
bool ParseUint(std::string_view text, uint64_t* out);

// An id from the path: 1 to 2^63 - 1 (a larger one cannot name anything, and would not fit
// the signed ids of orders); 400 bad_request otherwise.
bool IdParam(const std::string& text, uint64_t* id, HttpResponse* error);
// An account id from the path: as IdParam; one past 32 bits is no account's (404
// unknown_account) rather than another account's once narrowed.
bool AccountIdParam(const std::string& text, uint64_t* id, HttpResponse* error);
// ?after= (an id, default 0) and ?limit= (1 to 1000, default 100).
bool PageParams(const HttpRequest& request, uint64_t* after, size_t* limit, HttpResponse* error);

// A page of a list: {"items":[to_json(row)...],"next_after":key(last row), or null when the
// page is not full (the last one)}.
template <typename Row, typename ToJson, typename Key>
Json PageJson(const std::vector<Row>& rows, size_t limit, ToJson to_json, Key key) {
  Json items = Json::array();
  for (const Row& row : rows) items.push_back(to_json(row));
  Json page{{"items", std::move(items)}};
  page["next_after"] = rows.size() == limit && !rows.empty() ? Json(key(rows.back())) : Json();
  return page;
}

inline constexpr size_t kDefaultPageLimit = 100;
inline constexpr size_t kPageLimitMax = 1000;
inline constexpr uint64_t kIdMax = static_cast<uint64_t>(INT64_MAX);

}  // namespace ocx::api
