// The HTTP/1.1 + WebSocket server of `ocx exchange` (Boost.Beast on Asio), with TLS when a
// certificate is configured. It only moves bytes: every request goes to the Api.
//
// Threads: `io_threads` threads run one io_context; each connection runs on its own strand,
// so a session's handlers never run concurrently. Responses may be produced on other threads
// (the sequencer's delivery thread delivers acknowledgements); they are posted to the
// session's strand before touching the socket.
//
// Limits: request headers (431), bodies per path (413, via Api::BodyLimitFor), WebSocket
// messages (close 1009), outbound WebSocket queue per connection (the connection is closed),
// connections (refused at accept), idle keep-alive connections (closed).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/api/api.h"

namespace ocx::api {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: the OS picks.
  int io_threads = 2;
  std::string tls_cert_file;  // PEM chain; TLS on when set (with the key).
  std::string tls_key_file;
  size_t header_bytes_max = 16 * 1024;
  size_t ws_message_bytes_max = 64 * 1024;
  size_t ws_outbound_messages_max = 4096;
  size_t connections_max = 10'000;
  int64_t idle_timeout_s = 60;
};

class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. Errors: the address cannot be bound, the
  // certificate or key cannot be loaded.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, Api* api);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  bool tls() const;
  // Stops accepting, gives requests in flight up to `grace_ms` to be answered, closes every
  // connection and joins the I/O threads. Idempotent.
  void Stop(int64_t grace_ms = 5000);

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocx::api
