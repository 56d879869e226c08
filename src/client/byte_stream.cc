#include "src/client/byte_stream.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <chrono>

#include "src/base/status.h"

namespace ocx::client::internal {
namespace {

using tcp = boost::asio::ip::tcp;

// Beast's operations post their completions with blocking.never, which the type-erased
// handler's own executor (any_completion_executor) does not support in Boost 1.81: bind
// the handler to the stream's executor, where it runs anyway.
template <class Stream, class Handler>
auto BindToStream(Stream& stream, Handler handler) {
  return asio::bind_executor(stream.get_executor(), std::move(handler));
}

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(asio::io_context& ioc) : stream_(ioc) {}

  beast::tcp_stream& tcp() override { return stream_; }

  void AsyncReadSome(std::vector<asio::mutable_buffer> buffers, ReadWriteHandler handler) override {
    stream_.async_read_some(std::move(buffers), BindToStream(stream_, std::move(handler)));
  }

  void AsyncWriteSome(std::vector<asio::const_buffer> buffers, ReadWriteHandler handler) override {
    stream_.async_write_some(std::move(buffers), BindToStream(stream_, std::move(handler)));
  }

  void AsyncTeardown(beast::role_type role, TeardownHandler handler) override {
    using beast::websocket::async_teardown;
    async_teardown(role, stream_, BindToStream(stream_, std::move(handler)));
  }

 private:
  beast::tcp_stream stream_;
};

class TlsTransport final : public Transport {
 public:
  TlsTransport(asio::io_context& ioc, ssl::context& context) : stream_(ioc, context) {}

  beast::tcp_stream& tcp() override { return stream_.next_layer(); }
  ssl::stream<beast::tcp_stream>& tls() { return stream_; }

  void AsyncReadSome(std::vector<asio::mutable_buffer> buffers, ReadWriteHandler handler) override {
    stream_.async_read_some(std::move(buffers), BindToStream(stream_, std::move(handler)));
  }

  void AsyncWriteSome(std::vector<asio::const_buffer> buffers, ReadWriteHandler handler) override {
    stream_.async_write_some(std::move(buffers), BindToStream(stream_, std::move(handler)));
  }

  void AsyncTeardown(beast::role_type role, TeardownHandler handler) override {
    using beast::websocket::async_teardown;
    async_teardown(role, stream_, BindToStream(stream_, std::move(handler)));
  }

 private:
  ssl::stream<beast::tcp_stream> stream_;
};

absl::Status ConnectTcp(asio::io_context& ioc, beast::tcp_stream& stream, const Endpoint& endpoint,
                        int64_t timeout_ms) {
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port),
                                  tcp::resolver::numeric_service, ec);
  if (ec) {
    return absl::UnavailableError(Cat("resolve ", endpoint.HostPort(), ": ", ec.message()));
  }
  beast::error_code result = asio::error::would_block;
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  stream.async_connect(results,
                       [&result](const beast::error_code& e, const tcp::endpoint&) { result = e; });
  RunUntilComplete(ioc, result);
  if (result) return NetError(result, Cat("connect to ", endpoint.HostPort()), timeout_ms);
  // Requests are small and latency-bound (the benchmark measures them): no Nagle delay.
  stream.socket().set_option(tcp::no_delay(true), ec);
  return absl::OkStatus();
}

absl::Status TlsHandshake(asio::io_context& ioc, ssl::stream<beast::tcp_stream>& stream,
                          const Endpoint& endpoint, const HttpClientOptions& options) {
  beast::error_code ec;
  asio::ip::make_address(endpoint.host, ec);
  const bool ip_literal = !ec;
  // SNI is for host names only; RFC 6066 forbids IP literals in it.
  if (!ip_literal && !SSL_set_tlsext_host_name(stream.native_handle(), endpoint.host.c_str())) {
    return absl::InternalError(Cat("TLS: cannot set SNI for ", endpoint.host));
  }
  if (options.tls_verify) {
    stream.set_verify_callback(ssl::host_name_verification(endpoint.host), ec);
    if (ec) return absl::InternalError(Cat("TLS verify callback: ", ec.message()));
  }
  beast::error_code result = asio::error::would_block;
  stream.next_layer().expires_after(std::chrono::milliseconds(options.timeout_ms));
  stream.async_handshake(ssl::stream_base::client,
                         [&result](const beast::error_code& e) { result = e; });
  RunUntilComplete(ioc, result);
  if (!result) return absl::OkStatus();
  const std::string what = Cat("TLS handshake with ", endpoint.HostPort());
  const long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) {
    // The generic "certificate verify failed" hides the reason; OpenSSL keeps it.
    return absl::UnavailableError(
        Cat(what, ": certificate verify failed: ", X509_verify_cert_error_string(verify)));
  }
  return NetError(result, what, options.timeout_ms);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const HttpClientOptions& options) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (!options.tls_verify) {
    context->set_verify_mode(ssl::verify_none, ec);
    return context;
  }
  if (options.tls_ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) {
      return absl::FailedPreconditionError(
          Cat("load the system's TLS trust store: ", ec.message()));
    }
  } else {
    context->load_verify_file(options.tls_ca_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          Cat("load TLS CA file '", options.tls_ca_file, "': ", ec.message()));
    }
  }
  context->set_verify_mode(ssl::verify_peer, ec);
  if (ec) return absl::InternalError(Cat("TLS verify mode: ", ec.message()));
  return context;
}

absl::StatusOr<ByteStream> ConnectByteStream(asio::io_context& ioc, const Endpoint& endpoint,
                                             const HttpClientOptions& options,
                                             ssl::context* tls_context) {
  if (tls_context == nullptr) {
    auto transport = std::make_unique<TcpTransport>(ioc);
    OCX_RETURN_IF_ERROR(ConnectTcp(ioc, transport->tcp(), endpoint, options.timeout_ms));
    return ByteStream(std::move(transport));
  }
  auto transport = std::make_unique<TlsTransport>(ioc, *tls_context);
  OCX_RETURN_IF_ERROR(ConnectTcp(ioc, transport->tcp(), endpoint, options.timeout_ms));
  OCX_RETURN_IF_ERROR(TlsHandshake(ioc, transport->tls(), endpoint, options));
  return ByteStream(std::move(transport));
}

}  // namespace ocx::client::internal
