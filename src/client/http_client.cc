#include "src/client/http_client.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "src/base/assert.h"
#include "src/base/errno_status.h"
#include "src/base/sha256.h"
#include "src/base/status.h"
#include "src/client/byte_stream.h"
#include "src/client/strings_internal.h"

namespace ocx::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

namespace {

// Bound on a response's header block; the exchange's own answers are far smaller.
constexpr uint32_t kResponseHeaderBytesMax = 64 * 1024;
constexpr std::string_view kUserAgent = "ocx-client/1";
// An upload's body is read from its file and written in chunks of at most this many bytes:
// what the client holds of it at any time.
constexpr uint64_t kUploadChunkBytes = 256 * 1024;

using BeastRequest = http::request<http::string_body>;
using Headers = std::vector<std::pair<std::string, std::string>>;

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

absl::Status CheckHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return absl::InvalidArgumentError("empty header name");
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return absl::InvalidArgumentError(internal::Cat("invalid header name '", name, "'"));
    }
  }
  // CR or LF in a value would let it smuggle extra headers into the request.
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return absl::InvalidArgumentError(
          internal::Cat("header '", name, "' has a control character in its value"));
    }
  }
  return absl::OkStatus();
}

// Methods a server may receive twice without a different outcome (RFC 9110 9.2.2).
bool IsIdempotentMethod(http::verb verb) {
  return verb == http::verb::get || verb == http::verb::head || verb == http::verb::put ||
         verb == http::verb::delete_ || verb == http::verb::options;
}

// POST /v1/blobs is idempotent too although POST is not: the exchange names a blob by the
// SHA-256 of its bytes, so the same bytes sent twice are one blob, answered with the same
// digest, and the caller is its uploader either way (docs/api.md). (PUT /v1/blobs/{sha256}
// is idempotent as a PUT.)
bool IsContentAddressedUpload(http::verb verb, std::string_view target) {
  return verb == http::verb::post && (target == "/v1/blobs" || target.starts_with("/v1/blobs?"));
}

}  // namespace

absl::StatusCode StatusCodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
      return absl::StatusCode::kUnimplemented;
    case 409:
      return absl::StatusCode::kAlreadyExists;
    case 422:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      break;
  }
  if (http_status >= 400 && http_status < 500) return absl::StatusCode::kInvalidArgument;
  if (http_status >= 500 && http_status < 600) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kUnknown;
}

absl::StatusOr<std::string> Sha256OfUploadBody(int fd, uint64_t size) {
  base::Sha256 hash;
  std::vector<char> chunk(static_cast<size_t>(std::clamp<uint64_t>(size, 1, kUploadChunkBytes)));
  for (uint64_t done = 0; done < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - done));
    const ssize_t n = ::pread(fd, chunk.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "reading a file to hash");
    if (n == 0) {
      return absl::FailedPreconditionError(internal::Cat(
          "the file to hash ended after ", done, " of ", size, " bytes (it changed meanwhile)"));
    }
    hash.Update(std::string_view(chunk.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  return hash.FinishHex();
}

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(internal::AsciiLower(name));
  return it == headers.end() ? std::string() : it->second;
}

// The connection and the io_context that drives it. stream_ is empty when disconnected.
class HttpClient::Impl {
 public:
  Impl(Endpoint endpoint, HttpClientOptions options)
      : endpoint_(std::move(endpoint)), options_(std::move(options)) {}

  ~Impl() { Disconnect(); }

  absl::Status Init() {
    if (options_.timeout_ms <= 0) {
      return absl::InvalidArgumentError("HttpClient: timeout_ms must be positive");
    }
    if (endpoint_.tls()) {
      OCX_ASSIGN_OR_RETURN(tls_context_, internal::MakeTlsContext(options_));
    }
    return Open();
  }

  absl::StatusOr<HttpResponse> Request(std::string_view method, std::string_view target,
                                       std::string_view body, const Headers& extra_headers,
                                       std::string_view content_type) {
    BeastRequest request;
    OCX_ASSIGN_OR_RETURN(
        const Prepared prepared,
        PrepareHeader(method, target, body.empty() ? std::string_view() : content_type,
                      extra_headers, request));
    request.body() = std::string(body);
    // Content-Length, also 0 for an empty POST/PUT/PATCH, which a server requires.
    request.prepare_payload();
    return WithReconnect(
        prepared, [&](bool* retryable) { return SendOnce(request, prepared.what, retryable); });
  }

