// How TOML configuration errors are worded, shared by every TOML file ocx reads (the
// exchange's config, src/api/server_config.cc; the provider's policy, src/agent/policy.cc).
// Header-only: its users link toml++ themselves; src/base does not.
#pragma once

#include <toml++/toml.h>

#include <charconv>
#include <string>
#include <string_view>

namespace ocx::base {

// "source:line:column: message", the form compilers use, so editors can jump to it.
inline std::string AtSource(const toml::source_region& region, std::string_view source_name,
                            std::string_view message) {
  std::string out(source_name);
  out += ':';
  out += std::to_string(region.begin.line);
  out += ':';
  out += std::to_string(region.begin.column);
  out += ": ";
  out += message;
  return out;
}

// The node's type as a sentence says it: "a string", "an integer", ...
inline std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Shortest decimal that reads back as `value` ("0.6", not to_string's "0.600000").
inline std::string FormatShortestDouble(double value) {
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (result.ec != std::errc()) return std::to_string(value);
  return std::string(buffer, result.ptr);
}

}  // namespace ocx::base
