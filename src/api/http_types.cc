#include "src/api/http_types.h"

#include "src/base/utf8.h"

namespace ocx::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Decode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int high = HexValue(in[i + 1]);
      const int low = HexValue(in[i + 2]);
      if (high < 0 || low < 0) return false;
      c = static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return false;
    out->push_back(c);
  }
  // Decoded text goes into answers and messages: it must be text.
  return base::IsValidUtf8(*out);
}

}  // namespace

bool ParseTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query) {
  path->clear();
  query->clear();
  const size_t question = target.find('?');
  if (!Decode(target.substr(0, question), false, path) || path->empty() || (*path)[0] != '/') {
    path->clear();
    return false;
  }
  if (question == std::string_view::npos) return true;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    if (query->size() >= kQueryParametersMax) {
      path->clear();
      return false;
    }
    const size_t equals = pair.find('=');
    std::string key, value;
    if (!Decode(pair.substr(0, equals), true, &key) ||
        (equals != std::string_view::npos && !Decode(pair.substr(equals + 1), true, &value))) {
      path->clear();
      return false;
    }
    (*query)[key] = value;
  }
  return true;
}

}  // namespace ocx::api
