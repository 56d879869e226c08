// The hostile-client suite's tools (tests/integration/api_hostile_*_test.cc): raw TCP and
// WebSocket clients for what a well-behaved client library never sends, the parsing and
// checking of every answer, the hostile values for each kind of field, a seeded generator,
// and the fixtures that start the exchange and check that a refused request changed nothing.
//
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
#pragma once

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

using api::Route;

// ------------------------------------------------------------------ limits and configuration

// A complete request is answered within this, and an incomplete one (the client half-closed)
// ends within it: longer is a wedged exchange.
inline constexpr int64_t kAnswerDeadlineMs = 10'000;
// What a route without a body may still send (src/api/api.cc, kNoBodyBytesMax).
inline constexpr uint64_t kNoBodyBytesMax = 1024;
// [limits] body_bytes_max: the default.
inline constexpr uint64_t kBodyBytesMax = 1 << 20;
// [limits] blob_bytes_max as kHostileConfig sets it (so that an upload past it is cheap).
inline constexpr uint64_t kBlobBytesMax = 1 << 20;
// [limits] ws_message_bytes_max: the default.
inline constexpr size_t kWsMessageBytesMax = 64 * 1024;
// What SetUp deposits (MakeMarket's "100").
inline constexpr int64_t kNetDepositsMicros = 100'000'000;
// The seeded generator's default seed (OCX_HOSTILE_SEED overrides it).
inline constexpr uint64_t kDefaultSeed = 0x0c5e'ed00'4057'11e5;

inline constexpr char kHostileConfig[] = R"(
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

inline uint64_t Seed() {
  const char* text = std::getenv("OCX_HOSTILE_SEED");
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 0) : kDefaultSeed;
}

