// The hostile-client suite over HTTP (api_hostile_util.h says what is checked after every
// request): every route of Api::Routes() with hostile ids in its path, query strings,
// headers, request lines, garbage, bodies that lie about their length or pass the limits, and
// JSON bodies with every field mistyped, malformed JSON and seeded random bodies.
#include "tests/integration/api_hostile_util.h"

namespace ocx::api_test {
namespace {

// ------------------------------------------------------------------ HTTP: paths

// Ids that name nothing and cannot be narrowed into something: past 2^63, past 2^64, 10^30,
// negative, zero, in other notations, with NUL, not UTF-8, empty after decoding, very long.
const std::vector<std::string>& HostileIds() {
  static const std::vector<std::string> ids = {
      "9223372036854775808",
      "18446744073709551616",
      "1000000000000000000000000000000",
      "-1",
      "0",
      "1e3",
      "0x10",
      "%00",
      "1%00",
      "%FF",
      "%C3%28",
      "%ED%A0%80",
      "%2B1",
      "00000000000000000001",
      "-9223372036854775809",
      "\xff",
      "\xc0\xaf",
      std::string(5000, '9'),
      "%",
      "%2F",
      "1.0",
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
  for (int i = 0; i < 1000; ++i)
    params_1000 += (i ? "&p" : "p") + std::to_string(i) + "=" + std::to_string(i);
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
      {"64 parameters of 200 bytes",
       [] {
         std::string s;
         for (int i = 0; i < 64; ++i)
           s += (i ? "&v" : "v") + std::to_string(i) + "=" + std::string(200, 'x');
         return s;
       }()},
  };
  for (const Route* route : HttpRoutes()) {
    for (const auto& [label, query] : refused) {
      RequestSpec r = BaseRequest(*route);
      r.target += "?" + query;
      if (!Send(RouteName(*route) + " ?" + label, Bytes(r),
                Want{.status = 400, .code = "bad_request"})) {
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
  for (int i = 0; i < 3000; ++i)
    many_headers += (i ? "\r\nX-H" : "X-H") + std::to_string(i) + ": 1";
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
         {std::string("Basic Zm9vOmJhcg=="), std::string("Bearer"),
          std::string("bearer ") + server_->operator_token(),
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
        {"a control character in a value",
         "X-A: a\x01"
         "b"},
        {"NUL in a value", std::string("X-A: a\0b", 8)},
        {"Content-Length -1", "Content-Length: -1"},
        {"Content-Length past 2^64", "Content-Length: 18446744073709551616"},
        {"Content-Length 1e3", "Content-Length: 1e3"},
        {"Content-Length 0x10", "Content-Length: 0x10"},
        {"Content-Length empty", "Content-Length: "},
        {"Content-Length '1, 2'", "Content-Length: 1, 2"},
        {"two different Content-Lengths", "Content-Length: 1\r\nContent-Length: 2"},
        {"a chunked body and a Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 3"},
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
        {"0xff in Content-Type",
         "Content-Type: \xff"
         "application/json"},
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
          {"a 100-byte key",
           {"Sec-WebSocket-Key: " + std::string(100, 'k'), "Sec-WebSocket-Version: 13"}},
          {"version past 2^64",
           {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 18446744073709551616"}},
          {"version 0xff",
           {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: \xff"}},
          {"no version", {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}},
          {"an extension of 0xff",
           {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Extensions: \xff"}},
          {"a protocol of 0xff",
           {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: \xff"}},
      };
      for (const auto& [label, lines] : upgrades) {
        RequestSpec r = BaseRequest(*route);
        r.lines = {"Upgrade: websocket", "Connection: Upgrade"};
        r.lines.insert(r.lines.end(), lines.begin(), lines.end());
        if (!Send(name + " upgrade with " + label, Bytes(r), Want{.may_serve = true})) return;
      }
      RequestSpec bad_token = BaseRequest(*route);
      bad_token.token = "\xff\xfe";
      bad_token.lines = {
          "Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"};
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
        {"0xff in the method", line("G\xff"
                                    "T " +
                                    base.target + " HTTP/1.1")},
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
        {"'..' before the path",
         line(route->method + " /v1/../" + base.target.substr(1) + " HTTP/1.1")},
        {"a double slash", line(route->method + " /" + base.target + " HTTP/1.1")},
        {"a 15 KB path",
         line(route->method + " " + base.target + "/" + std::string(15'000, 'p') + " HTTP/1.1")},
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
        {"bare LF line ends",
         [&] {
           std::string bytes = Bytes(base);
           std::string out;
           for (size_t i = 0; i < bytes.size(); ++i) {
             if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') continue;
             out += bytes[i];
           }
           return out;
         }()},
        {"a fragment", line(route->method + " " + base.target + "#frag HTTP/1.1")},
        {"no Host",
         [&] {
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
      {"a TLS ClientHello",
       std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(64, '\x11')},
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
         {std::string(""), std::string("text/plain"),
          std::string("application/x-www-form-urlencoded"),
          std::string("multipart/form-data; boundary=x"), std::string("application/jso"),
          std::string("\xff"
                      "application/json"),
          std::string("json"), std::string("application/json-seq"), std::string("text/json")}) {
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

}  // namespace
}  // namespace ocx::api_test
