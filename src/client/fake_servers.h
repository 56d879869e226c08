// Fakes of the exchange's HTTP and WebSocket endpoints for tests: a tiny HTTP server with
// a handler the test supplies, and a tiny WebSocket server (an echo server, or a session the
// test scripts, with HTTP beside it on the same port: a whole fake exchange), on loopback
// (port 0), each serving every connection on its own thread, optionally over TLS with a
// self-signed certificate made at run time. Built as ocx_client_fakes (tests only) so the agent's
// and CLI's tests can reuse them; Beast stays inside fake_servers.cc.
//
// Thread-safety: the accessors may be called from the test thread while a server runs.
// Destruction stops the server: it wakes every blocked accept and read, then joins.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ocx::client {

struct TestCertificate {
  std::string cert_pem;  // Self-signed, CA, for DNS:localhost and IP:127.0.0.1.
  std::string key_pem;
};

// A fresh P-256 key and self-signed certificate valid for a day. Aborts on failure.
TestCertificate MakeSelfSignedCertificate();

// Writes `contents` to a new file under the test's temporary directory; returns its path.
std::string WriteTempFile(const std::string& name, const std::string& contents);

struct FakeRequest {
  std::string method;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;  // Keys lowercase.
};

struct FakeResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Bound on a request body the fakes read (uploads in tests are a few MiB).
inline constexpr uint64_t kFakeRequestBodyBytesMax = uint64_t{128} << 20;

struct FakeHttpServerOptions {
  // Reads requests and never answers them (for timeouts).
  bool never_answer = false;
  // Called with each request's header (the body not read yet, so empty). A response it
  // returns is written at once and the connection closed without reading the body, as the
  // exchange refuses an upload over its limits; the request is recorded without its body.
  std::function<std::optional<FakeResponse>(const FakeRequest&)> answer_before_body;
  // When > 0: on every connection, the request with this number (1 = the first) is read up
  // to its header and the connection is then closed without an answer, as happens when a
  // server's keep-alive timeout races the request. The dropped request is not recorded.
  int drop_request_number = 0;
  // Closes the connection after each response without announcing it (no Connection:
  // close), as a server does when a kept-alive connection times out.
  bool close_after_response = false;
  std::optional<TestCertificate> tls;
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;
  explicit FakeHttpServer(Handler handler, FakeHttpServerOptions options = {});
  ~FakeHttpServer();

  uint16_t port() const;
  std::string url() const;  // "http://127.0.0.1:<port>" (https with tls).
  int connections_accepted() const;
  std::vector<FakeRequest> requests() const;
  // Blocks until the server has closed at least `count` connections in total.
  void WaitForClosedConnections(int count) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The server's side of one accepted WebSocket connection, for a scripted session. Used only
// on the connection's own thread (FakeWebSocketServerOptions::session).
class FakeWebSocketConnection {
 public:
  virtual ~FakeWebSocketConnection() = default;
  // Sends one text message; false once the connection is gone.
  virtual bool Send(const std::string& text) = 0;
  // The next message from the client, waiting for it; nullopt once the connection is closed
  // (by the client, or by the server shutting down).
  virtual std::optional<std::string> Receive() = 0;
  // The upgrade request's target, e.g. "/v1/agent".
  virtual const std::string& target() const = 0;
};

struct FakeWebSocketServerOptions {
  // When set, the upgrade is refused with 401 and an API error body unless the request
  // carries "Authorization: Bearer <required_token>".
  std::string required_token;
  std::optional<TestCertificate> tls;
  // When set, each accepted connection is handed to it on the connection's thread instead of
  // the echo behaviour below; the connection closes when it returns.
  std::function<void(FakeWebSocketConnection&)> session;
  // When set, requests that are not WebSocket upgrades are answered by it, as FakeHttpServer
  // answers them (keep-alive included), so one port serves a fake exchange's REST API and
  // its WebSocket channels. Otherwise such a request ends the connection.
  std::function<FakeResponse(const FakeRequest&)> http;
};

// Echoes every message back, except these commands:
//   "close:<reason>"  closes with code 1000 (normal) and <reason>;
//   "drop"            drops the TCP connection without a close frame;
//   "mute"            stops reading (no pongs, no echo) until the client hangs up;
//   "push:<n>"        sends n text messages "0", "1", ..., "<n-1>".
class FakeWebSocketServer {
 public:
  explicit FakeWebSocketServer(FakeWebSocketServerOptions options = {});
  ~FakeWebSocketServer();

  uint16_t port() const;
  std::string url() const;  // "ws://127.0.0.1:<port>" (wss with tls).

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ocx::client