  absl::StatusOr<HttpResponse> Upload(std::string_view method, std::string_view target, int fd,
                                      uint64_t size, std::string_view content_type,
                                      const Headers& extra_headers) {
    if (fd < 0) return absl::InvalidArgumentError("HttpClient::Upload: no file descriptor");
    http::request<http::buffer_body> request;
    OCX_ASSIGN_OR_RETURN(const Prepared prepared,
                         PrepareHeader(method, target, content_type, extra_headers, request));
    request.content_length(size);  // After the extra headers: the framing is ours.
    // Each attempt reads the body from offset 0 again (pread), so a re-send after a broken
    // kept-alive connection sends the same bytes from the start.
    return WithReconnect(prepared, [&](bool* retryable) {
      return UploadOnce(request, fd, size, prepared.what, retryable);
    });
  }

  void set_bearer_token(std::string token) { options_.bearer_token = std::move(token); }
  const Endpoint& endpoint() const { return endpoint_; }
  int64_t connections_opened() const { return connections_opened_; }

 private:
  // What PrepareHeader learnt about a request.
  struct Prepared {
    std::string what;  // "POST /v1/orders to host:port", for messages.
    std::string upper_method;
    bool replayable = false;  // It may be re-sent after a kept-alive connection broke.
  };

  // Checks and sets the request line and headers shared by Request and Upload: method,
  // target, Host, User-Agent, Authorization, Content-Type (when `content_type` is not
  // empty), then the extra headers. Content-Length is the caller's.
  absl::StatusOr<Prepared> PrepareHeader(std::string_view method, std::string_view target,
                                         std::string_view content_type,
                                         const Headers& extra_headers,
                                         http::request_header<>& header) {
    Prepared prepared;
    prepared.upper_method = internal::AsciiUpper(method);
    const http::verb verb = http::string_to_verb(prepared.upper_method);
    if (verb == http::verb::unknown) {
      return absl::InvalidArgumentError(internal::Cat("unknown HTTP method '", method, "'"));
    }
    if (target.empty() || target[0] != '/') {
      return absl::InvalidArgumentError(
          internal::Cat("request target '", target, "' must start with '/'"));
    }
    for (unsigned char c : target) {
      if (c <= ' ' || c == 0x7f) {
        return absl::InvalidArgumentError(internal::Cat(
            "request target '", target, "' has a space or control character (escape it)"));
      }
    }
    header.method(verb);
    header.target(internal::Cat(endpoint_.base_path, target));
    header.version(11);
    header.set(http::field::host, endpoint_.HostHeader());
    header.set(http::field::user_agent, kUserAgent);
    if (!options_.bearer_token.empty()) {
      OCX_RETURN_IF_ERROR(CheckHeader("Authorization", options_.bearer_token));
      header.set(http::field::authorization, internal::Cat("Bearer ", options_.bearer_token));
    }
    if (!content_type.empty()) {
      OCX_RETURN_IF_ERROR(CheckHeader("Content-Type", content_type));
      header.set(http::field::content_type, content_type);
    }
    bool has_idempotency_key = false;
    for (const auto& [name, value] : extra_headers) {
      OCX_RETURN_IF_ERROR(CheckHeader(name, value));
      header.set(name, value);
      has_idempotency_key |= internal::EqualsIgnoreCase(name, "Idempotency-Key");
    }
    prepared.replayable =
        IsIdempotentMethod(verb) || has_idempotency_key || IsContentAddressedUpload(verb, target);
    prepared.what = internal::Cat(prepared.upper_method, " ", std::string(header.target()), " to ",
                                  endpoint_.HostPort());
    return prepared;
  }

  // Runs `attempt` (one write of the request and read of its response, which sets its
  // bool* to whether the failure looked like a connection the server had closed) on a live
  // connection, and once more on a new one when a kept-alive connection broke under it and
  // the request may be re-sent. A failed attempt drops its connection.
  template <class Attempt>
  absl::StatusOr<HttpResponse> WithReconnect(const Prepared& prepared, Attempt&& attempt) {
    bool fresh = false;
    if (!connected() || IdleConnectionBroken()) {
      OCX_RETURN_IF_ERROR(Open());
      fresh = true;
    }
    bool retryable = false;
    absl::StatusOr<HttpResponse> response = attempt(&retryable);
    if (!response.ok()) Disconnect();
    if (response.ok() || fresh || !retryable) return response;
    if (!prepared.replayable) {
      return absl::UnavailableError(internal::Cat(
          response.status().message(),
          " (the server closed the kept-alive connection; not re-sent because a ",
          prepared.upper_method, " without an Idempotency-Key header may have been acted on)"));
    }
    OCX_RETURN_IF_ERROR(Open());
    response = attempt(&retryable);
    if (!response.ok()) Disconnect();
    return response;
  }

  bool connected() const { return stream_.has_value(); }

  beast::tcp_stream& Lowest() {
    OCX_ASSERT(connected());
    return stream_->tcp();
  }

