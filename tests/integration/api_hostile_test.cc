// A hostile client against the real `ocx exchange`: every route of Api::Routes() (the table
// the server dispatches on, iterated here, so a route added later is covered without editing
// this file), every op of /v1/stream and every message type of /v1/agent, fed what a client
// that wants to break a server sends: fields of the wrong JSON type, numbers past every range,
// text that is not UTF-8, NUL bytes, nesting 10,000 deep, duplicate and unknown keys, bodies
// over the limit, Content-Lengths that lie, connections closed mid-request, garbage request
// lines and headers, overflowing ids in paths, the wrong Content-Type, huge query strings,
// hostile WebSocket frames. Each class is listed explicitly; a seeded generator adds random
// combinations (its seed is printed with every failure; OCX_HOSTILE_SEED picks another).
//
// After every request or message:
// - the exchange still answers (GET /healthz 200) and serves an account (GET /v1/me 200);
// - an HTTP answer is never 5xx, and never missing when the request was complete; a refusal
//   is {"error":{"code","message"}} (Content-Type application/json) whose code is in the
//   refusal table (protocol::RefusalFromCode) and whose status is the table's for it; a
//   WebSocket refusal is {"type":"error","error":{"code","message"}};
// - nothing changed: the durable sequence did not move for a refusal made before the core
//   (400/401/405/413/415/426/429/431, 404 not_found); every state change goes through a
//   journaled command, so an unmoved sequence means balances, orders, the book and the
//   ledger are as they were. When it did move (a 403/404/409/422 the core decided), the
//   balances of every account, the open orders, the book, the leases and the whole ledger
//   (GET /v1/ledger) are compared with the snapshot taken in SetUp; so they are after every
//   test, with LedgerIsBalanced.
//
// The exchange runs with no clock ticks during a test (tick_interval_ms = 60 s: a tick is a
// journaled command and would move the sequence) and with rate limits out of the way, except
// in the starvation tests, which configure small limits to show them working: an anonymous
// flood (429), too many connections from one address (429), a full server (503) that still
// takes agents, an idle anonymous stream (closed), a WebSocket client that never reads
// (disconnected).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "src/api/api.h"
#include "src/protocol/identity.h"
#include "src/protocol/refusal.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

using api::Route;

// ------------------------------------------------------------------ limits and configuration

// A complete request is answered within this, and an incomplete one (the client half-closed)
// ends within it: longer is a wedged exchange.
constexpr int64_t kAnswerDeadlineMs = 10'000;
// What a route without a body may still send (src/api/api.cc, kNoBodyBytesMax).
constexpr uint64_t kNoBodyBytesMax = 1024;
// [limits] body_bytes_max: the default.
constexpr uint64_t kBodyBytesMax = 1 << 20;
// [limits] blob_bytes_max as kHostileConfig sets it (so that an upload past it is cheap).
constexpr uint64_t kBlobBytesMax = 1 << 20;
// [limits] ws_message_bytes_max: the default.
constexpr size_t kWsMessageBytesMax = 64 * 1024;
// What SetUp deposits (MakeMarket's "100").
constexpr int64_t kNetDepositsMicros = 100'000'000;
// The seeded generator's default seed (OCX_HOSTILE_SEED overrides it).
constexpr uint64_t kDefaultSeed = 0x0c5e'ed00'4057'11e5;

const char kHostileConfig[] = R"(
[core]
tick_interval_ms = 60000

[limits]
rate_per_second = 1000000.0
rate_burst = 1000000.0
anonymous_rate_per_second = 1000000.0
anonymous_rate_burst = 1000000.0
signup_rate_per_second = 1000000.0
signup_rate_burst = 1000000.0
blob_bytes_max = 1048576
)";

uint64_t Seed() {
  const char* text = std::getenv("OCX_HOSTILE_SEED");
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 0) : kDefaultSeed;
}

// Bytes as text for messages: printable ASCII as is, the rest \xNN; long text cut.
std::string Printable(std::string_view bytes, size_t max = 300) {
  std::string out;
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes.size() && out.size() < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (out.size() >= max) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

std::string Repeat(std::string_view unit, size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (size_t i = 0; i < times; ++i) out += unit;
  return out;
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// ------------------------------------------------------------------ raw TCP

// A blocking TCP connection to 127.0.0.1:port; -1 when it cannot connect. `source`: the local
// address to connect from (another loopback address is another client address); `rcvbuf` and
// `maxseg`, when set, shrink what the kernel buffers for this client.
int ConnectTcp(uint16_t port, const char* source = nullptr, int rcvbuf = 0, int maxseg = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (maxseg > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &maxseg, sizeof(maxseg));
  if (source != nullptr) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads what is there within `timeout_ms` (0: only what already arrived) into *out. False
// when the connection ended (EOF or reset).
bool ReadSome(int fd, std::string* out, int64_t timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, timeout_ms))) <= 0) return true;
  char buffer[16384];
  const ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
  if (n > 0) {
    out->append(buffer, static_cast<size_t>(n));
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EINTR);
}

struct Exchanged {
  bool connected = false;
  bool ended = false;  // The server closed (or reset) the connection before the deadline.
  std::string received;
};

// Sends `request` on a fresh connection, half-closes it (so the exchange sees the end of
// everything it will get) and reads until the exchange closes the connection or the
// deadline passes. A write the exchange cut short (it answered and closed first) is fine.
Exchanged ExchangeBytes(uint16_t port, std::string_view request,
                        int64_t deadline_ms = kAnswerDeadlineMs) {
  Exchanged result;
  const int fd = ConnectTcp(port);
  if (fd < 0) return result;
  result.connected = true;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  bool writing = true;
  if (request.empty()) {
    ::shutdown(fd, SHUT_WR);
    writing = false;
  }
  const int64_t deadline = NowMs() + deadline_ms;
  while (NowMs() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, deadline - NowMs()))) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[16384];
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        result.received.append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        result.ended = true;
        break;
      }
    }
    if (writing && (p.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, request.data() + sent,
                               std::min<size_t>(request.size() - sent, 256 * 1024), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) writing = false;  // The server closed.
      if (sent == request.size()) {
        ::shutdown(fd, SHUT_WR);
        writing = false;
      }
    }
  }
  ::close(fd);
  return result;
}

// ------------------------------------------------------------------ HTTP responses

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
  std::string Header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Splits what the exchange sent into HTTP responses; false (with *why) when some of it is not
// a well-formed response.
bool ParseResponses(std::string_view bytes, std::vector<Response>* out, std::string* why) {
  while (!bytes.empty()) {
    if (!bytes.starts_with("HTTP/1.")) {
      *why = "bytes that are not an HTTP response: " + Printable(bytes, 200);
      return false;
    }
    const size_t head_end = bytes.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      *why = "a truncated response head: " + Printable(bytes, 200);
      return false;
    }
    Response response;
    const std::string_view head = bytes.substr(0, head_end);
    if (head.size() < 12) {
      *why = "a short status line: " + Printable(head);
      return false;
    }
    response.status = std::atoi(std::string(head.substr(9, 3)).c_str());
    size_t line = head.find("\r\n");
    while (line != std::string_view::npos) {
      const size_t start = line + 2;
      const size_t end = head.find("\r\n", start);
      const std::string_view field = head.substr(start, end == std::string_view::npos
                                                            ? std::string_view::npos
                                                            : end - start);
      const size_t colon = field.find(':');
      if (colon != std::string_view::npos) {
        std::string name(field.substr(0, colon));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = field.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        response.headers[name] = std::string(value);
      }
      line = end;
    }
    bytes.remove_prefix(head_end + 4);
    const bool bodiless =
        response.status / 100 == 1 || response.status == 204 || response.status == 304;
    if (!bodiless) {
      const std::string length = response.Header("content-length");
      if (length.empty()) {
        *why = "a response without Content-Length (status " + std::to_string(response.status) +
               ")";
        return false;
      }
      const size_t size = std::strtoull(length.c_str(), nullptr, 10);
      if (bytes.size() < size) {
        *why = "a truncated response body (status " + std::to_string(response.status) + ")";
        return false;
      }
      response.body = std::string(bytes.substr(0, size));
      bytes.remove_prefix(size);
    }
    const bool upgraded = response.status == 101;
    out->push_back(std::move(response));
    if (upgraded) break;  // What follows is WebSocket frames.
  }
  return true;
}

// Whether `body` is a refusal as docs/api.md specifies it, for this status.
::testing::AssertionResult IsRefusal(const Response& response) {
  if (!response.Header("content-type").starts_with("application/json")) {
    return ::testing::AssertionFailure()
           << "Content-Type '" << response.Header("content-type") << "' is not JSON";
  }
  const Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || body.size() != 1 || !body.contains("error") ||
      !body["error"].is_object()) {
    return ::testing::AssertionFailure() << "not {\"error\":{...}}: " << Printable(response.body);
  }
  const Json& error = body["error"];
  if (!error.contains("code") || !error["code"].is_string() ||
      error["code"].get<std::string>().empty() || !error.contains("message") ||
      !error["message"].is_string() || error["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure() << "no code and message: " << body.dump();
  }
  const std::string code = error["code"].get<std::string>();
  const auto refusal = protocol::RefusalFromCode(code);
  if (!refusal) return ::testing::AssertionFailure() << "code '" << code << "' is in no table";
  if (protocol::HttpStatus(*refusal) != response.status) {
    return ::testing::AssertionFailure() << "code '" << code << "' is "
                                         << protocol::HttpStatus(*refusal)
                                         << " in the table, answered with " << response.status;
  }
  return ::testing::AssertionSuccess();
}

std::string CodeOf(const Response& response) {
  const Json body = Json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) return "";
  const Json& code = body["error"]["code"];
  return code.is_string() ? code.get<std::string>() : "";
}

// Whether a refusal with this status (and code) was decided before the core: then the durable
// sequence must not move. A 403, 404 of a resource, 409 or 422 may come from the core, which
// journals the command it refused.
bool DecidedBeforeCore(int status, std::string_view code) {
  switch (status) {
    case 400: case 401: case 405: case 411: case 413: case 415: case 426: case 429: case 431:
      return true;
    case 404:
      return code == "not_found" || code == "dashboard_not_built";
    default:
      return false;
  }
}

// The table status of a WebSocket error code (0 when unknown).
int StatusOfCode(std::string_view code) {
  const auto refusal = protocol::RefusalFromCode(code);
  return refusal ? protocol::HttpStatus(*refusal) : 0;
}

