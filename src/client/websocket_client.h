// WebSocketClient: a synchronous WebSocket client (ws or wss) for the exchange's /v1/stream
// and /v1/agent channels.
//
// Mechanism: after a synchronous connect and handshake, a private I/O thread owns the Beast
// stream and runs its io_context; every operation on the stream happens on that thread, so
// Beast's own rule (one read, one write and one close at a time, never from two threads)
// holds by construction. The I/O thread keeps one read outstanding and feeds incoming data
// messages into a bounded inbox (kWebSocketInboxMessagesMax): when it is full, reading stops
// until Receive takes a message, so a slow consumer pushes back on the server instead of
// growing memory. Send and Close post their work to the I/O thread and wait for it.
//
// Thread-safety: Send, Receive and Close may be called from any threads at the same time
// (typically one thread blocked in Receive while others Send); sends from one thread go out
// in call order, and each message is delivered to exactly one Receive. The destructor must
// not run concurrently with any other call.
//
// Liveness: the connection is declared lost when nothing at all (not even a pong) arrived
// for options.timeout_ms; a ping is sent after half of that, so a quiet but healthy server
// is not mistaken for a dead one. options.timeout_ms also bounds the connect, the opening
// and closing handshakes, and each Send.
//
// Closing: Receive first hands out messages that arrived before the close, then returns
// Unavailable (the server closed, with its close code and reason, or the connection broke)
// or Cancelled (this client called Close). The destructor closes politely when still open,
// waiting at most kWebSocketCloseOnDestroyMs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/client/http_client.h"
#include "src/client/url.h"

namespace ocx::client {

// Bound on received messages waiting for Receive; reading pauses at this many.
inline constexpr size_t kWebSocketInboxMessagesMax = 1024;
// Bound on one received message; a larger one fails the connection. The exchange sends at
// most 64 KiB (docs/api.md); the margin is for a future larger snapshot.
inline constexpr size_t kWebSocketMessageBytesMax = size_t{4} << 20;
// How long the destructor waits for the closing handshake of a still open connection.
inline constexpr int64_t kWebSocketCloseOnDestroyMs = 1000;

class WebSocketClient {
 public:
  // Connects to `target` (appended to endpoint.base_path, e.g. "/v1/stream") and completes
  // the opening handshake; options.bearer_token, when set, is sent as Authorization. A
  // refused upgrade returns the Status for its HTTP status (StatusCodeForHttpStatus), e.g.
  // Unauthenticated for 401.
  static absl::StatusOr<std::unique_ptr<WebSocketClient>> Connect(const Endpoint& endpoint,
                                                                  std::string_view target,
                                                                  HttpClientOptions options = {});
  ~WebSocketClient();
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;

  // Sends one text message and waits until it is handed to the kernel. After the connection
  // closed, returns its closing status. DeadlineExceeded when the write did not complete
  // within timeout_ms: the connection is then closed, since a half-written frame cannot be
  // taken back.
  absl::Status Send(std::string_view text);

  // The next received message (text; a binary message is returned as its bytes). Waits at
  // most timeout_ms (<= 0: only takes what is already there) and returns DeadlineExceeded
  // when none came: the connection stays usable. Unavailable or Cancelled once the
  // connection is closed and every earlier message has been received.
  absl::StatusOr<std::string> Receive(int64_t timeout_ms);

  // Closing handshake (close code 1000), waiting at most timeout_ms for the server's answer.
  // OK when the connection was already closed. Messages still in the inbox stay receivable.
  absl::Status Close();

 private:
  class Impl;  // Holds the Beast types, so this header stays cheap to include.
  explicit WebSocketClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocx::client
