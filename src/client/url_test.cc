#include "src/client/url.h"

#include "gtest/gtest.h"

namespace ocx::client {
namespace {

TEST(ParseUrlTest, HttpWithoutPortUsesDefault) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl("http://exchange.example");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->scheme, "http");
  EXPECT_EQ(endpoint->host, "exchange.example");
  EXPECT_EQ(endpoint->port, 80);
  EXPECT_EQ(endpoint->base_path, "");
  EXPECT_FALSE(endpoint->tls());
  EXPECT_EQ(endpoint->HostHeader(), "exchange.example");
  EXPECT_EQ(endpoint->HostPort(), "exchange.example:80");
}

TEST(ParseUrlTest, HttpsWithoutPortUses443) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl("https://exchange.example/");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->scheme, "https");
  EXPECT_EQ(endpoint->port, 443);
  EXPECT_EQ(endpoint->base_path, "");
  EXPECT_TRUE(endpoint->tls());
}

TEST(ParseUrlTest, WebSocketSchemesMapToHttpSchemes) {
  absl::StatusOr<Endpoint> ws = ParseUrl("ws://127.0.0.1:9000");
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_EQ(ws->scheme, "http");
  EXPECT_EQ(ws->port, 9000);
  absl::StatusOr<Endpoint> wss = ParseUrl("wss://host");
  ASSERT_TRUE(wss.ok()) << wss.status();
  EXPECT_EQ(wss->scheme, "https");
  EXPECT_EQ(wss->port, 443);
}

TEST(ParseUrlTest, ExplicitPortAndBasePathWithoutTrailingSlash) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl("http://localhost:8080/ocx/api/");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "localhost");
  EXPECT_EQ(endpoint->port, 8080);
  EXPECT_EQ(endpoint->base_path, "/ocx/api");
  EXPECT_EQ(endpoint->HostHeader(), "localhost:8080");
}

TEST(ParseUrlTest, SchemeAndHostAreCaseInsensitive) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl("HTTPS://Exchange.Example:8443");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->scheme, "https");
  EXPECT_EQ(endpoint->host, "exchange.example");
  EXPECT_EQ(endpoint->port, 8443);
}

TEST(ParseUrlTest, Ipv6LiteralLosesBracketsAndKeepsPort) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl("http://[::1]:8080/x");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, 8080);
  EXPECT_EQ(endpoint->base_path, "/x");
  EXPECT_EQ(endpoint->HostPort(), "[::1]:8080");
  EXPECT_EQ(endpoint->HostHeader(), "[::1]:8080");
  absl::StatusOr<Endpoint> default_port = ParseUrl("https://[::1]");
  ASSERT_TRUE(default_port.ok()) << default_port.status();
  EXPECT_EQ(default_port->HostHeader(), "[::1]");
}

void ExpectRefused(std::string_view url, std::string_view fragment) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl(url);
  ASSERT_FALSE(endpoint.ok()) << url;
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << url;
  EXPECT_NE(std::string(endpoint.status().message()).find(fragment), std::string::npos)
      << url << " -> " << endpoint.status();
}

TEST(ParseUrlTest, RefusesMissingOrUnknownScheme) {
  ExpectRefused("", "missing scheme");
  ExpectRefused("localhost:8080", "missing scheme");
  ExpectRefused("ftp://host", "unsupported scheme 'ftp'");
}

TEST(ParseUrlTest, RefusesEmptyHost) {
  ExpectRefused("http://", "empty host");
  ExpectRefused("http://:8080/x", "empty host");
  ExpectRefused("http://[]:80", "empty host");
}

TEST(ParseUrlTest, RefusesBadPorts) {
  ExpectRefused("http://host:", "port '' is not a number");
  ExpectRefused("http://host:0", "port '0'");
  ExpectRefused("http://host:65536", "port '65536'");
  ExpectRefused("http://host:80x", "port '80x'");
  ExpectRefused("http://host:-1", "port '-1'");
  ExpectRefused("http://[::1]x", "after IPv6 literal");
  ExpectRefused("http://[::1", "unterminated IPv6");
}

TEST(ParseUrlTest, RefusesUserInfoQueryAndFragment) {
  ExpectRefused("http://user:secret@host", "user info");
  ExpectRefused("http://host/path?x=1", "no query or fragment");
  ExpectRefused("http://host#frag", "no query or fragment");
}

}  // namespace
}  // namespace ocx::client
