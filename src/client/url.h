// Parsing of the exchange's base URL ("https://exchange.example:8443/ocx") into the pieces a
// connection needs. Kept apart from the clients so the CLI can validate a --url flag without
// pulling in the networking code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ocx::client {

// Where an exchange listens. Plain value; copy freely.
// Invariants (from ParseUrl): scheme is "http" or "https"; host is non-empty and, for an IPv6
// literal, has no brackets; port is in 1..65535; base_path is empty or starts with '/' and
// does not end with '/', so `base_path + "/v1/..."` is always a well-formed target.
struct Endpoint {
  std::string scheme;     // "http" or "https" (ws and wss are mapped to these).
  std::string host;       // Name or IP literal, lowercase, without [] for IPv6.
  uint16_t port = 0;      // Explicit, or the scheme's default (80, 443).
  std::string base_path;  // Prefix for every request target, e.g. "/ocx"; often empty.

  bool tls() const { return scheme == "https"; }
  // "host:port" as used in messages, with brackets around an IPv6 literal.
  std::string HostPort() const;
  // Value of the Host header: the port is omitted when it is the scheme's default.
  std::string HostHeader() const;
};

// Parses "scheme://host[:port][/base/path]" where scheme is http, https, ws or wss
// (case-insensitive; ws/wss map to http/https). Refused with InvalidArgument and a sentence
// naming the problem: a missing or unknown scheme, user info, an empty host, a port that is
// not a number in 1..65535, a query or a fragment.
absl::StatusOr<Endpoint> ParseUrl(std::string_view url);

}  // namespace ocx::client
