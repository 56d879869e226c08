// Helpers for the API integration tests: the real `ocx exchange` binary as a child process,
// a thin JSON client that keeps every answer (status, parsed body) for assertions, account
// and machine set-up, pagination, ledger checks, WebSocket receive-with-deadline and a raw
// socket for requests the client library refuses to send (oversized headers and bodies).
//
// Everything talks to 127.0.0.1 on a port the server picked itself (--port 0 --port-file).
// No helper sleeps for a fixed time: waits poll a condition until a deadline.
//
// Thread-safety: ExchangeProcess is used from the test thread only. ApiClient, like the
// HttpClient it wraps, is one per thread. The free functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/protocol/identity.h"
#include "src/base/testing/temp_dir.h"
#include "src/client/http_client.h"
#include "src/client/websocket_client.h"

namespace ocx::api_test {

using Json = nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

// How long a server may take to start (write its port file) or to exit after a signal.
inline constexpr int64_t kServerStartDeadlineMs = 20'000;
inline constexpr int64_t kServerExitDeadlineMs = 20'000;
// How long a test waits for one expected WebSocket message.
inline constexpr int64_t kMessageDeadlineMs = 10'000;

// `ocx exchange` (the binary at base::testing::OcxBinary()) as a child process on a data directory.
// Owner: the test fixture. The destructor SIGKILLs and reaps a child still running, so a
// failed test never leaves a server behind.
class ExchangeProcess {
 public:
  // `root` (an existing directory) holds data/ (the data directory), the port file and the
  // server's stdout+stderr log, which survives restarts.
  explicit ExchangeProcess(std::string root);
  ~ExchangeProcess();
  ExchangeProcess(const ExchangeProcess&) = delete;
  ExchangeProcess& operator=(const ExchangeProcess&) = delete;

  // Spawns the server and waits (kServerStartDeadlineMs) for its port file; then reads
  // operator.token. An error names the cause and ends with the log's tail.
  absl::Status Start();
  // Flags added to `ocx exchange ...` by the next Start (e.g. {"--web-dir", dir}).
  void SetExtraArguments(std::vector<std::string> arguments) {
    extra_arguments_ = std::move(arguments);
  }
  // SIGTERM, then waits for the exit. The exit code, or 128 + signal when a signal ended
  // it, or -1 when it did not exit in time (it is then SIGKILLed).
  int Stop();
  // SIGKILL and reap: a crash.
  void Kill();
  // Sends `signal` without waiting.
  void Signal(int signal);
  // Waits for the child to exit; same result as Stop().
  int Wait(int64_t deadline_ms = kServerExitDeadlineMs);

  bool running() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  const std::string& url() const { return url_; }
  const std::string& operator_token() const { return operator_token_; }
  std::string data_dir() const { return root_ + "/data"; }
  // The last `bytes` of the server's log (for failure messages).
  std::string LogTail(size_t bytes = 4000) const;

 private:
  std::string root_;
  std::vector<std::string> extra_arguments_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string url_;
  std::string operator_token_;
};

// One HTTP answer, kept whole for assertions. status 0: a transport error (in `raw`).
struct Reply {
  int status = 0;
  Json body;        // Parsed JSON; null when the body is empty or not JSON.
  std::string raw;  // The body as received (or the transport error).
  std::map<std::string, std::string> headers;  // Lower-case names.

  // A response header by lower-case name, "" when absent.
  std::string Header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The error code of an error body, "" when there is none.
  std::string ErrorCode() const;
  // True when the body is the documented error shape {"error":{"code","message"}} with
  // non-empty strings.
  bool IsErrorBody() const;
};
std::ostream& operator<<(std::ostream& out, const Reply& reply);

// A JSON client on one keep-alive connection, with an optional bearer token.
// Not thread-safe (one per thread).
class ApiClient {
 public:
  ApiClient(std::string url, std::string token = "");
  ~ApiClient();

  // Sends `body` as JSON unless it is null.
  Reply Call(std::string_view method, std::string_view target, const Json& body = Json(),
             const Headers& headers = {});
  // Sends raw bytes with this Content-Type (none when `content_type` is empty and the body
  // is empty).
  Reply Raw(std::string_view method, std::string_view target, std::string_view body,
            const Headers& headers = {}, std::string_view content_type = "application/json");
  // Call, and EXPECT the status; returns the body.
  Json Expect(int status, std::string_view method, std::string_view target,
              const Json& body = Json(), const Headers& headers = {});

