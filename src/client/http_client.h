// HttpClient: a synchronous HTTP/1.1 client over one keep-alive connection (plain TCP or
// TLS), used by the CLI, the provider agent, the integration tests and the API benchmark.
//
// Mechanism: Boost.Beast asynchronous operations driven to completion on a private
// io_context by the calling thread, because beast::tcp_stream timeouts (expires_after) only
// apply to asynchronous operations. One deadline of timeout_ms covers each phase: connect +
// TLS handshake, then each request (write + read response; an upload's body chunk by chunk).
// Name resolution is synchronous and bounded by the system resolver's own timeouts.
//
// Reconnection: a connection the server closed while idle (keep-alive timeout, restart) is
// noticed before sending and replaced, so the request is sent once on a fresh connection.
// If the close races the request (no response byte came back on a reused connection), the
// request is re-sent once on a new connection only when that is safe: an idempotent method
// (GET, HEAD, PUT, DELETE, OPTIONS), a request carrying an Idempotency-Key header, or
// POST /v1/blobs (content-addressed: the same bytes stored twice are one blob with the same
// answer). Otherwise Request returns Unavailable, because the server may have acted on it.
//
// Uploads (Upload): the body is read from an open file in chunks as it is sent, never held
// whole in memory; a re-send reads it again from the start (pread, so nothing depends on the
// file's offset).
//
// Errors: transport failures are Status (Unavailable, DeadlineExceeded, InvalidArgument for
// a malformed request, ResourceExhausted for a response over the size bound). Any HTTP
// status, 4xx and 5xx included, is a successful HttpResponse: ExchangeClient maps them.
//
// Ownership: the caller owns the client; it owns its connection and io_context.
// Thread-safety: none. Use one HttpClient per thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/client/url.h"

namespace ocx::client {

// Bound on a response body. Blobs are 64 MiB by default on the exchange (docs/api.md),
// configurable, so the default leaves room; raise it for larger blobs.
inline constexpr uint64_t kDefaultResponseBodyBytesMax = uint64_t{256} << 20;

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Keys lowercase; repeated headers joined ", ".
  // The header's value, "" when absent. The name is matched case-insensitively.
  std::string Header(std::string_view name) const;
};

struct HttpClientOptions {
  int64_t timeout_ms = 30'000;  // Per phase: connect + TLS handshake; each request.
  std::string bearer_token;     // Sent as "Authorization: Bearer <token>" when non-empty.
  bool tls_verify = true;       // Verify the server's certificate chain and host name.
  std::string tls_ca_file;      // PEM trust anchors; empty: the system's default paths.
  uint64_t response_body_bytes_max = kDefaultResponseBodyBytesMax;
};

// The absl::StatusCode for a non-2xx HTTP status, as the exchange uses them (docs/api.md):
// 400 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
// 405 Unimplemented, 409 AlreadyExists, 422 FailedPrecondition, 429 ResourceExhausted,
// other 4xx InvalidArgument, 5xx Unavailable, anything else Unknown.
absl::StatusCode StatusCodeForHttpStatus(int http_status);

// SHA-256 (64 lowercase hex digits) of what Upload(..., fd, size, ...) sends: the first
// `size` bytes of `fd`, read with pread. An error when the file is shorter or unreadable.
absl::StatusOr<std::string> Sha256OfUploadBody(int fd, uint64_t size);

class HttpClient {
 public:
  // Resolves, connects and (for https) completes the TLS handshake, so a wrong address or
  // certificate is reported here rather than on the first request.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Connect(const Endpoint& endpoint,
                                                             HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One request. `target` is appended to the endpoint's base_path ("/v1/orders?limit=5").
  // extra_headers e.g. {{"Idempotency-Key", "k1"}}; they may override the defaults. A
  // non-empty body is sent with Content-Type `content_type`. Reconnects as described above.
  absl::StatusOr<HttpResponse> Request(
      std::string_view method, std::string_view target, std::string_view body = {},
      const std::vector<std::pair<std::string, std::string>>& extra_headers = {},
      std::string_view content_type = "application/json");
  // One request whose body is the first `size` bytes of the open file `fd` (a regular file:
  // it is read with pread from offset 0, chunk by chunk as the connection takes them, and
  // its offset is left alone; the caller keeps the descriptor), sent with Content-Length
  // `size` and Content-Type `content_type`. Otherwise as Request, except that timeout_ms
  // bounds the header, each chunk of the body and the response one by one rather than the
  // whole exchange, so a large body on a slow link is not cut off while it still moves.
  // A file that ends before `size` bytes, or cannot be read, is an error and the connection
  // is dropped (the server is left waiting for the rest). When the server answers before
  // taking the whole body (the exchange refuses an upload over its limit or an account's
  // quota from the headers alone, then closes), that answer is returned.
  absl::StatusOr<HttpResponse> Upload(
      std::string_view method, std::string_view target, int fd, uint64_t size,
      std::string_view content_type = "application/octet-stream",
      const std::vector<std::pair<std::string, std::string>>& extra_headers = {});
  absl::StatusOr<HttpResponse> Get(std::string_view target);
  absl::StatusOr<HttpResponse> Post(std::string_view target, std::string_view json);

  void set_bearer_token(std::string token);
  const Endpoint& endpoint() const;
  // Connections opened so far, the first included: lets tests and the benchmark check
  // that keep-alive works.
  int64_t connections_opened() const;

 private:
  class Impl;  // Holds the Beast types, so this header stays cheap to include.
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocx::client