// Bytes as text for messages: printable ASCII as is, the rest \xNN; long text cut.
inline std::string Printable(std::string_view bytes, size_t max = 300) {
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

inline std::string Repeat(std::string_view unit, size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (size_t i = 0; i < times; ++i) out += unit;
  return out;
}

inline std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// ------------------------------------------------------------------ raw TCP

// A blocking TCP connection to 127.0.0.1:port; -1 when it cannot connect. `source`: the local
// address to connect from (another loopback address is another client address); `rcvbuf` and
// `maxseg`, when set, shrink what the kernel buffers for this client.
inline int ConnectTcp(uint16_t port, const char* source = nullptr, int rcvbuf = 0, int maxseg = 0) {
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
inline bool ReadSome(int fd, std::string* out, int64_t timeout_ms) {
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
inline Exchanged ExchangeBytes(uint16_t port, std::string_view request,
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
inline bool ParseResponses(std::string_view bytes, std::vector<Response>* out, std::string* why) {
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
      const std::string_view field =
          head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
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
        *why = "a response without Content-Length (status " + std::to_string(response.status) + ")";
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
inline ::testing::AssertionResult IsRefusal(const Response& response) {
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
    return ::testing::AssertionFailure()
           << "code '" << code << "' is " << protocol::HttpStatus(*refusal)
           << " in the table, answered with " << response.status;
  }
  return ::testing::AssertionSuccess();
}

inline std::string CodeOf(const Response& response) {
  const Json body = Json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) return "";
  const Json& code = body["error"]["code"];
  return code.is_string() ? code.get<std::string>() : "";
}

// Whether a refusal with this status (and code) was decided before the core: then the durable
// sequence must not move. A 403, 404 of a resource, 409 or 422 may come from the core, which
// journals the command it refused.
inline bool DecidedBeforeCore(int status, std::string_view code) {
  switch (status) {
    case 400:
    case 401:
    case 405:
    case 411:
    case 413:
    case 415:
    case 426:
    case 429:
    case 431:
      return true;
    case 404:
      return code == "not_found" || code == "dashboard_not_built";
    default:
      return false;
  }
}

// The table status of a WebSocket error code (0 when unknown).
inline int StatusOfCode(std::string_view code) {
  const auto refusal = protocol::RefusalFromCode(code);
  return refusal ? protocol::HttpStatus(*refusal) : 0;
}

// Whether `m` is {"type":"error","error":{"code","message"}} with a code of the table.
inline ::testing::AssertionResult IsErrorMessage(const Json& m) {
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

inline std::string Head(const RequestSpec& r) {
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

inline std::string Bytes(const RequestSpec& r) { return Head(r) + r.body; }

// What a hostile HTTP request may get.
struct Want {
  bool complete = true;    // The exchange had the whole request (or enough): it must answer.
  bool may_serve = false;  // A success is fine (a safe route; the hostile part is ignorable).
  int status = 0;          // Non-zero: the first answer's status.
  std::string code = "";   // Non-empty: the first answer's error code.
};

inline bool Safe(const Route& route) { return route.method == "GET" || route.method == "HEAD"; }

inline bool HasCaptures(const Route& route) { return route.pattern.find('{') != std::string::npos; }

// The pattern with every capture replaced by `value(name)`.
inline std::string Fill(const std::string& pattern,
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

inline std::string RouteName(const Route& route) { return route.method + " " + route.pattern; }

// ------------------------------------------------------------------ hostile JSON values

// What a field holds, which says which values are certainly wrong for it.
enum class Kind {
  kEnum,       // One of a few words ("buy", "gtc"): wrong types, NUL, bad escapes, too long,
               // the word in capitals.
  kText,       // Bounded text (names, keys, markets): wrong types, NUL, bad escapes, too long.
  kArg,        // Unbounded text that cannot hold NUL (argv, env values): wrong types, NUL.
  kFreeText,   // Any string at all (task output): wrong types only.
  kMoney,      // A decimal string of credits.
  kQuery,      // A discovery query (docs/formats/query.md).
  kInt,        // An integer in a range that has no room for the values below.
  kNumber,     // A machine attribute's number (6 fractional digits at most).
  kAttribute,  // A machine attribute's value: bounded text or such a number.
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

inline const std::string kDeepArrays = std::string(10'000, '[') + std::string(10'000, ']');

inline std::vector<Hostile> HostileValues(const Field& field, const Json& current) {
  std::vector<Hostile> v;
  auto add = [&](std::initializer_list<const char*> texts) {
    for (const char* t : texts) v.push_back({t, t});
  };
  auto not_strings = [&] {
    add({"1", "-1", "1.5", "true", "false", "[]", "{}", "[\"x\"]", "{\"a\":\"x\"}",
         "9223372036854775808", "18446744073709551616", "-9223372036854775809", "1e400", "-1e400"});
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
      v.push_back(
          {"2000 nested parentheses",
           Json(std::string(2000, '(') + "cpu.cores >= 1" + std::string(2000, ')')).dump()});
      v.push_back({"4000 negations", Json(std::string(4000, '!') + "cpu.cores >= 1").dump()});
      v.push_back(
          {"300 conditions", Json(Repeat("cpu.cores >= 1 && ", 300) + "cpu.cores >= 1").dump()});
      break;
    case Kind::kInt:
      add({"\"1\"",
           "\"\"",
           "1.5",
           "-1.5",
           "1e3",
           "1e400",
           "-1e400",
           "-1",
           "-9223372036854775808",
           "-9223372036854775809",
           "9223372036854775808",
           "18446744073709551616",
           "1000000000000000000000000000000",
           "true",
           "false",
           "[]",
           "[1]",
           "{}",
           "{\"a\":1}",
           "\"0x10\""});
      break;
    case Kind::kNumber:
      add({"true", "[]", "[1]", "{}", "1e400", "-1e400", "0.0000001", "18446744073709551616",
           "1e300"});
      break;
    case Kind::kAttribute:
      add({"true", "false", "[]", "{}", "[\"x\"]", "{\"a\":\"x\"}", "1e400", "-1e400", "0.0000001",
           "18446744073709551616"});
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

inline constexpr std::string_view kPlaceholder = "\"@@hostile@@\"";

// The body's JSON text with the value at `pointer` replaced by raw text.
inline std::string Substitute(const Json& body, const std::string& pointer, std::string_view raw) {
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
inline std::vector<Hostile> MalformedBodies(const Json& good_json) {
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
      {"33 nested objects in a field",
       open + ",\"n\":" + Repeat("{\"a\":", 33) + "1" + std::string(33, '}') + "}"},
      {"a duplicate key, same value", open + "," + pair_text + "}"},
      {"a duplicate key, escaped",
       open + ",\"" + escaped_key + "\":" + good_json.begin().value().dump() + "}"},
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
        case 0:
          return Coin() ? "true" : "false";
        case 1:
          return Nested(static_cast<int>(Below(40)) + 1, Coin());
        default:
          return "1e" + std::to_string(400 + Below(9000));
      }
    }
    switch (Below(6)) {
      case 0:
        return BigInteger();
      case 1:
        return Float();
      // Never the container type the field takes (its content could then be valid).
      case 2:
        return Nested(static_cast<int>(Below(40)) + 1, kind != Kind::kArray);
      case 3:
        return kind == Kind::kBool ? "\"x\"" : (Coin() ? "true" : "false");
      case 4:
        return kind == Kind::kObject ? "[]" : "{\"" + Key() + "\":" + BigInteger() + "}";
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
inline bool PingPong(client::WebSocketClient& ws) {
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
inline std::string ErrorCodeIn(const std::string& body) {
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

inline bool operator==(const Snapshot& a, const Snapshot& b) {
  return a.balances == b.balances && a.consumer_orders == b.consumer_orders &&
         a.provider_orders == b.provider_orders && a.leases == b.leases && a.book == b.book &&
         a.ledger == b.ledger;
}

inline std::ostream& operator<<(std::ostream& out, const Snapshot& s) {
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
    const Reply blob =
        consumer_->Raw("POST", "/v1/blobs", "hostile fixture blob", {}, "application/octet-stream");
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
    const std::string where =
        "[seed " + std::to_string(seed_) + "] " + label + " (" + Printable(bytes, 160) + ")";
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
        EXPECT_TRUE(want.may_serve)
            << where << ": a hostile request was served: " << r.status << " " << Printable(r.body);
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
      ADD_FAILURE() << where
                    << ": the exchange neither answered nor closed the connection of an "
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
      case api::Body::kJson:
        return "application/json";
      case api::Body::kBlob:
        return "application/octet-stream";
      case api::Body::kNone:
        return "";
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
      case api::Body::kNone:
        return kNoBodyBytesMax;
      case api::Body::kJson:
        return kBodyBytesMax;
      case api::Body::kBlob:
        return kBlobBytesMax;
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
    const Json order{{"market", "cpu"}, {"side", "buy"},   {"type", "limit"},
                     {"tif", "gtc"},    {"price", "0.01"}, {"quantity", 1},
                     {"lot", 1},        {"max_hours", 1},  {"constraints", "cpu.cores >= 1"}};
    const std::vector<Field> order_fields = {
        {"/market", Kind::kText, true}, {"/side", Kind::kEnum, true},
        {"/type", Kind::kEnum},         {"/tif", Kind::kEnum},
        {"/price", Kind::kMoney},       {"/quantity", Kind::kInt, true},
        {"/lot", Kind::kInt},           {"/max_hours", Kind::kInt},
        {"/expiry", Kind::kInt},        {"/machine", Kind::kInt},
        {"/constraints", Kind::kQuery}};
    const Json task{
        {"command", {"true"}},
        {"env", {{"MODE", "x"}}},
        {"inputs",
         {{{"path", "in.bin"}, {"sha256", blob_sha_}, {"size", 20}, {"executable", false}}}},
        {"outputs", {"out"}},
        {"network", false},
        {"timeout_s", 60}};
    const std::vector<Field> task_fields = {
        {"/command", Kind::kArray, true}, {"/command/0", Kind::kArg},
        {"/env", Kind::kObject},          {"/env/MODE", Kind::kArg},
        {"/inputs", Kind::kArray},        {"/inputs/0", Kind::kObject},
        {"/inputs/0/path", Kind::kText},  {"/inputs/0/sha256", Kind::kEnum},
        {"/inputs/0/size", Kind::kInt},   {"/inputs/0/executable", Kind::kBool},
        {"/outputs", Kind::kArray},       {"/outputs/0", Kind::kText},
        {"/network", Kind::kBool},        {"/timeout_s", Kind::kInt}};
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
         {"an upper-case digest",
          Substitute(task, "/inputs/0/sha256", Json(Upper(blob_sha_)).dump())},
         {"an output with ..", task_with("outputs", "[\"../x\"]")},
         {"timeout 0", task_with("timeout_s", "0")},
         {"timeout past a week", task_with("timeout_s", "604801")},
         {"10001 inputs",
          task_with("inputs",
                    "[" + Repeat("{\"path\":\"a\",\"sha256\":\"" + blob_sha_ + "\"},", 10'000) +
                        "{\"path\":\"a\",\"sha256\":\"" + blob_sha_ + "\"}]")},
         {"a task over 64 KiB", task_with("command", "[\"" + std::string(70'000, 'a') + "\"]")}}};
    const Json job{{"market", "cpu"},
                   {"tasks", 1},
                   {"slots_per_task", 1},
                   {"max_price", "0.01"},
                   {"max_hours", 1},
                   {"constraints", "cpu.cores >= 1"},
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
    const std::string where =
        "[seed " + std::to_string(seed_) + "] " + label + " (" + Printable(message, 160) + ")";
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

}  // namespace ocx::api_test
