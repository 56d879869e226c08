#include "src/client/url.h"

#include <charconv>

#include "absl/status/status.h"
#include "src/client/strings_internal.h"

namespace ocx::client {
namespace {

absl::Status UrlError(std::string_view url, std::string_view problem) {
  return absl::InvalidArgumentError(internal::Cat("invalid URL '", url, "': ", problem));
}

uint16_t DefaultPort(std::string_view scheme) { return scheme == "https" ? 443 : 80; }

}  // namespace

std::string Endpoint::HostPort() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return ipv6 ? internal::Cat("[", host, "]:", port) : internal::Cat(host, ":", port);
}

std::string Endpoint::HostHeader() const {
  if (port == DefaultPort(scheme)) {
    return host.find(':') != std::string::npos ? internal::Cat("[", host, "]") : host;
  }
  return HostPort();
}

absl::StatusOr<Endpoint> ParseUrl(std::string_view url) {
  Endpoint endpoint;
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return UrlError(url, "missing scheme (expected http://, https://, ws:// or wss://)");
  }
  const std::string scheme = internal::AsciiLower(url.substr(0, scheme_end));
  if (scheme == "http" || scheme == "ws") {
    endpoint.scheme = "http";
  } else if (scheme == "https" || scheme == "wss") {
    endpoint.scheme = "https";
  } else {
    return UrlError(
        url, internal::Cat("unsupported scheme '", scheme, "' (expected http, https, ws or wss)"));
  }

  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return UrlError(url, "a base URL takes no query or fragment");
  }
  const size_t path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    // Credentials in a URL end up in shell history and logs; the token goes in a header.
    return UrlError(url, "user info is not supported (pass the token separately)");
  }

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return UrlError(url, "unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return UrlError(url, "unexpected characters after IPv6 literal");
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  if (host.empty()) return UrlError(url, "empty host");
  endpoint.host = internal::AsciiLower(host);

  if (has_port) {
    unsigned value = 0;
    const char* begin = port_text.data();
    const char* end = begin + port_text.size();
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (port_text.empty() || ec != std::errc() || ptr != end || value == 0 || value > 65535) {
      return UrlError(url, internal::Cat("port '", port_text, "' is not a number in 1..65535"));
    }
    endpoint.port = static_cast<uint16_t>(value);
  } else {
    endpoint.port = DefaultPort(endpoint.scheme);
  }

  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  endpoint.base_path = std::string(path);
  return endpoint;
}

}  // namespace ocx::client
