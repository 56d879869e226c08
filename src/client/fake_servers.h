// Fakes of the exchange's HTTP and WebSocket endpoints for tests: a tiny HTTP server with
// a handler the test supplies, and a tiny WebSocket echo server, on loopback (port 0), each
// serving every connection on its own thread, optionally over TLS with a self-signed
// certificate made at run time. Built as ocx_client_fakes (tests only) so the agent's and
// CLI's tests can reuse them; Beast stays inside fake_servers.cc.
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

struct FakeHttpServerOptions {
  // Reads requests and never answers them (for timeouts).
  bool never_answer = false;
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

struct FakeWebSocketServerOptions {
  // When set, the upgrade is refused with 401 and an API error body unless the request
  // carries "Authorization: Bearer <required_token>".
  std::string required_token;
  std::optional<TestCertificate> tls;
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