  absl::Status Open() {
    Disconnect();
    OCX_ASSIGN_OR_RETURN(
        internal::ByteStream stream,
        internal::ConnectByteStream(ioc_, endpoint_, options_, tls_context_.get()));
    stream_.emplace(std::move(stream));
    ++connections_opened_;
    used_ = false;
    return absl::OkStatus();
  }

  // Closes without a TLS close_notify: HTTP framing already tells both sides where the
  // last message ended, and a polite shutdown could block on a dead peer.
  void Disconnect() {
    if (connected()) {
      beast::error_code ignored;
      Lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      Lowest().socket().close(ignored);
    }
    stream_.reset();
    buffer_.clear();
  }

  // True when a kept-alive connection can no longer carry a request: the server closed it
  // (readable with EOF) or sent something unasked. Checked with a zero-timeout poll so the
  // request goes out once, on a fresh connection, instead of failing and being re-sent.
  // Only after a response: right after a TLS 1.3 handshake the server's session tickets are
  // legitimately waiting to be read.
  bool IdleConnectionBroken() {
    if (!used_) return false;
    if (buffer_.size() != 0) return true;
    pollfd fd{};
    fd.fd = Lowest().socket().native_handle();
    fd.events = POLLIN | POLLRDHUP;
    return ::poll(&fd, 1, 0) != 0;
  }

  // Writes the request and reads the response, both within one timeout_ms. *retryable says,
  // on failure, whether the server had sent nothing back at all (the signature of a
  // connection it had closed), as opposed to a timeout or a bad response.
  absl::StatusOr<HttpResponse> SendOnce(const BeastRequest& request, std::string_view what,
                                        bool* retryable) {
    *retryable = false;
    Lowest().expires_after(std::chrono::milliseconds(options_.timeout_ms));
    beast::error_code write_result = asio::error::would_block;
    http::async_write(*stream_, request,
                      [&write_result](const beast::error_code& ec, size_t) { write_result = ec; });
    internal::RunUntilComplete(ioc_, write_result);
    if (write_result) {
      *retryable = write_result != beast::error::timeout;
      return internal::NetError(write_result, what, options_.timeout_ms);
    }
    return ReadResponse(request.method() == http::verb::head, what, retryable);
  }

