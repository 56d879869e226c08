// The HTTP/1.1 + WebSocket server of `ocx exchange` (Boost.Beast on Asio), with TLS when a
// certificate is configured. It only moves bytes: every request goes to the Api.
//
// Threads: `io_threads` threads run one io_context; each connection runs on its own strand,
// so a session's handlers never run concurrently. Responses may be produced on other threads
// (the sequencer's delivery thread delivers acknowledgements); they are posted to the
// session's strand before touching the socket. Whatever a handler throws is caught on its I/O
// thread, logged with an incident id, and the thread goes on serving (a connection whose
// handler threw is closed).
//
// A request is admitted (Api::Admit) as soon as its header has arrived: a refused request's
// body is never read. An admitted body goes to memory, or for uploads straight into a file in
// the blob store's upload directory, hashed as it arrives (never whole in memory). A file
// answer (a blob download) is streamed from its file in chunks.
//
// Limits, each with a JSON answer where one can be sent: request headers (431), bodies per
// route (413), WebSocket messages (close 1009), the outbound WebSocket queue per connection in
// messages and in bytes (the connection is closed), connections in all (refused at accept),
// connections per address (429, then closed), idle keep-alive connections (closed), idle
// anonymous streams (closed, Api's WsHandler::IdleExpired). Past connections_max, up to
// agent_connections_reserved more connections are accepted for the agent channel only: a
// flood of other clients can never push provider machines offline.
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
  size_t ws_outbound_bytes_max = 8 << 20;
  size_t connections_max = 10'000;
  size_t connections_per_ip_max = 256;
  size_t agent_connections_reserved = 1000;
  int64_t idle_timeout_s = 60;
};

// What the server counts (for tests and metrics).
struct HttpServerCounts {
  size_t connections = 0;  // Open, agent channels included.
  size_t agents = 0;       // Open agent channels.
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
  HttpServerCounts counts() const;
  // Stops accepting, gives requests in flight up to `grace_ms` to be answered, closes every
  // connection and joins the I/O threads. Idempotent.
  void Stop(int64_t grace_ms = 5000);

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocx::api
