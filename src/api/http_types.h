// The API's view of an HTTP exchange, independent of Boost.Beast: the server (http_server.cc)
// parses into HttpRequest and writes out HttpResponse, so routing, authentication and JSON
// handling compile and test without Beast.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ocx::api {

struct HttpRequest {
  std::string method;                          // Upper case: GET, POST, ...
  std::string target;                          // As sent: path and query.
  std::string path;                            // Percent-decoded path, without the query.
  std::map<std::string, std::string> query;    // Decoded query parameters (last one wins).
  std::map<std::string, std::string, std::less<>> headers;  // Names in lower case.
  std::string body;
  std::string remote_address;
  // The value of a header by its lower-case name; empty when absent. Valid while the
  // request is.
  const std::string& Header(std::string_view name) const {
    static const std::string kAbsent;
    const auto it = headers.find(name);
    return it == headers.end() ? kAbsent : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // Extra headers.
};

// Delivers the response; may be called from any thread, exactly once.
using Respond = std::function<void(HttpResponse)>;

// Splits a request target into a decoded path and query parameters. False when the
// percent-encoding is malformed or the path holds a NUL.
bool ParseTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query);

}  // namespace ocx::api