  // Writes the header, then the body in chunks read from `fd` (each write within timeout_ms),
  // then reads the response within timeout_ms. *retryable as for SendOnce.
  absl::StatusOr<HttpResponse> UploadOnce(http::request<http::buffer_body>& request, int fd,
                                          uint64_t size, std::string_view what, bool* retryable) {
    *retryable = false;
    request.body().data = nullptr;
    request.body().size = 0;
    request.body().more = true;
    http::request_serializer<http::buffer_body> serializer(request);
    Lowest().expires_after(std::chrono::milliseconds(options_.timeout_ms));
    beast::error_code result = asio::error::would_block;
    http::async_write_header(*stream_, serializer,
                             [&result](const beast::error_code& ec, size_t) { result = ec; });
    internal::RunUntilComplete(ioc_, result);
    if (result) {
      *retryable = result != beast::error::timeout;
      return internal::NetError(result, what, options_.timeout_ms);
    }
    std::vector<char> chunk(static_cast<size_t>(std::clamp<uint64_t>(size, 1, kUploadChunkBytes)));
    uint64_t taken = 0;  // Bytes read from the file so far.
    beast::error_code write_failed;
    while (!serializer.is_done()) {
      if (taken == size) {
        request.body().data = nullptr;
        request.body().size = 0;
        request.body().more = false;
      } else {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - taken));
        ssize_t n;
        do {
          n = ::pread(fd, chunk.data(), want, static_cast<off_t>(taken));
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
          return base::ErrnoStatus(errno, internal::Cat(what, ": reading the body's file"));
        }
        if (n == 0) {
          return absl::FailedPreconditionError(
              internal::Cat(what, ": the body's file ended after ", taken, " of ", size,
                            " bytes (it changed while being sent)"));
        }
        taken += static_cast<uint64_t>(n);
        request.body().data = chunk.data();
        request.body().size = static_cast<size_t>(n);
        request.body().more = taken < size;
      }
      Lowest().expires_after(std::chrono::milliseconds(options_.timeout_ms));
      result = asio::error::would_block;
      http::async_write(*stream_, serializer,
                        [&result](const beast::error_code& ec, size_t) { result = ec; });
      internal::RunUntilComplete(ioc_, result);
      if (result == http::error::need_buffer) continue;  // The chunk went; the next one.
      if (result == beast::error::timeout) {
        return internal::NetError(result, what, options_.timeout_ms);
      }
      if (result) {
        write_failed = result;
        break;
      }
    }
    Lowest().expires_after(std::chrono::milliseconds(options_.timeout_ms));
    absl::StatusOr<HttpResponse> response = ReadResponse(/*head=*/false, what, retryable);
    if (!write_failed) return response;
    // The server stopped taking the body. It may have answered first: the exchange refuses an
    // upload over its limit or an account's quota from the headers, then closes without
    // reading the rest. That answer is the outcome; the connection cannot carry another
    // request (the body was cut short).
    if (response.ok()) {
      Disconnect();
      return response;
    }
    // Nothing usable came back: the write's error says more. *retryable is what the read
    // found: no byte at all means a connection the server had closed.
    return internal::NetError(write_failed, what, options_.timeout_ms);
  }

  // Reads one response within the deadline already set on the stream. On failure the
  // caller drops the connection; *retryable is set when not a byte came back.
  absl::StatusOr<HttpResponse> ReadResponse(bool head, std::string_view what, bool* retryable) {
    http::response_parser<http::string_body> parser;
    parser.header_limit(kResponseHeaderBytesMax);
    parser.body_limit(options_.response_body_bytes_max);
    // A response to HEAD announces a length but carries no body.
    if (head) parser.skip(true);
    beast::error_code read_result = asio::error::would_block;
    http::async_read(*stream_, buffer_, parser,
                     [&read_result](const beast::error_code& ec, size_t) { read_result = ec; });
    internal::RunUntilComplete(ioc_, read_result);
    if (read_result) {
      *retryable =
          read_result != beast::error::timeout && !parser.got_some() && buffer_.size() == 0;
      if (read_result == http::error::body_limit) {
        return absl::ResourceExhaustedError(internal::Cat(what, ": response body over ",
                                                          options_.response_body_bytes_max,
                                                          " bytes (response_body_bytes_max)"));
      }
      if (read_result == http::error::header_limit) {
        return absl::ResourceExhaustedError(
            internal::Cat(what, ": response headers over ", kResponseHeaderBytesMax, " bytes"));
      }
      return internal::NetError(read_result, what, options_.timeout_ms);
    }
    Lowest().expires_never();

    http::response<http::string_body> message = parser.release();
    HttpResponse response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      std::string name = internal::AsciiLower(std::string(field.name_string()));
      auto [it, inserted] = response.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += internal::Cat(", ", std::string(field.value()));
    }
    response.body = std::move(message.body());
    used_ = true;
    if (!message.keep_alive()) Disconnect();
    return response;
  }

  Endpoint endpoint_;
  HttpClientOptions options_;
  // Declared before the streams, which must be destroyed first. Hint 1: only the owning
  // thread runs it, so Asio can skip its internal locking.
  asio::io_context ioc_{1};
  std::unique_ptr<asio::ssl::context> tls_context_;  // For https; outlives stream_.
  std::optional<internal::ByteStream> stream_;
  beast::flat_buffer buffer_;  // Bytes read past the previous response (none, normally).
  bool used_ = false;          // A response has been read on this connection.
  int64_t connections_opened_ = 0;
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Connect(const Endpoint& endpoint,
                                                                HttpClientOptions options) {
  return internal::CatchToStatus(
      "HttpClient::Connect", [&]() -> absl::StatusOr<std::unique_ptr<HttpClient>> {
        auto impl = std::make_unique<Impl>(endpoint, std::move(options));
        OCX_RETURN_IF_ERROR(impl->Init());
        // `new`, not make_unique: the constructor is private to force use of Connect.
        return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
      });
}

absl::StatusOr<HttpResponse> HttpClient::Request(
    std::string_view method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& extra_headers,
    std::string_view content_type) {
  return internal::CatchToStatus("HttpClient::Request", [&] {
    return impl_->Request(method, target, body, extra_headers, content_type);
  });
}

absl::StatusOr<HttpResponse> HttpClient::Upload(
    std::string_view method, std::string_view target, int fd, uint64_t size,
    std::string_view content_type,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) {
  return internal::CatchToStatus("HttpClient::Upload", [&] {
    return impl_->Upload(method, target, fd, size, content_type, extra_headers);
  });
}

absl::StatusOr<HttpResponse> HttpClient::Get(std::string_view target) {
  return Request("GET", target);
}

absl::StatusOr<HttpResponse> HttpClient::Post(std::string_view target, std::string_view json) {
  return Request("POST", target, json);
}

void HttpClient::set_bearer_token(std::string token) { impl_->set_bearer_token(std::move(token)); }

const Endpoint& HttpClient::endpoint() const { return impl_->endpoint(); }

int64_t HttpClient::connections_opened() const { return impl_->connections_opened(); }

}  // namespace ocx::client
