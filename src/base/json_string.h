// Appends text as a JSON string literal, escaped as nlohmann::json::dump() escapes it: ", \ and
// the control characters (\b \f \n \r \t by name, the rest as \u00xx in lowercase hex); every
// other byte as it is. The text must be valid UTF-8 (the caller's to check). Used where JSON is
// written by hand on a hot path: the journal's command encoding and the API's order answers.
#pragma once

#include <string>
#include <string_view>

namespace ocx::base {

inline void AppendJsonString(std::string* out, std::string_view text) {
  out->push_back('"');
  size_t run = 0;  // Start of the current stretch that needs no escaping.
  for (size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u >= 0x20 && u != '"' && u != '\\') continue;
    out->append(text.data() + run, i - run);
    run = i + 1;
    switch (u) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char escaped[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        out->append(escaped, sizeof escaped);
      }
    }
  }
  out->append(text.data() + run, text.size() - run);
  out->push_back('"');
}

}  // namespace ocx::base