// Whether `m` is {"type":"error","error":{"code","message"}} with a code of the table.
::testing::AssertionResult IsErrorMessage(const Json& m) {
  if (!m.is_object() || !m.contains("type") || m["type"] != "error" || !m.contains("error") ||
      !m["error"].is_object()) {
    return ::testing::AssertionFailure() << "not an error message: " << m.dump();
  }
  const Json& error = m["error"];
  if (!error.contains("code") || !error["code"].is_string() || !error.contains("message") ||
      !error["message"].is_string() || error["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure() << "no code and message: " << m.dump();
  }
  if (!protocol::RefusalFromCode(error["code"].get<std::string>())) {
    return ::testing::AssertionFailure() << "code not in the table: " << m.dump();
  }
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------------ HTTP requests

// A request as bytes: request line, Host, Authorization (with a token), Content-Type (when
// given), Content-Length (the body's, or `length` when given; none for an empty body without
// `length`), extra header lines (raw, without CRLF), Connection: close (unless keep_alive),
// the blank line and the body.
struct RequestSpec {
  std::string method;
  std::string target;
  std::string token;
  std::string content_type;
  std::string body;
  std::vector<std::string> lines;
  std::optional<std::string> length;
  bool keep_alive = false;
  bool no_host = false;
};

std::string Head(const RequestSpec& r) {
  std::string head = r.method + " " + r.target + " HTTP/1.1\r\n";
  if (!r.no_host) head += "Host: 127.0.0.1\r\n";
  if (!r.token.empty()) head += "Authorization: Bearer " + r.token + "\r\n";
  if (!r.content_type.empty()) head += "Content-Type: " + r.content_type + "\r\n";
  if (r.length) {
    if (!r.length->empty()) head += "Content-Length: " + *r.length + "\r\n";
  } else if (!r.body.empty()) {
    head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  for (const std::string& line : r.lines) head += line + "\r\n";
  if (!r.keep_alive) head += "Connection: close\r\n";
  return head + "\r\n";
}

std::string Bytes(const RequestSpec& r) { return Head(r) + r.body; }

// What a hostile HTTP request may get.
struct Want {
  bool complete = true;    // The exchange had the whole request (or enough): it must answer.
  bool may_serve = false;  // A success is fine (a safe route; the hostile part is ignorable).
  int status = 0;          // Non-zero: the first answer's status.
  std::string code = "";   // Non-empty: the first answer's error code.
};

bool Safe(const Route& route) { return route.method == "GET" || route.method == "HEAD"; }

bool HasCaptures(const Route& route) { return route.pattern.find('{') != std::string::npos; }

// The pattern with every capture replaced by `value(name)`.
std::string Fill(const std::string& pattern,
                 const std::function<std::string(std::string_view)>& value) {
  std::string out;
  size_t at = 0;
  while (at < pattern.size()) {
    const size_t open = pattern.find('{', at);
    if (open == std::string::npos) {
      out += pattern.substr(at);
      break;
    }
    const size_t close = pattern.find('}', open);
    out += pattern.substr(at, open - at);
    out += value(std::string_view(pattern).substr(open + 1, close - open - 1));
    at = close + 1;
  }
  return out;
}

std::string RouteName(const Route& route) { return route.method + " " + route.pattern; }

// ------------------------------------------------------------------ hostile JSON values

// What a field holds, which says which values are certainly wrong for it.
enum class Kind {
  kEnum,      // One of a few words ("buy", "gtc"): wrong types, NUL, bad escapes, too long,
              // the word in capitals.
  kText,      // Bounded text (names, keys, markets): wrong types, NUL, bad escapes, too long.
  kArg,       // Unbounded text that cannot hold NUL (argv, env values): wrong types, NUL.
  kFreeText,  // Any string at all (task output): wrong types only.
  kMoney,     // A decimal string of credits.
  kQuery,     // A discovery query (docs/formats/query.md).
  kInt,       // An integer in a range that has no room for the values below.
  kNumber,    // A machine attribute's number (6 fractional digits at most).
  kAttribute, // A machine attribute's value: bounded text or such a number.
  kObject,
  kArray,
  kBool,
  kAny,  // Any JSON value (a request id, echoed): only what does not parse.
};

struct Field {
  std::string pointer;  // JSON pointer into the template ("/order/price").
  Kind kind;
  bool required = false;
};

// A valid request body, the fields of it a client can get wrong, and more bodies that are
// wrong in ways a field-by-field list does not reach (nested structures, counts).
struct Template {
  Json body;
  std::vector<Field> fields;
  std::vector<std::pair<std::string, std::string>> extra = {};  // {label, raw JSON text}.
};

// A hostile value as raw JSON text; `invalid_utf8` when it holds bytes that are not UTF-8 (a
// WebSocket text frame with them may be failed by the protocol layer, RFC 6455 8.1).
struct Hostile {
  std::string label;
  std::string text;
  bool invalid_utf8 = false;
};

const std::string kDeepArrays = std::string(10'000, '[') + std::string(10'000, ']');

std::vector<Hostile> HostileValues(const Field& field, const Json& current) {
  std::vector<Hostile> v;
  auto add = [&](std::initializer_list<const char*> texts) {
    for (const char* t : texts) v.push_back({t, t});
  };
  auto not_strings = [&] {
    add({"1", "-1", "1.5", "true", "false", "[]", "{}", "[\"x\"]", "{\"a\":\"x\"}",
         "9223372036854775808", "18446744073709551616", "-9223372036854775809", "1e400",
         "-1e400"});
  };
  auto nul_strings = [&] { add({"\"\\u0000\"", "\"x\\u0000y\""}); };
  auto bad_escapes = [&] { add({"\"\\ud800\"", "\"x\\udc00\"", "\"\\uZZZZ\"", "\"\\x41\""}); };
  const std::string long_string = "\"" + std::string(5000, 'a') + "\"";
  switch (field.kind) {
    case Kind::kEnum:
      not_strings();
      nul_strings();
      bad_escapes();
      v.push_back({"5000 bytes", long_string});
      if (current.is_string()) {
        v.push_back({"in capitals", Json(Upper(current.get<std::string>()) + "").dump()});
        v.push_back({"with a space", Json(current.get<std::string>() + " ").dump()});
      }
      break;
    case Kind::kText:
      not_strings();
      nul_strings();
      bad_escapes();
      v.push_back({"5000 bytes", long_string});
      break;
    case Kind::kArg:
      not_strings();
      nul_strings();
      bad_escapes();
      break;
    case Kind::kFreeText:
      not_strings();
      bad_escapes();
      break;
    case Kind::kMoney:
      not_strings();
      nul_strings();
      bad_escapes();
      add({"\"-1\"", "\"0\"", "\"-0.000001\"", "\"1e3\"", "\"0x10\"", "\"9223372036854775808\"",
           "\"18446744073709551616\"", "\"1000000000000000000000000000000\"", "\"NaN\"",
           "\"Infinity\"", "\" 1\"", "\"1 \"", "\"+1\"", "\"1.0000001\"", "\".\"", "\"\"",
           "\"1\\u0000\"", "\"1,5\""});
      break;
    case Kind::kQuery:
      not_strings();
      nul_strings();
      bad_escapes();
      v.push_back({"5000 bytes", long_string});
      add({"\"cpu.cores >=\"", "\"((((\"", "\"region == \\\"eu\"", "\"cpu.cores >= 1e400\""});
      v.push_back({"2000 nested parentheses",
                   Json(std::string(2000, '(') + "cpu.cores >= 1" + std::string(2000, ')'))
                       .dump()});
      v.push_back({"4000 negations", Json(std::string(4000, '!') + "cpu.cores >= 1").dump()});
      v.push_back(
          {"300 conditions", Json(Repeat("cpu.cores >= 1 && ", 300) + "cpu.cores >= 1").dump()});
      break;
    case Kind::kInt:
      add({"\"1\"", "\"\"", "1.5", "-1.5", "1e3", "1e400", "-1e400", "-1",
           "-9223372036854775808", "-9223372036854775809", "9223372036854775808",
           "18446744073709551616", "1000000000000000000000000000000", "true", "false", "[]",
           "[1]", "{}", "{\"a\":1}", "\"0x10\""});
      break;
    case Kind::kNumber:
      add({"true", "[]", "[1]", "{}", "1e400", "-1e400", "0.0000001", "18446744073709551616",
           "1e300"});
      break;
    case Kind::kAttribute:
      add({"true", "false", "[]", "{}", "[\"x\"]", "{\"a\":\"x\"}", "1e400", "-1e400",
           "0.0000001", "18446744073709551616"});
      nul_strings();
      bad_escapes();
      v.push_back({"5000 bytes", long_string});
      break;
    case Kind::kObject:
      add({"\"x\"", "1", "-1", "[]", "[{}]", "true", "1e400", "18446744073709551616", "\"{}\""});
      break;
    case Kind::kArray:
      add({"\"x\"", "1", "-1", "{}", "true", "1e400", "18446744073709551616", "\"[]\""});
      break;
    case Kind::kBool:
      add({"\"true\"", "1", "0", "[]", "{}", "\"\"", "1e400"});
      break;
    case Kind::kAny:
      add({"1e400", "-1e400"});
      break;
  }
  if (field.required) add({"null"});
  // Wrong for every field: nothing here is valid JSON.
  v.push_back({"nesting 10000 deep", kDeepArrays});
  v.push_back({"raw 0xff 0xfe", "\"\xff\xfe\"", true});
  v.push_back({"overlong '/'", "\"\xc0\xaf\"", true});
  v.push_back({"UTF-8 surrogate", "\"\xed\xa0\x80\"", true});
  v.push_back({"raw NUL", std::string("\"a\0b\"", 5)});
  v.push_back({"raw control", "\"a\x01\x1f\""});
  return v;
}

constexpr std::string_view kPlaceholder = "\"@@hostile@@\"";

// The body's JSON text with the value at `pointer` replaced by raw text.
std::string Substitute(const Json& body, const std::string& pointer, std::string_view raw) {
  Json copy = body;
  copy[Json::json_pointer(pointer)] = "@@hostile@@";
  std::string text = copy.dump();
  const size_t at = text.find(kPlaceholder);
  text.replace(at, kPlaceholder.size(), raw);
  return text;
}

// Whole bodies that are not one valid request whatever the route: malformed JSON, trailing
// bytes, NUL, text that is not UTF-8, deep nesting, duplicate and unknown keys. `good` is
// the route's valid body (a JSON object).
std::vector<Hostile> MalformedBodies(const Json& good_json) {
  const std::string good = good_json.dump();
  const std::string open = good.substr(0, good.size() - 1);  // "{...", without the '}'.
  const std::string first_key = good_json.begin().key();
  const std::string first_pair = Json{{first_key, good_json.begin().value()}}.dump();
  const std::string pair_text = first_pair.substr(1, first_pair.size() - 2);
  std::string escaped_key = first_key;
  static constexpr char kHex[] = "0123456789abcdef";
  const unsigned char last = static_cast<unsigned char>(escaped_key.back());
  escaped_key.pop_back();
  escaped_key += std::string("\\u00") + kHex[last >> 4] + kHex[last & 15];
  std::string many_keys = open;
  for (int i = 0; i < 20'000; ++i) many_keys += ",\"k" + std::to_string(i) + "\":1";
  many_keys += "}";
  std::vector<Hostile> v = {
      {"empty", ""},
      {"whitespace", " \r\n\t "},
      {"null", "null"},
      {"true", "true"},
      {"a number", "1"},
      {"1e400", "1e400"},
      {"-0", "-0"},
      {"a string", "\"x\""},
      {"an array", "[]"},
      {"the body in an array", "[" + good + "]"},
      {"'{'", "{"},
      {"'}'", "}"},
      {"'{]'", "{]"},
      {"a key without value", "{\"a\"}"},
      {"a key without value after ':'", "{\"a\":}"},
      {"a lone comma", "{,}"},
      {"a trailing comma", open + ",}"},
      {"single quotes", "{'a':1}"},
      {"a bare key", "{a:1}"},
      {"NaN", open + ",\"n\":NaN}"},
      {"Infinity", open + ",\"n\":Infinity}"},
      {"a leading zero", open + ",\"n\":01}"},
      {"a hex number", open + ",\"n\":0x10}"},
      {"a comment", "/*x*/" + good},
      {"a bad escape", open + ",\"n\":\"\\q\"}"},
      {"a bad unicode escape", open + ",\"n\":\"\\u12\"}"},
      {"trailing garbage", good + " x"},
      {"two objects", good + good},
      {"a NUL after the value", good + std::string(1, '\0')},
      {"a NUL and more after the value", good + std::string("\0{}", 3)},
      {"a NUL before the value", std::string(1, '\0') + good},
      {"a NUL between tokens", "{" + std::string(1, '\0') + good.substr(1)},
      {"an escaped NUL key", open + ",\"\\u0000\":1}"},
      {"0xff before the value", "\xff" + good, true},
      {"0xff in a key", "{\"\xff\":1}", true},
      {"a truncated UTF-8 sequence", open + ",\"n\":\"\xe2\x82\"}", true},
      {"a UTF-8 surrogate", open + ",\"n\":\"\xed\xb0\x80\"}", true},
      {"an overlong encoding", open + ",\"n\":\"\xe0\x80\xaf\"}", true},
      {"a code point past U+10FFFF", open + ",\"n\":\"\xf4\x90\x80\x80\"}", true},
      {"10000 open arrays", std::string(10'000, '[')},
      {"10000 nested arrays", kDeepArrays},
      {"10000 nested objects", Repeat("{\"a\":", 10'000) + "1" + std::string(10'000, '}')},
      {"10000 nested arrays in a field", open + ",\"n\":" + kDeepArrays + "}"},
      {"33 nested objects in a field", open + ",\"n\":" + Repeat("{\"a\":", 33) + "1" +
                                           std::string(33, '}') + "}"},
      {"a duplicate key, same value", open + "," + pair_text + "}"},
      {"a duplicate key, escaped", open + ",\"" + escaped_key + "\":" +
                                       good_json.begin().value().dump() + "}"},
      {"an unknown field", open + ",\"zzz\":1}"},
      {"an empty key", open + ",\"\":1}"},
      {"a key in capitals", open + ",\"" + Upper(first_key) + "\":1}"},
      {"__proto__", open + ",\"__proto__\":{\"x\":1}}"},
      {"20000 unknown fields", many_keys},
      {"a 900 KB unknown string", open + ",\"n\":\"" + std::string(900'000, 'a') + "\"}"},
      {"100000 numbers", open + ",\"n\":[" + Repeat("1,", 99'999) + "1]}"},
  };
  return v;
}

// ------------------------------------------------------------------ the seeded generator

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Coin() { return Below(2) == 0; }

  // A random JSON value of a type that `kind` never takes (or one that does not parse).
  std::string WrongValue(Kind kind) {
    if (kind == Kind::kNumber) {
      // A machine attribute takes strings and most numbers: only other types are wrong.
      switch (Below(3)) {
        case 0: return Coin() ? "true" : "false";
        case 1: return Nested(static_cast<int>(Below(40)) + 1, Coin());
        default: return "1e" + std::to_string(400 + Below(9000));
      }
    }
    switch (Below(6)) {
      case 0: return BigInteger();
      case 1: return Float();
      // Never the container type the field takes (its content could then be valid).
      case 2: return Nested(static_cast<int>(Below(40)) + 1, kind != Kind::kArray);
      case 3: return kind == Kind::kBool ? "\"x\"" : (Coin() ? "true" : "false");
      case 4: return kind == Kind::kObject ? "[]" : "{\"" + Key() + "\":" + BigInteger() + "}";
      default:
        return kind == Kind::kInt || kind == Kind::kObject || kind == Kind::kArray ||
                       kind == Kind::kBool
                   ? "\"" + Key() + "\""
                   : BigInteger();
    }
  }

  // An integer literal past every 64-bit range, or negative.
  std::string BigInteger() {
    std::string digits = Coin() ? "-" : "";
    const size_t count = Coin() ? 20 + Below(20) : 1 + Below(19);
    digits += static_cast<char>('1' + Below(9));
    for (size_t i = 1; i < count; ++i) digits += static_cast<char>('0' + Below(10));
    if (digits[0] != '-' && count < 20) digits = "-" + digits;  // Short ones are negative.
    return digits;
  }

  std::string Float() {
    return std::to_string(Below(1000)) + "." + std::to_string(1 + Below(999)) + "e" +
           (Coin() ? "-" : "") + std::to_string(Below(999));
  }

  std::string Key() {
    std::string key;
    const size_t n = 1 + Below(8);
    for (size_t i = 0; i < n; ++i) key += static_cast<char>('a' + Below(26));
    return key;
  }

  // Arrays and objects nested `depth` deep (some past the parser's bound), the outermost an
  // array or not as asked.
  std::string Nested(int depth, bool outer_array) {
    std::string open, close;
    for (int i = 0; i < depth; ++i) {
      if (i == 0 ? outer_array : Coin()) {
        open += "[";
        close = "]" + close;
      } else {
        open += "{\"" + Key() + "\":";
        close = "}" + close;
      }
    }
    return open + (Coin() ? BigInteger() : "null") + close;
  }

  // One byte that makes any JSON text invalid wherever it goes: a control character (not
  // whitespace) or a byte that is never UTF-8 on its own.
  char PoisonByte() {
    static constexpr unsigned char kBytes[] = {0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x1f,
                                               0x80, 0x9f, 0xbf, 0xc0, 0xc1, 0xf5, 0xfe, 0xff};
    return static_cast<char>(kBytes[Below(sizeof(kBytes))]);
  }

  // `text` with 1..4 poison bytes at random places.
  std::string Poison(std::string text) {
    const size_t n = 1 + Below(4);
    for (size_t i = 0; i < n; ++i) text.insert(Below(text.size() + 1), 1, PoisonByte());
    return text;
  }

  // A random hostile body from a valid one: a wrong value in one or more fields, poison bytes,
  // a truncation, a duplicate key. Never a valid request.
  Hostile Body(const Template& t) {
    switch (Below(4)) {
      case 0: {
        const Field& field = t.fields[Below(t.fields.size())];
        std::string value = WrongValue(field.kind);
        if (field.kind == Kind::kAny) value = "1e" + std::to_string(400 + Below(9000));
        return {"wrong " + field.pointer, Substitute(t.body, field.pointer, value)};
      }
      case 1: {
        std::string text = t.body.dump();
        Hostile h{"poisoned", Poison(text)};
        h.invalid_utf8 = true;
        return h;
      }
      case 2: {
        const std::string text = t.body.dump();
        return {"truncated", text.substr(0, Below(text.size()))};
      }
      default: {
        Json body = t.body;
        // Two fields wrong at once.
        std::string text = body.dump();
        const Field& a = t.fields[Below(t.fields.size())];
        const Field& b = t.fields[Below(t.fields.size())];
        std::string value_a = WrongValue(a.kind);
        if (a.kind == Kind::kAny) value_a = "1e999";
        text = Substitute(body, a.pointer, value_a);
        if (b.pointer != a.pointer && b.pointer.rfind(a.pointer, 0) != 0 &&
            a.pointer.rfind(b.pointer, 0) != 0) {
          Json partial = Json::parse(Substitute(body, a.pointer, "\"@@a@@\""));
          std::string value_b = WrongValue(b.kind);
          if (b.kind == Kind::kAny) value_b = "1e999";
          text = Substitute(partial, b.pointer, value_b);
          const size_t at = text.find("\"@@a@@\"");
          text.replace(at, 7, value_a);
        }
        return {"wrong " + a.pointer + " and " + b.pointer, text};
      }
    }
  }

  // Random bytes for a request line and headers.
  std::string Garbage(size_t size, bool printable) {
    std::string out;
    for (size_t i = 0; i < size; ++i) {
      out += printable ? static_cast<char>(0x20 + Below(0x5f)) : static_cast<char>(Below(256));
    }
    return out;
  }

 private:
  std::mt19937_64 rng_;
};

// ------------------------------------------------------------------ a raw WebSocket client

// A WebSocket client on a raw socket, for frames the client library never sends (binary,
// unmasked, reserved opcodes, lying lengths, invalid UTF-8) and for a client that never
// reads. Blocking; one per test thread.
class RawWebSocket {
 public:
  struct Frame {
    uint8_t opcode = 0;
    std::string payload;
  };

  // Connects and completes the upgrade; nullptr (with the reason in *why) otherwise.
  static std::unique_ptr<RawWebSocket> Open(uint16_t port, const std::string& target,
                                            const std::string& token, std::string* why,
                                            int rcvbuf = 0, int maxseg = 0) {
    const int fd = ConnectTcp(port, nullptr, rcvbuf, maxseg);
    if (fd < 0) {
      *why = "cannot connect";
      return nullptr;
    }
    auto ws = std::unique_ptr<RawWebSocket>(new RawWebSocket(fd));
    std::string head = "GET " + target +
                       " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
                       "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n";
    if (!token.empty()) head += "Authorization: Bearer " + token + "\r\n";
    head += "\r\n";
    if (!ws->SendBytes(head)) {
      *why = "cannot send the upgrade";
      return nullptr;
    }
    const int64_t deadline = NowMs() + kAnswerDeadlineMs;
    size_t end = std::string::npos;
    while ((end = ws->buffer_.find("\r\n\r\n")) == std::string::npos && NowMs() < deadline) {
      if (!ReadSome(fd, &ws->buffer_, deadline - NowMs())) break;
    }
    if (end == std::string::npos || !ws->buffer_.starts_with("HTTP/1.1 101")) {
      *why = "the upgrade was answered: " + Printable(ws->buffer_);
      return nullptr;
    }
    ws->buffer_.erase(0, end + 4);
    return ws;
  }

  ~RawWebSocket() { ::close(fd_); }
  RawWebSocket(const RawWebSocket&) = delete;
  RawWebSocket& operator=(const RawWebSocket&) = delete;

  bool SendBytes(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // A frame with this first byte (FIN, RSV, opcode) and payload; `declared` overrides the
  // length written in the header.
  static std::string Encode(uint8_t first, std::string_view payload, bool masked = true,
                            std::optional<uint64_t> declared = std::nullopt) {
    std::string frame(1, static_cast<char>(first));
    const uint64_t length = declared.value_or(payload.size());
    const uint8_t mask_bit = masked ? 0x80 : 0;
    if (length < 126) {
      frame += static_cast<char>(mask_bit | length);
    } else if (length <= 0xffff) {
      frame += static_cast<char>(mask_bit | 126);
      frame += static_cast<char>(length >> 8);
      frame += static_cast<char>(length & 0xff);
    } else {
      frame += static_cast<char>(mask_bit | 127);
      for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>(length >> shift);
    }
    static constexpr unsigned char kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) frame.append(reinterpret_cast<const char*>(kMask), 4);
    for (size_t i = 0; i < payload.size(); ++i) {
      frame += masked ? static_cast<char>(payload[i] ^ kMask[i % 4]) : payload[i];
    }
    return frame;
  }

  bool SendText(std::string_view text) { return SendBytes(Encode(0x81, text)); }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next frame within the deadline; nullopt when none came (*ended: the connection ended).
  std::optional<Frame> Read(int64_t timeout_ms, bool* ended) {
    *ended = false;
    const int64_t deadline = NowMs() + timeout_ms;
    while (true) {
      if (auto frame = Decode()) return frame;
      const int64_t left = deadline - NowMs();
      if (left <= 0) return std::nullopt;
      const size_t before = buffer_.size();
      if (!ReadSome(fd_, &buffer_, left)) {
        if (auto frame = Decode()) return frame;
        *ended = true;
        return std::nullopt;
      }
      (void)before;
    }
  }

  // Reads (and drops) frames until the server's close frame or the end of the connection;
  // true when that came within the deadline. *close_reason: the close frame's reason text.
  bool ClosedWithin(int64_t timeout_ms, std::string* close_reason = nullptr) {
    const int64_t deadline = NowMs() + timeout_ms;
    while (NowMs() < deadline) {
      bool ended = false;
      auto frame = Read(deadline - NowMs(), &ended);
      if (ended) return true;
      if (frame && frame->opcode == 0x8) {
        if (close_reason != nullptr && frame->payload.size() > 2) {
          *close_reason = frame->payload.substr(2);
        }
        return true;
      }
    }
    return false;
  }

 private:
  explicit RawWebSocket(int fd) : fd_(fd) {}

  std::optional<Frame> Decode() {
    if (buffer_.size() < 2) return std::nullopt;
    const auto* b = reinterpret_cast<const unsigned char*>(buffer_.data());
    uint64_t length = b[1] & 0x7f;
    size_t offset = 2;
    if (length == 126) {
      if (buffer_.size() < 4) return std::nullopt;
      length = (uint64_t{b[2]} << 8) | b[3];
      offset = 4;
    } else if (length == 127) {
      if (buffer_.size() < 10) return std::nullopt;
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | b[2 + i];
      offset = 10;
    }
    if (b[1] & 0x80) offset += 4;  // A server never masks; tolerated here.
    if (buffer_.size() < offset + length) return std::nullopt;
    Frame frame{static_cast<uint8_t>(b[0] & 0x0f), buffer_.substr(offset, length)};
    buffer_.erase(0, offset + length);
    return frame;
  }

  int fd_;
  std::string buffer_;
};

// Whether a stream connection answers a ping (other messages before the pong are skipped).
bool PingPong(client::WebSocketClient& ws) {
  if (!ws.Send(R"({"op":"ping"})").ok()) return false;
  const int64_t deadline = NowMs() + kAnswerDeadlineMs;
  while (NowMs() < deadline) {
    auto text = ws.Receive(deadline - NowMs());
    if (!text.ok()) return false;
    const Json m = Json::parse(*text, nullptr, false);
    if (m.is_object() && m.value("type", "") == "pong") return true;
  }
  return false;
}

// The error code of a JSON refusal body, "" when it is not one.
std::string ErrorCodeIn(const std::string& body) {
  const Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  const Json& code = j["error"]["code"];
  return code.is_string() ? code.get<std::string>() : "";
}

// ------------------------------------------------------------------ fixtures

// Starts the exchange with a configuration file of its own (ExchangeProcess adds --port 0,
// --data-dir and --log-level warn, which win over the file).
class HostileExchangeTest : public ExchangeTest {
 protected:
  void SetUp() override {}  // Each test's own SetUp calls StartExchange.

  void StartExchange(const std::string& toml) {
    dir_ = std::make_unique<base::testing::TempDir>("ocx_hostile");
    const std::string path = dir_->path() + "/exchange.toml";
    std::ofstream(path) << toml;
    server_ = std::make_unique<ExchangeProcess>(dir_->path());
    server_->SetExtraArguments({"--config", path});
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    op_ = std::make_unique<ApiClient>(server_->url(), server_->operator_token());
  }

  uint64_t DurableSequence() {
    const Reply health = op_->Call("GET", "/healthz");
    EXPECT_EQ(health.status, 200) << health;
    return health.status == 200 ? health.body["sequence"].get<uint64_t>() : 0;
  }
};

// Everything a refused request must leave as it was.
struct Snapshot {
  std::map<uint64_t, Balances> balances;  // Every account.
  std::vector<Json> consumer_orders;
  std::vector<Json> provider_orders;
  std::vector<Json> leases;
  Json book;
  Json ledger;  // GET /v1/ledger without its sequence.
};

bool operator==(const Snapshot& a, const Snapshot& b) {
  return a.balances == b.balances && a.consumer_orders == b.consumer_orders &&
         a.provider_orders == b.provider_orders && a.leases == b.leases && a.book == b.book &&
         a.ledger == b.ledger;
}

std::ostream& operator<<(std::ostream& out, const Snapshot& s) {
  out << "{balances:";
  for (const auto& [id, b] : s.balances) out << " " << id << "=" << b;
  out << "; book " << s.book.dump() << "; ledger " << s.ledger.dump() << "; consumer orders "
      << Json(s.consumer_orders).dump() << "; provider orders " << Json(s.provider_orders).dump()
      << "; leases " << Json(s.leases).dump() << "}";
  return out;
}

class ApiHostileTest : public HostileExchangeTest {
 protected:
  void SetUp() override {
    StartExchange(kHostileConfig);
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100", 16);
    consumer_ = ClientFor(market_.consumer);
    provider_ = ClientFor(market_.provider);
    // A resting ask, a lease (the consumer bought one slot of it) and a resting bid below.
    provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
    const Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 1));
    ASSERT_TRUE(bought.contains("fills") && bought["fills"].size() == 1) << bought.dump();
    lease_ = bought["fills"][0]["lease"].get<uint64_t>();
    order_ = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 2))["order"]["id"]
                 .get<uint64_t>();
    const Reply blob = consumer_->Raw("POST", "/v1/blobs", "hostile fixture blob", {},
                                      "application/octet-stream");
    ASSERT_EQ(blob.status, 201) << blob;
    blob_sha_ = blob.body["sha256"].get<std::string>();
    ASSERT_FALSE(HasFailure());
    snapshot_ = Take();
    sequence_ = DurableSequence();
    seed_ = Seed();
  }

  void TearDown() override {
    if (consumer_ != nullptr && !dead_) {
      const Snapshot now = Take();
      EXPECT_EQ(now, snapshot_) << "the hostile requests changed the exchange's state";
      EXPECT_TRUE(LedgerIsBalanced(*op_, kNetDepositsMicros));
      const Reply ledger = op_->Call("GET", "/v1/ledger");
      EXPECT_EQ(ledger.body["balanced"], true) << ledger;
    }
    if (dead_ && server_ != nullptr) server_->Kill();  // Already failed; do not wait on it.
    ExchangeTest::TearDown();
  }

  Snapshot Take() {
    Snapshot s;
    for (const Json& account : ListAll(*op_, "/v1/accounts")) {
      const uint64_t id = account["id"].get<uint64_t>();
      s.balances[id] = GetBalances(*op_, id);
    }
    s.consumer_orders = ListAll(*consumer_, "/v1/orders");
    s.provider_orders = ListAll(*provider_, "/v1/orders");
    s.leases = ListAll(*consumer_, "/v1/leases");
    Reply book = consumer_->Call("GET", "/v1/markets/cpu/book");
    EXPECT_EQ(book.status, 200) << book;
    s.book = Json{{"bids", book.body["bids"]}, {"asks", book.body["asks"]}};
    Reply ledger = op_->Call("GET", "/v1/ledger");
    EXPECT_EQ(ledger.status, 200) << ledger;
    EXPECT_EQ(ledger.body["balanced"], true) << ledger;
    ledger.body.erase("sequence");
    s.ledger = ledger.body;
    return s;
  }

  // After one hostile request or message (`label` names it): the exchange answers, an account
  // is served, and nothing changed. `before_core`: the refusal was decided before the core,
  // so the durable sequence must not have moved. False once the exchange stopped answering.
  bool ExpectUnchanged(const std::string& label, bool before_core) {
    if (dead_) return false;
    const Reply health = op_->Call("GET", "/healthz");
    if (health.status != 200) {
      ADD_FAILURE() << "[seed " << seed_ << "] after " << label
                    << ": the exchange stopped answering GET /healthz (" << health
                    << "); log tail:\n"
                    << server_->LogTail();
      dead_ = true;
      return false;
    }
    const Reply me = consumer_->Call("GET", "/v1/me");
    EXPECT_EQ(me.status, 200) << "after " << label << ": an account is not served: " << me;
    const uint64_t sequence = health.body["sequence"].get<uint64_t>();
    ++requests_;
    if (sequence != sequence_ || requests_ % 250 == 0) {
      EXPECT_TRUE(sequence == sequence_ || !before_core)
          << "[seed " << seed_ << "] after " << label
          << ": refused before the core, yet the durable sequence moved from " << sequence_
          << " to " << sequence;
      const Snapshot now = Take();
      EXPECT_EQ(now, snapshot_) << "[seed " << seed_ << "] after " << label
                                << ": the exchange's state changed";
      if (!(now == snapshot_)) snapshot_ = now;  // Report each change once.
      sequence_ = sequence;
    }
    return true;
  }

  // Sends one hostile HTTP request (as bytes) on a fresh connection and checks its answer and
  // the exchange after it. False once the exchange stopped answering.
  bool Send(const std::string& label, const std::string& bytes, const Want& want) {
    if (dead_) return false;
    const std::string where = "[seed " + std::to_string(seed_) + "] " + label + " (" +
                              Printable(bytes, 160) + ")";
    const Exchanged exchanged = ExchangeBytes(server_->port(), bytes);
    if (!exchanged.connected) {
      ADD_FAILURE() << where << ": cannot connect; log tail:\n" << server_->LogTail();
      dead_ = true;
      return false;
    }
    std::vector<Response> responses;
    std::string why;
    if (!ParseResponses(exchanged.received, &responses, &why)) {
      ADD_FAILURE() << where << ": the answer is not HTTP: " << why;
    }
    bool before_core = true;
    bool first = true;
    for (const Response& r : responses) {
      if (r.status == 100) continue;  // An interim answer to Expect: 100-continue.
      const std::string code = CodeOf(r);
      EXPECT_LT(r.status, 500) << where << ": answered " << r.status << " " << Printable(r.body)
                               << "\nlog tail:\n"
                               << server_->LogTail(1500);
      if (r.status >= 400) {
        EXPECT_TRUE(IsRefusal(r)) << where << ": status " << r.status;
      } else if (r.status != 101) {
        EXPECT_TRUE(want.may_serve) << where << ": a hostile request was served: " << r.status
                                    << " " << Printable(r.body);
      }
      if (first) {
        if (want.status != 0) {
          EXPECT_EQ(r.status, want.status) << where << ": " << Printable(r.body);
        }
        if (!want.code.empty()) {
          EXPECT_EQ(code, want.code) << where << ": " << Printable(r.body);
        }
        first = false;
      }
      if (r.status >= 400 && !DecidedBeforeCore(r.status, code)) before_core = false;
    }
    if (want.complete && first) {
      ADD_FAILURE() << where << ": no answer to a complete request ("
                    << (exchanged.ended ? "the connection was closed" : "nothing within 10 s")
                    << ", received '" << Printable(exchanged.received) << "')";
    }
    if (!want.complete && !exchanged.ended) {
      ADD_FAILURE() << where << ": the exchange neither answered nor closed the connection of an "
                                "incomplete request within 10 s";
    }
    return ExpectUnchanged(label, before_core);
  }

  // ---- The route table, filled in.

  // The token a route is called with: the operator's for operator routes, the provider's to
  // register a machine, the consumer's for other account routes, none for public ones.
  std::string TokenFor(const Route& route) const {
    if (route.auth == api::Auth::kOperator) return server_->operator_token();
    if (route.auth == api::Auth::kAccount) {
      return route.pattern == "/v1/machines" ? market_.provider.token : market_.consumer.token;
    }
    return "";
  }

  // A capture naming a real resource, so that what follows the path is what is judged.
  std::string RealCapture(const Route& route, std::string_view name) const {
    if (name == "market") return "cpu";
    if (name == "sha256") {
      // An upload to a digest that is not its body's is always refused.
      return route.method == "PUT" ? Sha256Hex("not the body") : blob_sha_;
    }
    const std::string& p = route.pattern;
    if (p.starts_with("/v1/accounts/")) return std::to_string(market_.consumer.id);
    if (p.starts_with("/v1/orders/")) return std::to_string(order_);
    if (p.starts_with("/v1/machines/")) return std::to_string(market_.machine.id);
    if (p.starts_with("/v1/leases/")) return std::to_string(lease_);
    return "999999";  // A job, or a resource added later: well-formed, nothing there.
  }

  // The path used for classes that are not about the path: real captures where what is sent
  // cannot make a valid request (reads; JSON bodies that are invalid; an upload to the wrong
  // digest), an id of 0 (400) for a route that acts without a body, which would otherwise
  // act (cancel, release, rotate a token).
  std::string PathFor(const Route& route) const {
    if (!Safe(route) && route.body == api::Body::kNone) {
      return Fill(route.pattern, [](std::string_view) { return std::string("0"); });
    }
    return Fill(route.pattern, [&](std::string_view name) { return RealCapture(route, name); });
  }

  // A body that is refused on every route that takes JSON ("{}" misses the required fields);
  // nothing for the others.
  static std::string BaseBody(const Route& route) {
    return route.body == api::Body::kJson ? "{}" : "";
  }

  static std::string ContentTypeFor(const Route& route) {
    switch (route.body) {
      case api::Body::kJson: return "application/json";
      case api::Body::kBlob: return "application/octet-stream";
      case api::Body::kNone: return "";
    }
    return "";
  }

  // Whether a request whose hostile part the route may ignore can succeed: a read, or a blob
  // upload (any bytes are a blob).
  static bool MayServe(const Route& route) {
    return Safe(route) || (route.body == api::Body::kBlob && !HasCaptures(route));
  }

  static uint64_t BodyLimit(const Route& route) {
    switch (route.body) {
      case api::Body::kNone: return kNoBodyBytesMax;
      case api::Body::kJson: return kBodyBytesMax;
      case api::Body::kBlob: return kBlobBytesMax;
    }
    return 0;
  }

  // The route's request with the base body, ready for a class to change one part.
  RequestSpec BaseRequest(const Route& route) const {
    RequestSpec r;
    r.method = route.method;
    r.target = PathFor(route);
    r.token = TokenFor(route);
    r.body = BaseBody(route);
    r.content_type = r.body.empty() ? "" : ContentTypeFor(route);
    return r;
  }

  // ---- JSON bodies: one valid template per route that takes JSON.

  std::map<std::string, Template> JsonTemplates() const {
    const Json order{{"market", "cpu"},  {"side", "buy"},       {"type", "limit"},
                     {"tif", "gtc"},     {"price", "0.01"},     {"quantity", 1},
                     {"lot", 1},         {"max_hours", 1},      {"constraints", "cpu.cores >= 1"}};
    const std::vector<Field> order_fields = {
        {"/market", Kind::kText, true},   {"/side", Kind::kEnum, true},
        {"/type", Kind::kEnum},           {"/tif", Kind::kEnum},
        {"/price", Kind::kMoney},         {"/quantity", Kind::kInt, true},
        {"/lot", Kind::kInt},             {"/max_hours", Kind::kInt},
        {"/expiry", Kind::kInt},          {"/machine", Kind::kInt},
        {"/constraints", Kind::kQuery}};
    const Json task{{"command", {"true"}},
                    {"env", {{"MODE", "x"}}},
                    {"inputs",
                     {{{"path", "in.bin"}, {"sha256", blob_sha_}, {"size", 20}, {"executable", false}}}},
                    {"outputs", {"out"}},
                    {"network", false},
                    {"timeout_s", 60}};
    const std::vector<Field> task_fields = {
        {"/command", Kind::kArray, true},     {"/command/0", Kind::kArg},
        {"/env", Kind::kObject},              {"/env/MODE", Kind::kArg},
        {"/inputs", Kind::kArray},            {"/inputs/0", Kind::kObject},
        {"/inputs/0/path", Kind::kText},      {"/inputs/0/sha256", Kind::kEnum},
        {"/inputs/0/size", Kind::kInt},       {"/inputs/0/executable", Kind::kBool},
        {"/outputs", Kind::kArray},           {"/outputs/0", Kind::kText},
        {"/network", Kind::kBool},            {"/timeout_s", Kind::kInt}};
    auto task_with = [&](const char* key, const std::string& raw) {
      return Substitute(task, std::string("/") + key, raw);
    };
    std::map<std::string, Template> t;
    t["POST /v1/accounts"] = {Json{{"name", UniqueName("hostile")}, {"role", "consumer"}},
                              {{"/name", Kind::kText, true}, {"/role", Kind::kEnum}}};
    t["POST /v1/accounts/{id}/deposits"] = {Json{{"amount", "1"}},
                                            {{"/amount", Kind::kMoney, true}}};
    t["POST /v1/accounts/{id}/withdrawals"] = {
        Json{{"amount", "1"}, {"from", "available"}},
        {{"/amount", Kind::kMoney, true}, {"/from", Kind::kEnum}}};
    t["POST /v1/orders"] = {order, order_fields};
    t["PATCH /v1/orders/{id}"] = {Json{{"price", "0.03"}, {"quantity", 1}},
                                  {{"/price", Kind::kMoney}, {"/quantity", Kind::kInt}}};
    Json attributes_65 = Json::object();
    Json capacity_65 = Json::object();
    for (int i = 0; i < 65; ++i) {
      attributes_65["a" + std::to_string(i)] = i;
      capacity_65["m" + std::to_string(i)] = 1;
    }
    const Json machine{{"name", "hostile-machine"},
                       {"public_key", protocol::NewMachineKeyPair().public_key_hex},
                       {"attributes", {{"cpu.cores", 8}, {"region", "test-1"}}},
                       {"capacity", {{"cpu", 1}}}};
    t["POST /v1/machines"] = {
        machine,
        {{"/name", Kind::kText, true},
         {"/public_key", Kind::kEnum, true},
         {"/attributes", Kind::kObject},
         {"/attributes/cpu.cores", Kind::kNumber},
         {"/attributes/region", Kind::kAttribute},
         {"/capacity", Kind::kObject, true},
         {"/capacity/cpu", Kind::kInt}},
        {{"an empty attribute name", Substitute(machine, "/attributes", "{\"\":1}")},
         {"a 65-byte attribute name",
          Substitute(machine, "/attributes", "{\"" + std::string(65, 'a') + "\":1}")},
         {"65 attributes", Substitute(machine, "/attributes", attributes_65.dump())},
         {"capacity in 65 markets", Substitute(machine, "/capacity", capacity_65.dump())},
         {"capacity past 1,000,000", Substitute(machine, "/capacity", "{\"cpu\":1000001}")},
         {"capacity in an unknown market", Substitute(machine, "/capacity", "{\"tpu\":1}")},
         {"capacity null", Substitute(machine, "/capacity", "{\"cpu\":null}")}}};
    t["POST /v1/leases/{id}/task"] = {
        task,
        task_fields,
        {{"no command", task_with("command", "[]")},
         {"an env name with '='", task_with("env", "{\"A=B\":\"x\"}")},
         {"an env name starting with a digit", task_with("env", "{\"1A\":\"x\"}")},
         {"an empty env name", task_with("env", "{\"\":\"x\"}")},
         {"an input path with ..", Substitute(task, "/inputs/0/path", "\"../x\"")},
         {"an absolute input path", Substitute(task, "/inputs/0/path", "\"/etc/passwd\"")},
         {"an input path with an empty component", Substitute(task, "/inputs/0/path", "\"a//b\"")},
         {"an upper-case digest", Substitute(task, "/inputs/0/sha256", Json(Upper(blob_sha_)).dump())},
         {"an output with ..", task_with("outputs", "[\"../x\"]")},
         {"timeout 0", task_with("timeout_s", "0")},
         {"timeout past a week", task_with("timeout_s", "604801")},
         {"10001 inputs",
          task_with("inputs", "[" + Repeat("{\"path\":\"a\",\"sha256\":\"" + blob_sha_ + "\"},",
                                           10'000) +
                                  "{\"path\":\"a\",\"sha256\":\"" + blob_sha_ + "\"}]")},
         {"a task over 64 KiB", task_with("command", "[\"" + std::string(70'000, 'a') + "\"]")}}};
    const Json job{{"market", "cpu"},        {"tasks", 1},       {"slots_per_task", 1},
                   {"max_price", "0.01"},    {"max_hours", 1},   {"constraints", "cpu.cores >= 1"},
                   {"task", {{"command", {"true"}}}}};
    t["POST /v1/jobs"] = {job,
                          {{"/market", Kind::kText},
                           {"/tasks", Kind::kInt},
                           {"/slots_per_task", Kind::kInt},
                           {"/max_price", Kind::kMoney, true},
                           {"/max_hours", Kind::kInt},
                           {"/constraints", Kind::kQuery},
                           {"/task", Kind::kObject, true},
                           {"/task/command", Kind::kArray, true}},
                          {{"1001 tasks", Substitute(job, "/tasks", "1001")},
                           {"an empty task", Substitute(job, "/task", "{}")},
                           {"a task with an unknown field",
                            Substitute(job, "/task", "{\"command\":[\"true\"],\"x\":1}")}}};
    return t;
  }

  const Template* TemplateFor(const Route& route) {
    if (templates_.empty()) templates_ = JsonTemplates();
    const auto it = templates_.find(RouteName(route));
    return it == templates_.end() ? nullptr : &it->second;
  }

  // A JSON request to a route with real captures, the right token and Content-Type.
  RequestSpec JsonRequest(const Route& route, std::string body) const {
    RequestSpec r;
    r.method = route.method;
    r.target = Fill(route.pattern, [&](std::string_view name) { return RealCapture(route, name); });
    r.token = TokenFor(route);
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
  }

  std::vector<const Route*> HttpRoutes() const {
    std::vector<const Route*> routes;
    for (const Route& route : api::Api::Routes()) routes.push_back(&route);
    return routes;
  }

  // ---- WebSocket helpers.

  std::unique_ptr<client::WebSocketClient> Stream(const std::string& token) {
    return ConnectWebSocket(server_->url(), "/v1/stream", token);
  }

  // Sends a hostile message and checks the answer: an error message; or one of `ok_types`;
  // or, when `may_close`, the end of the connection. Then the exchange and, when still open,
  // the connection itself (`probe` answers for it). False when the connection is gone.
  bool SendWs(client::WebSocketClient& ws, const std::string& label, const std::string& message,
              bool may_close, const std::set<std::string>& ok_types,
              const std::function<bool(client::WebSocketClient&)>& probe) {
    const std::string where = "[seed " + std::to_string(seed_) + "] " + label + " (" +
                              Printable(message, 160) + ")";
    const absl::Status sent = ws.Send(message);
    bool open = sent.ok();
    bool before_core = true;
    if (!sent.ok()) {
      EXPECT_TRUE(may_close) << where << ": the exchange closed the connection: " << sent;
    } else {
      auto text = ws.Receive(kAnswerDeadlineMs);
      if (!text.ok()) {
        open = false;
        EXPECT_TRUE(may_close && text.status().code() != absl::StatusCode::kDeadlineExceeded)
            << where << ": no answer: " << text.status();
      } else {
        const Json reply = Json::parse(*text, nullptr, false);
        const std::string type =
            reply.is_object() && reply.contains("type") && reply["type"].is_string()
                ? reply["type"].get<std::string>()
                : "";
        if (!ok_types.contains(type)) {
          EXPECT_TRUE(IsErrorMessage(reply)) << where << ": " << Printable(*text);
          if (IsErrorMessage(reply)) {
            const std::string code = reply["error"]["code"].get<std::string>();
            const int status = StatusOfCode(code);
            EXPECT_LT(status, 500) << where << ": " << reply.dump() << "\nlog tail:\n"
                                   << server_->LogTail(1500);
            if (!DecidedBeforeCore(status, code)) before_core = false;
          }
        }
      }
    }
    if (!ExpectUnchanged(label, before_core)) return false;
    if (open) {
      open = probe(ws);
      EXPECT_TRUE(open || may_close) << where << ": the connection stopped answering";
    }
    return open;
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_;
  std::unique_ptr<ApiClient> provider_;
  uint64_t lease_ = 0;
  uint64_t order_ = 0;
  std::string blob_sha_;
  Snapshot snapshot_;
  uint64_t sequence_ = 0;
  uint64_t seed_ = 0;
  uint64_t requests_ = 0;
  bool dead_ = false;
  std::map<std::string, Template> templates_;
};

// ------------------------------------------------------------------ HTTP: paths

// Ids that name nothing and cannot be narrowed into something: past 2^63, past 2^64, 10^30,
// negative, zero, in other notations, with NUL, not UTF-8, empty after decoding, very long.
const std::vector<std::string>& HostileIds() {
  static const std::vector<std::string> ids = {
      "9223372036854775808", "18446744073709551616", "1000000000000000000000000000000",
      "-1",                  "0",                    "1e3",
      "0x10",                "%00",                  "1%00",
      "%FF",                 "%C3%28",               "%ED%A0%80",
      "%2B1",                "00000000000000000001", "-9223372036854775809",
      "\xff",                "\xc0\xaf",             std::string(5000, '9'),
      "%",                   "%2F",                  "1.0",
      "%20",
  };
  return ids;
}

TEST_F(ApiHostileTest, EveryRouteRefusesHostileIdsInItsPath) {
  size_t routes = 0;
  for (const Route* route : HttpRoutes()) {
    if (!HasCaptures(*route)) continue;
    ++routes;
    for (const std::string& id : HostileIds()) {
      RequestSpec r = BaseRequest(*route);
      r.target = Fill(route->pattern, [&](std::string_view) { return id; });
      if (!Send(RouteName(*route) + " with id '" + Printable(id, 40) + "'", Bytes(r), Want{})) {
        return;
      }
    }
  }
  EXPECT_GE(routes, 15u) << "the route table lost its parameterized routes";
}

// ------------------------------------------------------------------ HTTP: queries

TEST_F(ApiHostileTest, EveryRouteRefusesHostileQueryStrings) {
  std::string params_65, params_1000;
  for (int i = 0; i < 65; ++i) params_65 += (i ? "&p" : "p") + std::to_string(i) + "=1";
  for (int i = 0; i < 1000; ++i) params_1000 += (i ? "&p" : "p") + std::to_string(i) + "=" + std::to_string(i);
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"%FF in a value", "q=%FF"},
      {"%FF in a key", "%FF=1"},
      {"%00 in a value", "after=%00"},
      {"an invalid UTF-8 sequence", "x=%C3%28"},
      {"an encoded surrogate", "x=%ED%A0%80"},
      {"past U+10FFFF", "x=%F4%90%80%80"},
      {"an overlong encoding", "x=%C0%AF"},
      {"a truncated escape", "x=%"},
      {"a half escape", "x=%0"},
      {"a bad escape", "x=%G1"},
      {"raw 0xff", "x=\xff"},
      {"raw invalid UTF-8", "x=\xc3\x28"},
      {"65 parameters", params_65},
      {"1000 parameters", params_1000},
      {"5000 empty parameters then 65", Repeat("&", 5000) + params_65},
  };
  // Valid text, hostile values: a route that reads them refuses them, others ignore them.
  const std::vector<std::pair<std::string, std::string>> values = {
      {"after past 2^63", "after=9223372036854775808"},
      {"after past 2^64", "after=18446744073709551616"},
      {"after -1", "after=-1"},
      {"limit past 2^64", "limit=18446744073709551616"},
      {"limit 1e3", "limit=1e3"},
      {"limit 0x10", "limit=0x10"},
      {"depth 10^30", "depth=1000000000000000000000000000000"},
      {"from past 2^64", "from=18446744073709551616&to=1"},
      {"status NUL-free garbage", "status=%E2%98%83"},
      {"a deep query", "q=" + Repeat("%28", 3000) + "a" + Repeat("%29", 3000)},
      {"a query of 4000 negations", "q=" + Repeat("%21", 4000) + "a"},
      {"a hostile sort", "sort=" + Repeat("-", 2000)},
      {"offset past 2^64", "offset=18446744073709551616"},
      {"explain garbage", "explain=%E2%98%83"},
      {"64 parameters of 200 bytes", [] {
         std::string s;
         for (int i = 0; i < 64; ++i) s += (i ? "&v" : "v") + std::to_string(i) + "=" + std::string(200, 'x');
         return s;
       }()},
  };
  for (const Route* route : HttpRoutes()) {
    for (const auto& [label, query] : refused) {
      RequestSpec r = BaseRequest(*route);
      r.target += "?" + query;
      if (!Send(RouteName(*route) + " ?" + label, Bytes(r), Want{.status = 400, .code = "bad_request"})) {
        return;
      }
    }
    // Past the header limit: 431, whatever the route.
    RequestSpec huge = BaseRequest(*route);
    huge.target += "?q=" + std::string(20'000, 'a');
    if (!Send(RouteName(*route) + " with a 20 KB query", Bytes(huge),
              Want{.status = 431, .code = "headers_too_large"})) {
      return;
    }
    for (const auto& [label, query] : values) {
      RequestSpec r = BaseRequest(*route);
      r.target += "?" + query;
      if (!Send(RouteName(*route) + " ?" + label, Bytes(r), Want{.may_serve = MayServe(*route)})) {
        return;
      }
    }
  }
}

// ------------------------------------------------------------------ HTTP: headers

TEST_F(ApiHostileTest, EveryRouteSurvivesHostileHeaders) {
  std::string many_headers;
  for (int i = 0; i < 3000; ++i) many_headers += (i ? "\r\nX-H" : "X-H") + std::to_string(i) + ": 1";
  for (const Route* route : HttpRoutes()) {
    const std::string name = RouteName(*route);
    const bool may_serve = MayServe(*route);
    auto with_token = [&](const std::string& token) {
      RequestSpec r = BaseRequest(*route);
      r.token = token;
      return r;
    };
    // A token that is not one: 401 on every route (public ones check a token when given).
    const std::vector<std::pair<std::string, std::string>> bad_tokens = {
        {"0xff 0xfe", "\xff\xfe"},
        {"invalid UTF-8 after ocx_", "ocx_" + Repeat("\xc3\x28", 32)},
        {"10 KB", std::string(10'000, 'a')},
        {"ocx_ and 64 zeros", "ocx_" + std::string(64, '0')},
        {"ocx_ and 64 non-hex", "ocx_" + std::string(64, 'g')},
        {"the operator's token cut short", server_->operator_token().substr(0, 20)},
        {"the operator's token and more", server_->operator_token() + "0"},
    };
    for (const auto& [label, token] : bad_tokens) {
      if (!Send(name + " with token " + label, Bytes(with_token(token)),
                Want{.status = 401, .code = "unauthenticated"})) {
        return;
      }
    }
    for (const std::string& authorization :
         {std::string("Basic Zm9vOmJhcg=="), std::string("Bearer"), std::string("bearer ") +
                                                                         server_->operator_token(),
          std::string("Token ") + server_->operator_token(), std::string("\xff")}) {
      RequestSpec r = with_token("");
      r.lines.push_back("Authorization: " + authorization);
      if (!Send(name + " with Authorization '" + Printable(authorization, 30) + "'", Bytes(r),
                Want{.status = 401, .code = "unauthenticated"})) {
        return;
      }
    }
    // Lines that are not headers, values that are not allowed, lengths that are not numbers:
    // the parser refuses them (400), whatever the route.
    const std::vector<std::pair<std::string, std::string>> malformed = {
        {"a line without a colon", "NoColonHere"},
        {"a space in a name", "Bad Name: x"},
        {"an empty name", ": x"},
        {"0xff in a name", "X\xff: 1"},
        {"NUL in a name", std::string("X\0Y: 1", 6)},
        {"a control character in a value", "X-A: a\x01" "b"},
        {"NUL in a value", std::string("X-A: a\0b", 8)},
        {"Content-Length -1", "Content-Length: -1"},
        {"Content-Length past 2^64", "Content-Length: 18446744073709551616"},
        {"Content-Length 1e3", "Content-Length: 1e3"},
        {"Content-Length 0x10", "Content-Length: 0x10"},
        {"Content-Length empty", "Content-Length: "},
        {"Content-Length '1, 2'", "Content-Length: 1, 2"},
        {"two different Content-Lengths", "Content-Length: 1\r\nContent-Length: 2"},
        {"a chunked body and a Content-Length",
         "Transfer-Encoding: chunked\r\nContent-Length: 3"},
        {"an unknown Transfer-Encoding", "Transfer-Encoding: gzip"},
    };
    for (const auto& [label, line] : malformed) {
      RequestSpec r = BaseRequest(*route);
      r.body.clear();
      r.length = "";
      r.lines.push_back(line);
      if (!Send(name + " with " + label, Bytes(r), Want{.status = 400})) return;
    }
    {
      RequestSpec r = BaseRequest(*route);
      r.lines.push_back("X-Padding: " + std::string(17 * 1024, 'p'));
      if (!Send(name + " with a 17 KB header", Bytes(r),
                Want{.status = 431, .code = "headers_too_large"})) {
        return;
      }
      RequestSpec many = BaseRequest(*route);
      many.lines.push_back(many_headers);
      if (!Send(name + " with 3000 headers", Bytes(many),
                Want{.status = 431, .code = "headers_too_large"})) {
        return;
      }
    }
    // Values the route may ignore: it answers as it would without them.
    const std::vector<std::pair<std::string, std::string>> ignorable = {
        {"0xff in a value", "X-Hostile: \xff\xfe"},
        {"an overlong encoding in a value", "X-Hostile: \xc0\xaf"},
        {"0xff in Idempotency-Key", "Idempotency-Key: \xff"},
        {"a 65-byte Idempotency-Key", "Idempotency-Key: " + std::string(65, 'k')},
        {"0xff in Content-Type", "Content-Type: \xff" "application/json"},
        {"0xff in Host", "Host: \xff"},
        {"0xff in If-None-Match", "If-None-Match: \xff"},
        {"0xff in Expect", "Expect: \xff"},
        {"0xff in Connection", "Connection: \xff"},
        {"0xff in Upgrade", "Upgrade: \xff\r\nConnection: upgrade"},
        {"an 8 KB value", "X-Big: " + std::string(8000, 'b')},
        {"a folded line", "X-A: 1\r\n  folded"},
        {"a second Host", "Host: other"},
        {"a second Authorization", "Authorization: Bearer ocx_" + std::string(64, '0')},
    };
    for (const auto& [label, line] : ignorable) {
      RequestSpec r = BaseRequest(*route);
      r.lines.push_back(line);
      if (!Send(name + " with " + label, Bytes(r), Want{.may_serve = may_serve})) return;
    }
    if (route->websocket) {
      // The upgrade itself, with hostile handshake headers: refused in JSON, or upgraded.
      const std::vector<std::pair<std::string, std::vector<std::string>>> upgrades = {
          {"a key of 0xff", {"Sec-WebSocket-Key: \xff\xfe\xfd", "Sec-WebSocket-Version: 13"}},
          {"a 100-byte key", {"Sec-WebSocket-Key: " + std::string(100, 'k'),
                              "Sec-WebSocket-Version: 13"}},
          {"version past 2^64", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                 "Sec-WebSocket-Version: 18446744073709551616"}},
          {"version 0xff", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                            "Sec-WebSocket-Version: \xff"}},
          {"no version", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}},
          {"an extension of 0xff", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                    "Sec-WebSocket-Version: 13",
                                    "Sec-WebSocket-Extensions: \xff"}},
          {"a protocol of 0xff", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                  "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: \xff"}},
      };
      for (const auto& [label, lines] : upgrades) {
        RequestSpec r = BaseRequest(*route);
        r.lines = {"Upgrade: websocket", "Connection: Upgrade"};
        r.lines.insert(r.lines.end(), lines.begin(), lines.end());
        if (!Send(name + " upgrade with " + label, Bytes(r), Want{.may_serve = true})) return;
      }
      RequestSpec bad_token = BaseRequest(*route);
      bad_token.token = "\xff\xfe";
      bad_token.lines = {"Upgrade: websocket", "Connection: Upgrade",
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                         "Sec-WebSocket-Version: 13"};
      if (!Send(name + " upgrade with a token of 0xff", Bytes(bad_token),
                Want{.status = 401, .code = "unauthenticated"})) {
        return;
      }
      RequestSpec bad_query = bad_token;
      bad_query.token.clear();
      bad_query.target += "?x=%FF";
      if (!Send(name + " upgrade with %FF in the query", Bytes(bad_query),
                Want{.status = 400, .code = "bad_request"})) {
        return;
      }
    }
  }
}

// ------------------------------------------------------------------ HTTP: request lines

TEST_F(ApiHostileTest, EveryRouteSurvivesHostileRequestLines) {
  Generator generator(seed_);
  for (const Route* route : HttpRoutes()) {
    const std::string name = RouteName(*route);
    const RequestSpec base = BaseRequest(*route);
    const std::string rest = Head(base).substr(Head(base).find("\r\n")) + base.body;
    auto line = [&](const std::string& request_line) { return request_line + rest; };
    std::string lower_method = route->method;
    for (char& c : lower_method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::vector<std::pair<std::string, std::string>> refused = {
        {"the method in lower case", line(lower_method + " " + base.target + " HTTP/1.1")},
        {"0xff in the method", line("G\xff" "T " + base.target + " HTTP/1.1")},
        {"an unknown method", line("FROB " + base.target + " HTTP/1.1")},
        {"a 10 KB method", line(std::string(10'000, 'G') + " " + base.target + " HTTP/1.1")},
        {"no version", line(route->method + " " + base.target)},
        {"HTTP/2.0", line(route->method + " " + base.target + " HTTP/2.0")},
        {"HTTP/1.1x", line(route->method + " " + base.target + " HTTP/1.1x")},
        {"HTTP/11.1", line(route->method + " " + base.target + " HTTP/11.1")},
        {"a lower-case version", line(route->method + " " + base.target + " http/1.1")},
        {"no target", line(route->method + "  HTTP/1.1")},
        {"a target without '/'", line(route->method + " " + base.target.substr(1) + " HTTP/1.1")},
        {"a space in the target", line(route->method + " " + base.target + " x HTTP/1.1")},
        {"a tab in the target", line(route->method + " " + base.target + "\tx HTTP/1.1")},
        {"NUL in the target",
         line(route->method + " " + base.target + std::string(1, '\0') + " HTTP/1.1")},
        {"absolute form", line(route->method + " http://127.0.0.1" + base.target + " HTTP/1.1")},
        {"asterisk form", line(route->method + " * HTTP/1.1")},
        {"'..' before the path", line(route->method + " /v1/../" + base.target.substr(1) + " HTTP/1.1")},
        {"a double slash", line(route->method + " /" + base.target + " HTTP/1.1")},
        {"a 15 KB path", line(route->method + " " + base.target + "/" + std::string(15'000, 'p') + " HTTP/1.1")},
        {"a control character in the target",
         line(route->method + " " + base.target + "\x01 HTTP/1.1")},
    };
    for (const auto& [label, bytes] : refused) {
      if (bytes.empty()) continue;
      if (!Send(name + ": " + label, bytes, Want{})) return;
    }
    // Variations a lenient parser may take: the route answers as usual then.
    const std::vector<std::pair<std::string, std::string>> lenient = {
        {"HTTP/1.0", line(route->method + " " + base.target + " HTTP/1.0")},
        {"HTTP/1.2", line(route->method + " " + base.target + " HTTP/1.2")},
        {"bare LF line ends", [&] {
           std::string bytes = Bytes(base);
           std::string out;
           for (size_t i = 0; i < bytes.size(); ++i) {
             if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') continue;
             out += bytes[i];
           }
           return out;
         }()},
        {"a fragment", line(route->method + " " + base.target + "#frag HTTP/1.1")},
        {"no Host", [&] {
           RequestSpec r = base;
           r.no_host = true;
           return Bytes(r);
         }()},
    };
    for (const auto& [label, bytes] : lenient) {
      if (!Send(name + ": " + label, bytes, Want{.may_serve = MayServe(*route)})) return;
    }
    // Truncated: the connection ends inside the request line or the headers; no answer is
    // owed, but the exchange must not wait for more.
    const std::string whole = Bytes(base);
    const size_t head_size = Head(base).size();
    for (size_t cut : {size_t{1}, route->method.size(), route->method.size() + 3, head_size / 2,
                       head_size - 3, head_size - 1, 1 + generator.Below(head_size - 1)}) {
      if (!Send(name + ": cut after " + std::to_string(cut) + " bytes", whole.substr(0, cut),
                Want{.complete = false})) {
        return;
      }
    }
  }
}

// Garbage that is no request at all, and requests pipelined after garbage.
TEST_F(ApiHostileTest, GarbageConnectionsAreRefusedOrClosed) {
  Generator generator(seed_);
  const std::vector<std::pair<std::string, std::string>> complete = {
      {"NUL bytes", std::string(8, '\0') + "\r\n\r\n"},
      {"THIS IS NOT HTTP", "THIS IS NOT HTTP\r\n\r\n"},
      {"an HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
      {"a response instead of a request", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
      {"CONNECT", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"a request line of 100 KB", "GET /" + std::string(100'000, 'a') + " HTTP/1.1\r\n\r\n"},
      {"a health check, then garbage",
       "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe\xfd\r\n\r\n"},
  };
  for (const auto& [label, bytes] : complete) {
    if (!Send(label, bytes, Want{.may_serve = label.starts_with("a health check")})) return;
  }
  const std::vector<std::pair<std::string, std::string>> incomplete = {
      {"nothing at all", ""},
      {"only empty lines", "\r\n\r\n"},
      {"a TLS ClientHello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
                                std::string(64, '\x11')},
      {"one byte", "G"},
      {"a header without its end", "GET /healthz HTTP/1.1\r\nHost: x\r\n"},
      {"an endless header line", "GET /healthz HTTP/1.1\r\nX-A: " + std::string(10'000, 'a')},
  };
  for (const auto& [label, bytes] : incomplete) {
    if (!Send(label, bytes, Want{.complete = false})) return;
  }
  for (int i = 0; i < 40; ++i) {
    const bool printable = generator.Coin();
    std::string bytes = generator.Garbage(1 + generator.Below(3000), printable);
    // With an end of headers the exchange has a "request" to refuse; without, it may just close.
    const bool terminated = generator.Coin();
    if (terminated) bytes += "\r\n\r\n";
    if (!Send("random garbage #" + std::to_string(i), bytes, Want{.complete = false})) return;
  }
  // 100 hostile requests pipelined on one connection.
  std::string pipelined;
  for (int i = 0; i < 100; ++i) {
    pipelined += "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 market_.consumer.token +
                 "\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{";
  }
  if (!Send("100 pipelined truncated orders", pipelined, Want{})) return;
}

// ------------------------------------------------------------------ HTTP: sizes and lengths

TEST_F(ApiHostileTest, EveryRouteSurvivesOversizeLyingAndTruncatedBodies) {
  for (const Route* route : HttpRoutes()) {
    const std::string name = RouteName(*route);
    const uint64_t limit = BodyLimit(*route);
    const Template* t = TemplateFor(*route);
    // The route's best body: its valid template (real captures) for JSON routes.
    RequestSpec full = route->body == api::Body::kJson && t != nullptr
                           ? JsonRequest(*route, t->body.dump())
                           : BaseRequest(*route);
    if (route->body != api::Body::kJson) {
      full.body = "0123456789";
      full.content_type = ContentTypeFor(*route);
    }
    // Declared past the limit: 413 from the header alone, before a byte of body.
    {
      RequestSpec r = BaseRequest(*route);
      r.body.clear();
      r.content_type = ContentTypeFor(*route);
      r.length = std::to_string(limit + 1);
      if (!Send(name + ": Content-Length past the limit, no body", Bytes(r),
                Want{.status = 413, .code = "body_too_large"})) {
        return;
      }
      r.length = "18446744073709551615";
      if (!Send(name + ": Content-Length 2^64-1", Bytes(r),
                Want{.status = 413, .code = "body_too_large"})) {
        return;
      }
      RequestSpec expect = r;
      expect.length = std::to_string(limit + 1);
      expect.lines.push_back("Expect: 100-continue");
      if (!Send(name + ": Expect: 100-continue past the limit", Bytes(expect),
                Want{.status = 413, .code = "body_too_large"})) {
        return;
      }
      // Sent as well: still 413.
      RequestSpec sent = r;
      sent.length.reset();
      sent.body = std::string(limit + 1, ' ');
      if (!Send(name + ": a body past the limit", Bytes(sent),
                Want{.status = 413, .code = "body_too_large"})) {
        return;
      }
      // Chunked, so that no length is declared: the parser stops at the limit.
      RequestSpec chunked = r;
      chunked.length = "";
      chunked.lines.push_back("Transfer-Encoding: chunked");
      std::string body;
      for (uint64_t left = limit + 1; left > 0;) {
        const uint64_t n = std::min<uint64_t>(left, 65536);
        char size[32];
        std::snprintf(size, sizeof(size), "%llx\r\n", static_cast<unsigned long long>(n));
        body += size + std::string(n, ' ') + "\r\n";
        left -= n;
      }
      chunked.body = body + "0\r\n\r\n";
      if (!Send(name + ": a chunked body past the limit", Bytes(chunked),
                Want{.status = 413, .code = "body_too_large"})) {
        return;
      }
    }
    // Chunked framing that is wrong.
    for (const auto& [label, chunks] : std::vector<std::pair<std::string, std::string>>{
             {"a chunk size that is not hex", "zz\r\nab\r\n0\r\n\r\n"},
             {"a chunk size past 2^64", "fffffffffffffffffffff\r\nab\r\n0\r\n\r\n"},
             {"a negative chunk size", "-1\r\nab\r\n0\r\n\r\n"},
             {"a chunk longer than its size", "1\r\nabc\r\n0\r\n\r\n"},
             {"a chunk extension of 0xff", "2;\xff\r\n{}\r\n0\r\n\r\n"},
             {"a trailer of garbage", "2\r\n{}\r\n0\r\nNoColon\r\n\r\n"},
         }) {
      RequestSpec r = BaseRequest(*route);
      r.content_type = ContentTypeFor(*route);
      r.length = "";
      r.lines.push_back("Transfer-Encoding: chunked");
      r.body = chunks;
      if (!Send(name + ": " + label, Bytes(r), Want{.may_serve = MayServe(*route)})) return;
    }
    {
      RequestSpec r = BaseRequest(*route);
      r.content_type = ContentTypeFor(*route);
      r.length = "";
      r.lines.push_back("Transfer-Encoding: chunked");
      r.body = "5\r\n{\"a\":";  // No last chunk: the connection ends mid-body.
      if (!Send(name + ": a chunked body cut short", Bytes(r), Want{.complete = false})) return;
    }
    // A Content-Length larger than what is sent: the connection ends mid-body.
    {
      RequestSpec r = full;
      r.length = std::to_string(full.body.size() + 100);
      if (!Send(name + ": Content-Length larger than the body", Bytes(r),
                Want{.complete = false})) {
        return;
      }
      RequestSpec half = full;
      half.length = std::to_string(full.body.size());
      half.body = full.body.substr(0, full.body.size() / 2);
      if (!Send(name + ": the body cut in half", Bytes(half), Want{.complete = false})) return;
    }
    // A Content-Length smaller than what is sent: the body is cut (a JSON body no longer
    // parses) and the rest is read as the next request (garbage).
    {
      RequestSpec r = full;
      r.keep_alive = true;
      r.length = std::to_string(full.body.size() - 1);
      const bool json = route->body == api::Body::kJson;
      if (!Send(name + ": Content-Length one short", Bytes(r),
                json ? Want{.status = 400, .code = "invalid_json"}
                     : Want{.may_serve = MayServe(*route)})) {
        return;
      }
      r.length = "0";
      if (!Send(name + ": Content-Length 0 with a body", Bytes(r),
                Want{.may_serve = MayServe(*route)})) {
        return;
      }
    }
  }
}

// ------------------------------------------------------------------ HTTP: JSON bodies

TEST_F(ApiHostileTest, EveryJsonRouteHasATemplate) {
  // A route that takes JSON is fed mistyped fields from a valid template: a route added
  // without one is covered by the generic classes only. Add its template to JsonTemplates.
  for (const Route* route : HttpRoutes()) {
    if (route->body != api::Body::kJson) continue;
    EXPECT_NE(TemplateFor(*route), nullptr) << RouteName(*route) << " has no template";
  }
  // Each template is valid: so a hostile value in one field is refused for that field. Checked
  // without sending (sending would change the exchange): its fields are where they are said
  // to be.
  for (const auto& [name, t] : JsonTemplates()) {
    for (const Field& field : t.fields) {
      const std::string parent = field.pointer.substr(0, field.pointer.rfind('/'));
      EXPECT_TRUE(parent.empty() || t.body.contains(Json::json_pointer(parent)))
          << name << " " << field.pointer;
    }
  }
}

TEST_F(ApiHostileTest, EveryJsonRouteRefusesMistypedFields) {
  size_t sent = 0;
  for (const Route* route : HttpRoutes()) {
    if (route->body != api::Body::kJson) continue;
    const Template* t = TemplateFor(*route);
    if (t == nullptr) continue;  // EveryJsonRouteHasATemplate reports it.
    for (const Field& field : t->fields) {
      const Json current = t->body.contains(Json::json_pointer(field.pointer))
                               ? t->body[Json::json_pointer(field.pointer)]
                               : Json();
      for (const Hostile& value : HostileValues(field, current)) {
        const std::string body = Substitute(t->body, field.pointer, value.text);
        ++sent;
        if (!Send(RouteName(*route) + " " + field.pointer + " = " + value.label,
                  Bytes(JsonRequest(*route, body)), Want{})) {
          return;
        }
      }
    }
    for (const auto& [label, body] : t->extra) {
      if (!Send(RouteName(*route) + ": " + label, Bytes(JsonRequest(*route, body)), Want{})) {
        return;
      }
    }
  }
  EXPECT_GT(sent, 500u);
}

TEST_F(ApiHostileTest, EveryJsonRouteRefusesMalformedJsonAndTheWrongContentType) {
  for (const Route* route : HttpRoutes()) {
    if (route->body != api::Body::kJson) continue;
    const Template* t = TemplateFor(*route);
    const Json good = t != nullptr ? t->body : Json{{"x", 1}};
    for (const Hostile& body : MalformedBodies(good)) {
      if (!Send(RouteName(*route) + ": " + body.label, Bytes(JsonRequest(*route, body.text)),
                Want{.status = 400})) {
        return;
      }
    }
    // The valid body, declared as something else: 415, and nothing happens.
    for (const std::string& type :
         {std::string(""), std::string("text/plain"), std::string("application/x-www-form-urlencoded"),
          std::string("multipart/form-data; boundary=x"), std::string("application/jso"),
          std::string("\xff" "application/json"), std::string("json"),
          std::string("application/json-seq"), std::string("text/json")}) {
      RequestSpec r = JsonRequest(*route, good.dump());
      r.content_type = type;
      if (!Send(RouteName(*route) + " as Content-Type '" + Printable(type, 40) + "'", Bytes(r),
                Want{.status = 415, .code = "unsupported_media_type"})) {
        return;
      }
    }
  }
}

TEST_F(ApiHostileTest, EveryJsonRouteRefusesSeededRandomBodies) {
  Generator generator(seed_);
  constexpr int kBodiesPerRoute = 60;
  for (const Route* route : HttpRoutes()) {
    if (route->body != api::Body::kJson) continue;
    const Template* t = TemplateFor(*route);
    if (t == nullptr) continue;
    for (int i = 0; i < kBodiesPerRoute; ++i) {
      const Hostile body = generator.Body(*t);
      if (!Send(RouteName(*route) + " random #" + std::to_string(i) + " (" + body.label + ")",
                Bytes(JsonRequest(*route, body.text)), Want{})) {
        return;
      }
    }
  }
}

// A blob upload takes any bytes; one to a digest that is not theirs is refused, whatever they
// are, and keeps nothing.
TEST_F(ApiHostileTest, UploadsToTheWrongDigestAreRefusedWhateverTheBytes) {
  Generator generator(seed_);
  for (const Route* route : HttpRoutes()) {
    if (route->body != api::Body::kBlob || !HasCaptures(*route)) continue;
    for (const Hostile& body : MalformedBodies(Json{{"x", 1}})) {
      RequestSpec r = BaseRequest(*route);
      r.body = body.text;
      if (!Send(RouteName(*route) + ": " + body.label, Bytes(r),
                Want{.status = 400, .code = "digest_mismatch"})) {
        return;
      }
    }
    RequestSpec random = BaseRequest(*route);
    random.body = generator.Garbage(100'000, false);
    if (!Send(RouteName(*route) + ": 100 KB of random bytes", Bytes(random),
              Want{.status = 400, .code = "digest_mismatch"})) {
      return;
    }
  }
}

// ------------------------------------------------------------------ /v1/stream

struct WsOp {
  std::string name;
  Template message;
  bool authenticated = false;  // Sent on a connection opened with the consumer's token.
};

TEST_F(ApiHostileTest, EveryStreamOpRefusesHostileMessages) {
  const Json order{{"market", "cpu"}, {"side", "buy"},   {"type", "limit"}, {"tif", "gtc"},
                   {"price", "0.01"}, {"quantity", 1},   {"lot", 1},        {"max_hours", 1}};
  const std::vector<WsOp> ops = {
      {"auth",
       {Json{{"op", "auth"}, {"token", market_.consumer.token}},
        {{"/op", Kind::kEnum, true}, {"/token", Kind::kText, true}}}},
      {"subscribe",
       {Json{{"op", "subscribe"}, {"channel", "book:cpu"}},
        {{"/op", Kind::kEnum, true}, {"/channel", Kind::kEnum, true}},
        {{"a 5000-byte market", Json{{"op", "subscribe"}, {"channel", "book:" + std::string(5000, 'c')}}.dump()},
         {"a market with NUL", R"({"op":"subscribe","channel":"book:cpu\u0000"})"}}}},
      {"unsubscribe",
       {Json{{"op", "unsubscribe"}, {"channel", "book:cpu"}},
        {{"/op", Kind::kEnum, true}, {"/channel", Kind::kEnum, true}}}},
      {"ping", {Json{{"op", "ping"}}, {{"/op", Kind::kEnum, true}}}},
      {"place_order",
       {Json{{"op", "place_order"}, {"id", 7}, {"idempotency_key", "hostile-key"}, {"order", order}},
        {{"/op", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/idempotency_key", Kind::kText},
         {"/order", Kind::kObject, true},
         {"/order/market", Kind::kText, true},
         {"/order/side", Kind::kEnum, true},
         {"/order/type", Kind::kEnum},
         {"/order/tif", Kind::kEnum},
         {"/order/price", Kind::kMoney},
         {"/order/quantity", Kind::kInt, true},
         {"/order/lot", Kind::kInt},
         {"/order/max_hours", Kind::kInt},
         {"/order/expiry", Kind::kInt},
         {"/order/machine", Kind::kInt},
         {"/order/constraints", Kind::kQuery}},
        {{"an idempotency key of the exchange's", Json{{"op", "place_order"}, {"idempotency_key", "auto-1"}, {"order", order}}.dump()},
         {"an idempotency key with a space", Json{{"op", "place_order"}, {"idempotency_key", "a b"}, {"order", order}}.dump()}}},
       true},
      {"cancel_order",
       {Json{{"op", "cancel_order"}, {"id", 8}, {"order", order_}},
        {{"/op", Kind::kEnum, true}, {"/id", Kind::kAny}, {"/order", Kind::kInt, true}}},
       true},
  };
  std::set<std::string> covered;
  Generator generator(seed_);
  for (const WsOp& op : ops) {
    covered.insert(op.name);
    const std::string token = op.authenticated ? market_.consumer.token : "";
    auto ws = Stream(token);
    ASSERT_NE(ws, nullptr);
    // Unknown fields are refused, except by ping, which has nothing to read.
    const std::set<std::string> ok = op.name == "ping" ? std::set<std::string>{"pong"}
                                                       : std::set<std::string>{};
    auto send = [&](const std::string& label, const std::string& text, bool invalid_utf8) {
      const bool may_close = invalid_utf8 || text.size() > kWsMessageBytesMax;
      if (!SendWs(*ws, "/v1/stream " + op.name + " " + label, text, may_close, ok, PingPong)) {
        if (dead_) return false;
        ws = Stream(token);  // The exchange closed this one (allowed); go on with another.
        return ws != nullptr;
      }
      return true;
    };
    for (const Field& field : op.message.fields) {
      const Json current = op.message.body.contains(Json::json_pointer(field.pointer))
                               ? op.message.body[Json::json_pointer(field.pointer)]
                               : Json();
      for (const Hostile& value : HostileValues(field, current)) {
        if (!send(field.pointer + " = " + value.label,
                  Substitute(op.message.body, field.pointer, value.text), value.invalid_utf8)) {
          return;
        }
      }
    }
    for (const auto& [label, text] : op.message.extra) {
      if (!send(label, text, false)) return;
    }
    for (const Hostile& message : MalformedBodies(op.message.body)) {
      if (!send(message.label, message.text, message.invalid_utf8)) return;
    }
    for (int i = 0; i < 30; ++i) {
      const Hostile message = generator.Body(op.message);
      if (!send("random #" + std::to_string(i) + " (" + message.label + ")", message.text,
                message.invalid_utf8)) {
        return;
      }
    }
  }
  EXPECT_EQ(covered, (std::set<std::string>{"auth", "subscribe", "unsubscribe", "ping",
                                            "place_order", "cancel_order"}));
}

TEST_F(ApiHostileTest, StreamSurvivesHostileFrames) {
  struct FrameCase {
    std::string label;
    std::string bytes;          // Sent after the upgrade.
    std::string expect_type;    // A reply of this type keeps the connection; "" expects a close.
    bool shut_write = false;
  };
  const std::string ping = R"({"op":"ping"})";
  const std::vector<FrameCase> cases = {
      {"a binary message", RawWebSocket::Encode(0x82, ping), "error"},
      {"invalid UTF-8 text", RawWebSocket::Encode(0x81, "\xff\xfe"), ""},
      {"an unmasked frame", RawWebSocket::Encode(0x81, ping, false), ""},
      {"reserved opcode 3", RawWebSocket::Encode(0x83, ping), ""},
      {"reserved opcode 0xb", RawWebSocket::Encode(0x8b, ""), ""},
      {"RSV1 without an extension", RawWebSocket::Encode(0xc1, ping), ""},
      {"a 126-byte ping", RawWebSocket::Encode(0x89, std::string(126, 'p')), ""},
      {"a fragmented ping", RawWebSocket::Encode(0x09, "p"), ""},
      {"a continuation without a start", RawWebSocket::Encode(0x80, ping), ""},
      {"a length of 2^63", RawWebSocket::Encode(0x81, "abc", true, uint64_t{1} << 63), ""},
      {"a length of 2^64-1", RawWebSocket::Encode(0x81, "abc", true, ~uint64_t{0}), ""},
      {"1 MiB declared, 10 bytes sent", RawWebSocket::Encode(0x81, "0123456789", true, 1 << 20),
       "", true},
      {"a message over 64 KiB", RawWebSocket::Encode(0x81, std::string(70'000, ' ')), ""},
      {"a close code of 999", RawWebSocket::Encode(0x88, std::string("\x03\xe7", 2)), ""},
      {"a close frame of one byte", RawWebSocket::Encode(0x88, "x"), ""},
      {"random bytes", std::string("\x13\x37\xde\xad\xbe\xef\x00\xff", 8), "", true},
      {"a message in two fragments", RawWebSocket::Encode(0x01, "{\"op\":") +
                                         RawWebSocket::Encode(0x80, "\"ping\"}"),
       "pong"},
      {"fragments with a ping between", RawWebSocket::Encode(0x01, "{\"op\":") +
                                            RawWebSocket::Encode(0x89, "x") +
                                            RawWebSocket::Encode(0x80, "\"ping\"}"),
       "pong"},
      {"a character split across fragments",
       RawWebSocket::Encode(0x01, "{\"op\":\"p\xc3") + RawWebSocket::Encode(0x80, "\xa9\"}"),
       "error"},
      {"invalid UTF-8 split across fragments",
       RawWebSocket::Encode(0x01, "{\"op\":\"\xc3") + RawWebSocket::Encode(0x80, "(\"}"), ""},
      {"1000 pings", Repeat(RawWebSocket::Encode(0x89, "x"), 1000) +
                         RawWebSocket::Encode(0x81, ping),
       "pong"},
      {"1000 empty text messages", Repeat(RawWebSocket::Encode(0x81, ""), 1000), "error"},
  };
  for (const FrameCase& c : cases) {
    SCOPED_TRACE(c.label);
    std::string why;
    auto raw = RawWebSocket::Open(server_->port(), "/v1/stream", "", &why);
    ASSERT_NE(raw, nullptr) << why;
    raw->SendBytes(c.bytes);  // The exchange may close before it read everything.
    if (c.shut_write) raw->ShutdownWrite();
    if (c.expect_type.empty()) {
      EXPECT_TRUE(raw->ClosedWithin(kAnswerDeadlineMs))
          << c.label << ": the exchange kept a connection that broke the protocol";
    } else {
      bool ended = false;
      std::optional<Json> reply;
      const int64_t deadline = NowMs() + kAnswerDeadlineMs;
      while (!reply && !ended && NowMs() < deadline) {
        auto frame = raw->Read(deadline - NowMs(), &ended);
        if (frame && (frame->opcode == 0x1 || frame->opcode == 0x2)) {
          reply = Json::parse(frame->payload, nullptr, false);
        }
      }
      ASSERT_TRUE(reply.has_value()) << c.label << ": no answer (ended: " << ended << ")";
      EXPECT_EQ(reply->value("type", ""), c.expect_type) << reply->dump();
      if (c.expect_type == "error") {
        EXPECT_TRUE(IsErrorMessage(*reply));
      }
    }
    if (!ExpectUnchanged("/v1/stream frame: " + c.label, true)) return;
    auto fresh = Stream("");
    ASSERT_NE(fresh, nullptr);
    EXPECT_TRUE(PingPong(*fresh)) << "after " << c.label;
  }
}

// ------------------------------------------------------------------ /v1/agent

TEST_F(ApiHostileTest, EveryAgentMessageRefusesHostileMessages) {
  const uint64_t machine = market_.machine.id;
  const std::string& secret = market_.machine.keys.secret_key;
  const protocol::UsageFigures figures{lease_, 1, 1, 1, 0};
  const std::string usage_signature =
      protocol::SignHex(secret, protocol::UsageMessage(machine, figures));
  const std::vector<WsOp> types = {
      {"heartbeat", {Json{{"type", "heartbeat"}, {"id", 1}}, {{"/type", Kind::kEnum, true}, {"/id", Kind::kAny}}}},
      {"usage",
       {Json{{"type", "usage"},
             {"id", 2},
             {"lease", lease_},
             {"wall_seconds", 1},
             {"cpu_seconds", 1},
             {"peak_memory_mib", 1},
             {"gpu_seconds", 0},
             {"signature", usage_signature}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/wall_seconds", Kind::kInt, true},
         {"/cpu_seconds", Kind::kInt, true},
         {"/peak_memory_mib", Kind::kInt, true},
         {"/gpu_seconds", Kind::kInt, true},
         {"/signature", Kind::kText, true}}}},
      {"end_lease",
       {Json{{"type", "end_lease"}, {"id", 3}, {"lease", lease_}, {"reason", "finished"}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/reason", Kind::kEnum, true}}}},
      {"task_result",
       {Json{{"type", "task_result"},
             {"id", 4},
             {"lease", lease_},
             {"result", {{"status", "succeeded"}, {"exit_code", 0}}}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/result", Kind::kObject, true}}}},
      {"task_log",
       {Json{{"type", "task_log"}, {"id", 5}, {"lease", lease_}, {"stream", "stdout"}, {"data", "x"}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/stream", Kind::kEnum, true},
         {"/data", Kind::kFreeText, true}}}},
  };
  int probes = 0;
  // The agent answers for itself with an acknowledged heartbeat (a journaled command: the
  // sequence baseline moves with it).
  auto heartbeat = [&](client::WebSocketClient& ws) {
    const std::string id = "probe-" + std::to_string(++probes);
    if (!ws.Send(Json{{"type", "heartbeat"}, {"id", id}}.dump()).ok()) return false;
    const int64_t deadline = NowMs() + kAnswerDeadlineMs;
    while (NowMs() < deadline) {
      auto text = ws.Receive(deadline - NowMs());
      if (!text.ok()) return false;
      const Json m = Json::parse(*text, nullptr, false);
      if (m.is_object() && m.value("type", "") == "ack" && m.value("id", "") == id) {
        sequence_ = DurableSequence();
        return true;
      }
    }
    return false;
  };
  std::set<std::string> covered;
  Generator generator(seed_);
  for (const WsOp& type : types) {
    covered.insert(type.name);
    auto ws = ConnectAgent(server_->url(), machine, secret);
    ASSERT_NE(ws, nullptr);
    auto send = [&](const std::string& label, const std::string& text, bool invalid_utf8) {
      const bool may_close = invalid_utf8 || text.size() > kWsMessageBytesMax;
      if (!SendWs(*ws, "/v1/agent " + type.name + " " + label, text, may_close, {}, heartbeat)) {
        if (dead_) return false;
        ws = ConnectAgent(server_->url(), machine, secret);
        return ws != nullptr;
      }
      return true;
    };
    for (const Field& field : type.message.fields) {
      const Json current = type.message.body.contains(Json::json_pointer(field.pointer))
                               ? type.message.body[Json::json_pointer(field.pointer)]
                               : Json();
      for (const Hostile& value : HostileValues(field, current)) {
        if (!send(field.pointer + " = " + value.label,
                  Substitute(type.message.body, field.pointer, value.text), value.invalid_utf8)) {
          return;
        }
      }
    }
    for (const Hostile& message : MalformedBodies(type.message.body)) {
      if (!send(message.label, message.text, message.invalid_utf8)) return;
    }
    for (int i = 0; i < 30; ++i) {
      const Hostile message = generator.Body(type.message);
      if (!send("random #" + std::to_string(i) + " (" + message.label + ")", message.text,
                message.invalid_utf8)) {
        return;
      }
    }
  }
  EXPECT_EQ(covered, (std::set<std::string>{"heartbeat", "usage", "end_lease", "task_result",
                                            "task_log"}));
}

// The challenge answer: each hostile one on a connection of its own (a refused answer closes
// it), then a good one still signs the machine in.
TEST_F(ApiHostileTest, AgentAuthRefusesHostileAnswers) {
  const uint64_t machine = market_.machine.id;
  const Template auth{Json{{"type", "auth"}, {"machine", machine}, {"signature", std::string(128, '0')}},
                      {{"/type", Kind::kEnum, true},
                       {"/machine", Kind::kInt, true},
                       {"/signature", Kind::kText, true}}};
  std::vector<Hostile> answers;
  for (const Field& field : auth.fields) {
    for (const Hostile& value : HostileValues(field, auth.body[Json::json_pointer(field.pointer)])) {
      answers.push_back({field.pointer + " = " + value.label,
                         Substitute(auth.body, field.pointer, value.text), value.invalid_utf8});
    }
  }
  for (const Hostile& message : MalformedBodies(auth.body)) answers.push_back(message);
  answers.push_back({"a heartbeat first", R"({"type":"heartbeat"})"});
  answers.push_back({"the right signature for another machine",
                     Json{{"type", "auth"}, {"machine", machine + 1000},
                          {"signature", std::string(128, '0')}}.dump()});
  for (const Hostile& answer : answers) {
    const std::string label = "/v1/agent auth " + answer.label;
    auto ws = ConnectWebSocket(server_->url(), "/v1/agent");
    ASSERT_NE(ws, nullptr);
    ASSERT_TRUE(ReceiveType(*ws, "challenge").has_value());
    const absl::Status sent = ws->Send(answer.text);
    if (sent.ok()) {
      auto text = ws->Receive(kAnswerDeadlineMs);
      if (text.ok()) {
        const Json reply = Json::parse(*text, nullptr, false);
        EXPECT_TRUE(IsErrorMessage(reply)) << label << ": " << Printable(*text);
        EXPECT_TRUE(ClosedWithin(*ws, kAnswerDeadlineMs)) << label << ": not closed";
      } else {
        EXPECT_TRUE(answer.invalid_utf8 || answer.text.size() > kWsMessageBytesMax)
            << label << ": no answer: " << text.status();
      }
    }
    if (!ExpectUnchanged(label, true)) return;
  }
  auto agent = ConnectAgent(server_->url(), machine, market_.machine.keys.secret_key);
  EXPECT_NE(agent, nullptr) << "the machine can no longer sign in";
}

// ------------------------------------------------------------------ starvation

const char kStarvationBase[] = R"(
[core]
tick_interval_ms = 60000
)";

class ApiHostileStarvationTest : public HostileExchangeTest {};

// (a) A flood of anonymous requests from one address is refused 429 (with Retry-After), while
// an account on the same address is served and /healthz stays free.
TEST_F(ApiHostileStarvationTest, AnAnonymousFloodIsRateLimitedWhileAccountsAreServed) {
  StartExchange(std::string(kStarvationBase) +
                "[limits]\nanonymous_rate_per_second = 0.001\nanonymous_rate_burst = 5.0\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle consumer = CreateAccount(*op_, "consumer", "flooded");
  ApiClient account(server_->url(), consumer.token);
  ApiClient anonymous(server_->url());
  const uint64_t sequence = DurableSequence();
  int limited = 0;
  for (int i = 0; i < 200 && limited < 20; ++i) {
    Reply reply = anonymous.Call("GET", "/v1/markets");
    if (reply.status == 429) {
      ++limited;
      EXPECT_EQ(reply.ErrorCode(), "rate_limited") << reply;
      EXPECT_TRUE(reply.IsErrorBody()) << reply;
      EXPECT_GE(std::atoi(reply.Header("retry-after").c_str()), 1) << reply;
    } else {
      EXPECT_EQ(reply.status, 200) << reply;
    }
    // Raw connections from the same address share the bucket.
    const Exchanged raw = ExchangeBytes(server_->port(), "GET /v1/machines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::vector<Response> responses;
    std::string why;
    ASSERT_TRUE(ParseResponses(raw.received, &responses, &why)) << why;
    ASSERT_EQ(responses.size(), 1u);
    if (responses[0].status != 200) {
      EXPECT_EQ(responses[0].status, 429);
      EXPECT_TRUE(IsRefusal(responses[0]));
    }
    EXPECT_EQ(account.Call("GET", "/v1/me").status, 200) << "the account is starved";
    EXPECT_EQ(anonymous.Call("GET", "/healthz").status, 200) << "/healthz is charged";
  }
  EXPECT_GE(limited, 20) << "the flood was never limited";
  // A WebSocket upgrade is charged to the same bucket: refused in JSON.
  const std::string upgrade = RawHttp(
      server_->port(),
      "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(upgrade), 429) << upgrade;
  EXPECT_EQ(ErrorCodeIn(RawBody(upgrade)),
            "rate_limited")
      << upgrade;
  // An authenticated stream is not (its account pays).
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream", consumer.token);
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->Send(R"({"op":"ping"})").ok());
  EXPECT_TRUE(ReceiveType(*ws, "pong").has_value());
  EXPECT_EQ(DurableSequence(), sequence) << "refused requests moved the durable sequence";
}

// Opens a keep-alive connection and asks GET /healthz on it; the answer's status (0 when none
// came), the connection kept open in *fd (or -1 once the exchange closed it).
int HealthOnNewConnection(uint16_t port, int* fd, const char* source = nullptr,
                          std::string* body = nullptr) {
  *fd = ConnectTcp(port, source);
  if (*fd < 0) return 0;
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  if (::send(*fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    // Refused at accept: the answer may already be there.
  }
  std::string received;
  std::vector<Response> responses;
  const int64_t deadline = NowMs() + kAnswerDeadlineMs;
  bool open = true;
  while (NowMs() < deadline) {
    std::string why;
    responses.clear();
    if (ParseResponses(received, &responses, &why) && !responses.empty()) break;
    if (!open) break;
    open = ReadSome(*fd, &received, deadline - NowMs());
  }
  if (responses.empty()) return 0;
  if (body != nullptr) *body = responses[0].body;
  if (responses[0].Header("connection") == "close" || !open) {
    ::close(*fd);
    *fd = -1;
  }
  if (responses[0].status >= 400) {
    EXPECT_TRUE(IsRefusal(responses[0]));
  }
  return responses[0].status;
}

void CloseAll(std::vector<int>* fds) {
  for (int fd : *fds) {
    if (fd >= 0) ::close(fd);
  }
  fds->clear();
}

// Waits until a new connection is served again (the exchange releases connection slots when
// it sees them closed, a moment later).
bool ServedAgainWithin(uint16_t port, int64_t timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (NowMs() < deadline) {
    int fd = -1;
    const int status = HealthOnNewConnection(port, &fd);
    if (fd >= 0) ::close(fd);
    if (status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// (b) More than connections_per_ip_max connections from one address: the extra ones are
// answered 429 too_many_connections; another address is served meanwhile.
TEST_F(ApiHostileStarvationTest, ConnectionsPastThePerAddressLimitAreRefused) {
  StartExchange(std::string(kStarvationBase) + "[server]\nconnections_per_ip_max = 4\n");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(op_->Call("GET", "/healthz").status, 200);  // op_ holds one connection.
  std::vector<int> held;
  int refused_at = -1;
  std::string refusal;
  for (int i = 0; i < 12 && refused_at < 0; ++i) {
    int fd = -1;
    std::string body;
    const int status = HealthOnNewConnection(server_->port(), &fd, nullptr, &body);
    if (status == 429) {
      refused_at = i;
      refusal = body;
    } else {
      ASSERT_EQ(status, 200) << "connection " << i;
    }
    held.push_back(fd);
  }
  ASSERT_GE(refused_at, 0) << "12 connections from one address were all accepted";
  EXPECT_LE(refused_at, 4) << "refused only after " << refused_at << " more connections";
  EXPECT_EQ(ErrorCodeIn(refusal),
            "too_many_connections")
      << refusal;
  // Once more, to be sure it is the limit and not a one-off.
  int extra = -1;
  EXPECT_EQ(HealthOnNewConnection(server_->port(), &extra), 429);
  if (extra >= 0) ::close(extra);
  // Another address is served, and so is the connection that was already open.
  int other = -1;
  EXPECT_EQ(HealthOnNewConnection(server_->port(), &other, "127.0.0.2"), 200)
      << "another address is starved";
  if (other >= 0) ::close(other);
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  CloseAll(&held);
  EXPECT_TRUE(ServedAgainWithin(server_->port(), kAnswerDeadlineMs))
      << "closed connections were never given back";
}

// (c) With connections_max reached by idle clients, a provider's agent still connects (the
// reserved share) and the extra plain clients are answered 503 server_busy.
TEST_F(ApiHostileStarvationTest, AgentsStillConnectWhenPlainClientsFillTheServer) {
  StartExchange(std::string(kStarvationBase) +
                "[server]\nconnections_max = 6\nagent_connections_reserved = 4\n");
  ASSERT_FALSE(HasFatalFailure());
  const Market market = MakeMarket();
  ASSERT_EQ(op_->Call("GET", "/healthz").status, 200);
  // Fill the general share with idle keep-alive clients until one is refused.
  std::vector<int> held;
  int busy = 0;
  for (int i = 0; i < 12 && busy == 0; ++i) {
    int fd = -1;
    std::string body;
    const int status = HealthOnNewConnection(server_->port(), &fd, nullptr, &body);
    if (status == 503) {
      busy = status;
      EXPECT_EQ(ErrorCodeIn(body),
                "server_busy")
          << body;
    } else {
      ASSERT_EQ(status, 200) << "connection " << i;
    }
    held.push_back(fd);
  }
  ASSERT_EQ(busy, 503) << "the server never filled";
  // A plain client now: 503 server_busy (in JSON). (A connection the exchange had not yet
  // seen closed may free a slot meanwhile: the client that takes it is held, and another
  // one asks.)
  std::vector<std::unique_ptr<ApiClient>> late;
  Reply refused;
  for (int i = 0; i < 4 && refused.status != 503; ++i) {
    late.push_back(std::make_unique<ApiClient>(server_->url(), market.consumer.token));
    refused = late.back()->Call("GET", "/v1/me");
  }
  EXPECT_EQ(refused.status, 503) << refused;
  EXPECT_EQ(refused.ErrorCode(), "server_busy") << refused;
  EXPECT_TRUE(refused.IsErrorBody()) << refused;
  // The provider's agent still connects, and works.
  auto agent = ConnectAgent(server_->url(), market.machine.id, market.machine.keys.secret_key);
  ASSERT_NE(agent, nullptr) << "the agent was crowded out";
  ASSERT_TRUE(agent->Send(R"({"type":"heartbeat","id":"h"})").ok());
  EXPECT_TRUE(ReceiveType(*agent, "ack").has_value());
  // A stream is not an agent: refused in the reserved share.
  const std::string stream = RawHttp(
      server_->port(),
      "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0);
  EXPECT_EQ(RawStatus(stream), 503) << stream;
  // The connections already open are still served.
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  // Past connections_max + agent_connections_reserved: refused at once, before a request.
  int refused_at_accept = -1;
  for (int i = 0; i < 10 && refused_at_accept < 0; ++i) {
    const int fd = ConnectTcp(server_->port());
    ASSERT_GE(fd, 0);
    std::string received;
    ReadSome(fd, &received, 300);
    if (!received.empty()) {
      std::vector<Response> responses;
      std::string why;
      ASSERT_TRUE(ParseResponses(received, &responses, &why)) << why;
      ASSERT_EQ(responses.size(), 1u);
      EXPECT_EQ(responses[0].status, 503);
      EXPECT_EQ(CodeOf(responses[0]), "server_busy");
      refused_at_accept = i;
      ::close(fd);
    } else {
      held.push_back(fd);
    }
  }
  EXPECT_GE(refused_at_accept, 0) << "connections past every share were kept";
  CloseAll(&held);
  agent.reset();
  late.clear();
  EXPECT_TRUE(ServedAgainWithin(server_->port(), kAnswerDeadlineMs))
      << "closed connections were never given back";
}

// (d) An anonymous stream that follows no channel is closed after stream_idle_s; one that
// follows a channel, and an authenticated one, are not.
TEST_F(ApiHostileStarvationTest, AnIdleAnonymousStreamIsClosed) {
  StartExchange(std::string(kStarvationBase) + "[limits]\nstream_idle_s = 1\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle consumer = CreateAccount(*op_, "consumer", "idle");
  auto idle = ConnectWebSocket(server_->url(), "/v1/stream");
  auto following = ConnectWebSocket(server_->url(), "/v1/stream");
  auto authenticated = ConnectWebSocket(server_->url(), "/v1/stream", consumer.token);
  ASSERT_TRUE(idle && following && authenticated);
  ASSERT_TRUE(following->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  ASSERT_TRUE(ReceiveType(*following, "subscribed").has_value());
  // The exchange looks every few seconds (kIdleCheckInterval, 5 s): a deadline well past it.
  EXPECT_TRUE(ClosedWithin(*idle, 20'000)) << "an idle anonymous stream was kept open";
  EXPECT_TRUE(PingPong(*following)) << "a stream with a channel was closed";
  EXPECT_TRUE(PingPong(*authenticated)) << "an authenticated stream was closed";
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
}

// (e) A WebSocket client that never reads, while a book channel floods it, is disconnected
// (ws_outbound_messages_max / ws_outbound_bytes_max); a client that reads is not, and the
// exchange serves everyone else.
TEST_F(ApiHostileStarvationTest, AClientThatNeverReadsIsDisconnectedAndOthersAreServed) {
  StartExchange(std::string(kStarvationBase) +
                "[limits]\nws_outbound_messages_max = 64\nws_outbound_bytes_max = 65536\n"
                "rate_per_second = 1000000.0\nrate_burst = 1000000.0\n"
                "anonymous_rate_per_second = 1000000.0\nanonymous_rate_burst = 1000000.0\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle flooder = CreateAccount(*op_, "consumer", "flooder");
  Deposit(*op_, flooder.id, "1000");
  // The slow client: small kernel buffers (a small receive window and segment size), so what
  // the exchange cannot send piles up in its own queue; it subscribes and never reads again.
  std::string why;
  auto slow = RawWebSocket::Open(server_->port(), "/v1/stream", "", &why, 4096, 536);
  ASSERT_NE(slow, nullptr) << why;
  ASSERT_TRUE(slow->SendText(R"({"op":"subscribe","channel":"book:cpu"})"));
  // A client that reads everything, on its own thread.
  auto reader = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  ASSERT_TRUE(ReceiveType(*reader, "subscribed").has_value());
  std::atomic<bool> stop{false};
  std::atomic<bool> reader_closed{false};
  std::atomic<int> reader_updates{0};
  std::thread reading([&] {
    while (!stop.load()) {
      auto text = reader->Receive(100);
      if (!text.ok()) {
        if (text.status().code() != absl::StatusCode::kDeadlineExceeded) {
          reader_closed.store(true);
          return;
        }
        continue;
      }
      if (text->find("\"book_update\"") != std::string::npos) reader_updates.fetch_add(1);
    }
  });
  // Joined however the test ends (an ASSERT returns early).
  struct JoinReading {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinReading() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join_reading{stop, reading};
  // The flood: orders at 3000 price levels on the flooder's own stream, 32 at a time (its
  // acknowledgements are queued for it too, and it reads them after each batch: more than
  // ws_outbound_messages_max unread would make it a slow consumer as well).
  auto entry = ConnectWebSocket(server_->url(), "/v1/stream", flooder.token);
  ASSERT_NE(entry, nullptr);
  constexpr int kOrders = 3000;
  constexpr int kBatch = 32;
  for (int first = 0; first < kOrders && !HasFatalFailure(); first += kBatch) {
    for (int i = first; i < std::min(first + kBatch, kOrders); ++i) {
      const Json order{{"op", "place_order"},
                       {"id", i},
                       {"order", BuyOrder(Credits(100 * (i + 1)), 1)}};
      ASSERT_TRUE(entry->Send(order.dump()).ok());
    }
    for (int i = first; i < std::min(first + kBatch, kOrders); ++i) {
      ASSERT_TRUE(ReceiveType(*entry, "order_placed").has_value()) << "order " << i;
    }
  }
  // The slow client was dropped: a close frame after what was already on its way.
  std::string reason;
  EXPECT_TRUE(slow->ClosedWithin(kAnswerDeadlineMs, &reason))
      << "a client that never reads was kept while the book flooded it";
  EXPECT_NE(reason.find("slow consumer"), std::string::npos) << "closed for: " << reason;
  // Everyone else is served: the reading client (it saw the updates), a new stream, an account,
  // /healthz.
  const int64_t deadline = NowMs() + kAnswerDeadlineMs;
  while (reader_updates.load() < kOrders && !reader_closed.load() && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop.store(true);
  if (reading.joinable()) reading.join();
  EXPECT_FALSE(reader_closed.load()) << "a client that reads was disconnected";
  EXPECT_EQ(reader_updates.load(), kOrders) << "the reading client missed book updates";
  EXPECT_TRUE(PingPong(*reader));
  auto fresh = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(fresh, nullptr);
  ASSERT_TRUE(fresh->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  EXPECT_TRUE(ReceiveType(*fresh, "book_snapshot").has_value()) << server_->LogTail(3000);
  ApiClient account(server_->url(), flooder.token);
  EXPECT_EQ(account.Call("GET", "/v1/me").status, 200);
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 1000'000'000));
}

}  // namespace
}  // namespace ocx::api_test