  const std::string& token() const { return token_; }
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string token_;
  std::unique_ptr<client::HttpClient> http_;
};

struct AccountHandle {
  uint64_t id = 0;
  std::string name;
  std::string token;
};

struct MachineHandle {
  uint64_t id = 0;
  protocol::MachineKeyPair keys;
};

struct Balances {
  int64_t available = 0, held = 0, escrow = 0, earnings = 0;  // Micro-credits.
  int64_t Total() const { return available + held + escrow + earnings; }
  bool operator==(const Balances&) const = default;
};
std::ostream& operator<<(std::ostream& out, const Balances& b);

// Decimal string <-> micro-credits. An unparsable value fails the test and gives 0.
int64_t Micros(const Json& decimal_string);
std::string Credits(int64_t micros);

// A unique account name with this prefix (names are unique on an exchange).
std::string UniqueName(std::string_view prefix);

// Creates an account as the operator (role consumer, provider or operator); failures are
// reported through GoogleTest and give an id of 0.
AccountHandle CreateAccount(ApiClient& op, std::string_view role, std::string_view prefix = "acct");
// Deposits `amount` (a decimal string) as the operator.
void Deposit(ApiClient& op, uint64_t account, std::string_view amount);
// A provider machine with a fresh key pair and `cpu_slots` of capacity in the cpu market.
MachineHandle RegisterMachine(ApiClient& provider, int64_t cpu_slots);
// The balances of GET /v1/accounts/{id} (as its owner or the operator).
Balances GetBalances(ApiClient& client, uint64_t account);

// A limit order body.
Json BuyOrder(std::string_view price, int64_t quantity, int64_t max_hours = 1);
Json SellOrder(std::string_view price, int64_t quantity, uint64_t machine);

// Every item of a paginated list (follows next_after), fails the test on an error.
std::vector<Json> ListAll(ApiClient& client, const std::string& target, size_t page_limit = 1000);

// The exact ledger checks that hold at any moment on a consistent exchange (operator's
// view), given the net amount deposited minus withdrawn over the exchange's life:
// - ledger entries across all accounts are numbered 1..N without a gap or a repeat;
// - each account's balances are the sum of its ledger entries, and never negative;
// - the sum of all account balances plus fees plus insurance equals the net deposits, and
//   the world-outside balance is exactly minus the net deposits.
// `balances_out`, when given, receives each account's balances.
::testing::AssertionResult LedgerIsBalanced(ApiClient& op, int64_t net_deposits_micros,
                                            std::map<uint64_t, Balances>* balances_out = nullptr);

// ---- WebSocket

std::unique_ptr<client::WebSocketClient> ConnectWebSocket(const std::string& url,
                                                          std::string_view target,
                                                          const std::string& token = "");
// The next message as JSON within the deadline; nullopt (with the reason in *why) when none
// came or the connection closed.
std::optional<Json> ReceiveJson(client::WebSocketClient& ws, int64_t timeout_ms,
                                std::string* why = nullptr);
// Receives until a message satisfies `match` (others are skipped); nullopt at the deadline.
std::optional<Json> ReceiveUntil(client::WebSocketClient& ws,
                                 const std::function<bool(const Json&)>& match,
                                 int64_t timeout_ms = kMessageDeadlineMs);
// A message of this "type" (skipping others).
std::optional<Json> ReceiveType(client::WebSocketClient& ws, std::string_view type,
                                int64_t timeout_ms = kMessageDeadlineMs);
// True when the server closes the connection (Receive returns a non-deadline error)
// before the deadline; messages before the close are skipped.
bool ClosedWithin(client::WebSocketClient& ws, int64_t timeout_ms);

// Connects to /v1/agent and answers the challenge for `machine` with `secret_key`. Returns
// the connection after the welcome (in *welcome), or nullptr with the failure reported.
std::unique_ptr<client::WebSocketClient> ConnectAgent(const std::string& url, uint64_t machine,
                                                      const std::string& secret_key,
                                                      Json* welcome = nullptr);

// ---- Raw sockets

// Sends `head` (request line and headers, ending in CRLF CRLF) and then `body_bytes` bytes
// of body, to 127.0.0.1:port, reading at the same time; returns what the server sent
// before closing or the deadline (a write error after the server answered is ignored).
std::string RawHttp(uint16_t port, const std::string& head, size_t body_bytes,
                    int64_t deadline_ms = 10'000);
// The status code of a raw HTTP response ("HTTP/1.1 431 ..."), 0 when there is none.
int RawStatus(const std::string& response);
// The body of a raw HTTP response (after the blank line), "" when there is none.
std::string RawBody(const std::string& response);

// Lowercase hex SHA-256 of `data` (blob names).
std::string Sha256Hex(std::string_view data);

// Milliseconds on a monotonic clock, for deadlines.
int64_t NowMs();

// ---- Fixture

// One fresh exchange per test: a temporary root, the server started on it, and a client
// holding the operator's token. TearDown stops the server (SIGKILL if it is stuck).
class ExchangeTest : public ::testing::Test {
 protected:
  // A consumer funded with `deposit` credits, a provider, and its machine with `slots` cpu
  // slots (registering counts as the machine's first heartbeat, so it may sell at once).
  struct Market {
    AccountHandle consumer;
    AccountHandle provider;
    MachineHandle machine;
  };

  void SetUp() override;
  void TearDown() override;

  Market MakeMarket(std::string_view deposit = "100", int64_t slots = 16);
  // A client with this account's token.
  std::unique_ptr<ApiClient> ClientFor(const AccountHandle& account) const;

  std::unique_ptr<base::testing::TempDir> dir_;
  std::unique_ptr<ExchangeProcess> server_;
  std::unique_ptr<ApiClient> op_;
};

}  // namespace ocx::api_test
