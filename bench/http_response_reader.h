// Frames HTTP/1.1 responses out of a byte stream, for the API benchmark's load generator
// (bench/api_workload.cc). The generator shares the machine's two cores with the exchange it
// measures, so it reads responses with as little work as it can: the status code, the
// Content-Length, the body, and whether the server will close the connection. Responses
// without a Content-Length (chunked, or ended by closing) are refused: the exchange always
// sends one.
//
// Not thread-safe: one reader per connection, used by the generator's one thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ocx::bench {

class HttpResponseReader {
 public:
  enum class State { kNeedMore, kComplete, kError };

  // Appends bytes read from the connection. Returns kComplete when a whole response is
  // buffered (read it, then call Consume), kError when the bytes are not a response this
  // reader can frame (see error()).
  State Append(const char* data, size_t size);
  // The state of what is buffered, without new bytes (after Consume, another response may
  // already be complete).
  State Parse();

  // Of the complete response.
  int status() const { return status_; }
  std::string_view body() const;
  bool closes() const { return closes_; }  // "Connection: close" was sent.

  // Drops the complete response, keeping any bytes after it.
  void Consume();

  const std::string& error() const { return error_; }

  // Named bound: a response head longer than this is refused (the exchange's are ~150 bytes).
  static constexpr size_t kHeadBytesMax = 16 * 1024;

 private:
  State Fail(std::string why);

  std::string buffer_;
  size_t head_bytes_ = 0;  // 0: the head is not parsed yet.
  size_t body_bytes_ = 0;
  int status_ = 0;
  bool closes_ = false;
  std::string error_;
};

}  // namespace ocx::bench
