// The API's view of an HTTP exchange, independent of Boost.Beast: the server (http_server.cc)
// parses into HttpRequest and writes out HttpResponse, so routing, authentication and JSON
// handling compile and test without Beast.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/base/unique_fd.h"

namespace ocx::api {

// A request body the server streamed into a file instead of memory (blob uploads): the file
// is the server's to remove unless the handler took it (renamed it away).
struct UploadedFile {
  std::string path;
  uint64_t size = 0;
  std::string sha256;  // Of the bytes, computed while they arrived.
};

struct HttpRequest {
  std::string method;                          // Upper case: GET, POST, ...
  std::string target;                          // As sent: path and query.
  std::string path;                            // Percent-decoded path (UTF-8), no query.
  std::map<std::string, std::string> query;    // Decoded parameters (UTF-8; last one wins).
  std::map<std::string, std::string, std::less<>> headers;  // Names in lower case.
  std::optional<uint64_t> content_length;      // As declared, when it was.
  std::string body;
  std::optional<UploadedFile> upload;          // Instead of `body`, for streamed uploads.
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
  // Instead of `body`: a file sent from its start, `body_file_size` bytes (blob downloads,
  // streamed rather than read into memory).
  std::shared_ptr<base::UniqueFd> body_file;
  uint64_t body_file_size = 0;
};

// Delivers the response; may be called from any thread, exactly once.
using Respond = std::function<void(HttpResponse)>;

// Named bound on the query parameters of one request.
inline constexpr size_t kQueryParametersMax = 64;

// Splits a request target into a decoded path and query parameters. False when the
// percent-encoding is malformed, a decoded part is not UTF-8 or holds a NUL, or there are
// more than kQueryParametersMax parameters.
bool ParseTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query);

}  // namespace ocx::api
