#include "src/base/json.h"

#include <cstring>
#include <vector>

namespace ocx::base {
namespace {

// The DOM builder of nlohmann (json_sax_dom_parser) with two checks added as values arrive:
// the nesting depth and duplicate keys. Returning false from a SAX event stops the parse.
class StrictDomBuilder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  StrictDomBuilder(Json* root, size_t depth_max)
      : builder_(*root, /*allow_exceptions=*/false), depth_max_(depth_max) {}

  bool null() { return Value() && builder_.null(); }
  bool boolean(bool v) { return Value() && builder_.boolean(v); }
  bool number_integer(number_integer_t v) { return Value() && builder_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return Value() && builder_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) {
    return Value() && builder_.number_float(v, s);
  }
  bool string(string_t& v) { return Value() && builder_.string(v); }
  bool binary(binary_t& v) { return Value() && builder_.binary(v); }

  bool start_object(std::size_t length) {
    if (!Value() || !Enter()) return false;
    keys_.emplace_back();
    return builder_.start_object(length);
  }
  bool key(string_t& k) {
    std::vector<std::string>& seen = keys_.back();
    for (const std::string& s : seen) {
      if (s == k) {
        error_ = JsonParseError::kDuplicateKey;
        message_ = "The key '" + k + "' appears twice in one object.";
        return false;
      }
    }
    seen.push_back(k);
    return builder_.key(k);
  }
  bool end_object() {
    keys_.pop_back();
    --depth_;
    return builder_.end_object();
  }
  bool start_array(std::size_t length) {
    if (!Value() || !Enter()) return false;
    return builder_.start_array(length);
  }
  bool end_array() {
    --depth_;
    return builder_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& exception) {
    if (error_ == JsonParseError::kNone) {
      error_ = JsonParseError::kSyntax;
      message_ = exception.what();
    }
    return false;
  }

  JsonParseError error() const { return error_; }
  const std::string& message() const { return message_; }

 private:
  bool Value() { return true; }
  bool Enter() {
    if (++depth_ > depth_max_) {
      error_ = JsonParseError::kTooDeep;
      message_ = "The document nests arrays and objects deeper than " +
                 std::to_string(depth_max_) + " levels.";
      return false;
    }
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<Json> builder_;
  const size_t depth_max_;
  size_t depth_ = 0;
  // The keys of each object being read, innermost last. Linear search: objects from outside
  // are small, and the body size bounds the total work.
  std::vector<std::vector<std::string>> keys_;
  JsonParseError error_ = JsonParseError::kNone;
  std::string message_;
};

}  // namespace

JsonParseResult ParseJsonStrict(std::string_view text, Json* out, size_t depth_max) {
  *out = Json();
  JsonParseResult result;
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) {
    result.error = JsonParseError::kSyntax;
    result.message = "The text holds a NUL byte.";
    return result;
  }
  Json parsed;
  StrictDomBuilder builder(&parsed, depth_max);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
  } catch (const std::exception& e) {
    // The DOM builder throws on sizes past max_size() even when told not to; nothing else.
    result.error = JsonParseError::kSyntax;
    result.message = e.what();
    return result;
  }
  if (!ok || builder.error() != JsonParseError::kNone) {
    result.error = builder.error() == JsonParseError::kNone ? JsonParseError::kSyntax
                                                            : builder.error();
    result.message = builder.message().empty() ? "The text is not JSON." : builder.message();
    return result;
  }
  *out = std::move(parsed);
  return result;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace ocx::base
