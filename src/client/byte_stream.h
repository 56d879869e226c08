// Internal to src/client: ByteStream, one Asio AsyncStream type for "a connected TCP
// stream, plain or TLS", plus the connect and error helpers shared by http_client.cc and
// websocket_client.cc. Include it only from .cc files (it pulls in Asio).
//
// Why type erasure: Beast's HTTP and WebSocket algorithms are templates over the stream
// type, and each instantiation over ssl::stream costs tens of seconds of compile time on
// our 2-core builders. Over ByteStream they are compiled once; the plain and TLS transports
// (byte_stream.cc) only instantiate read_some, write_some, connect, handshake and teardown.
// The price is one small allocation per read or write (the buffer list and the erased
// handler), noise next to a system call.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/assert.h"
#include "src/client/http_client.h"
#include "src/client/strings_internal.h"
#include "src/client/url.h"

namespace ocx::client::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;

using ReadWriteHandler = asio::any_completion_handler<void(beast::error_code, std::size_t)>;
using TeardownHandler = asio::any_completion_handler<void(beast::error_code)>;

// What a ByteStream runs on: TCP or TLS over TCP (byte_stream.cc).
class Transport {
 public:
  virtual ~Transport() = default;
  // The TCP layer: its deadline (expires_after) bounds every operation, TLS ones included.
  virtual beast::tcp_stream& tcp() = 0;
  virtual void AsyncReadSome(std::vector<asio::mutable_buffer> buffers,
                             ReadWriteHandler handler) = 0;
  virtual void AsyncWriteSome(std::vector<asio::const_buffer> buffers,
                              ReadWriteHandler handler) = 0;
  // The WebSocket closing of the transport (TLS close_notify, then TCP shutdown).
  virtual void AsyncTeardown(beast::role_type role, TeardownHandler handler) = 0;
};

// A connected stream, plain or TLS, meeting Asio's AsyncReadStream/AsyncWriteStream and
// Beast's teardown and close_socket customisation points. A movable handle.
// Not thread-safe, like the Asio streams it wraps.
class ByteStream {
 public:
  using executor_type = asio::any_io_executor;

  explicit ByteStream(std::unique_ptr<Transport> transport)
      : executor_(transport->tcp().get_executor()), transport_(std::move(transport)) {}

  executor_type get_executor() const noexcept { return executor_; }
  beast::tcp_stream& tcp() { return transport_->tcp(); }
  // Closes the socket at once; pending operations complete with an error.
  void Close() { tcp().close(); }

  template <class MutableBufferSequence, class ReadToken>
  auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
    return asio::async_initiate<ReadToken, void(beast::error_code, std::size_t)>(
        [](auto handler, Transport* transport, std::vector<asio::mutable_buffer> list) {
          transport->AsyncReadSome(std::move(list), ReadWriteHandler(std::move(handler)));
        },
        token, transport_.get(),
        std::vector<asio::mutable_buffer>(asio::buffer_sequence_begin(buffers),
                                          asio::buffer_sequence_end(buffers)));
  }

  template <class ConstBufferSequence, class WriteToken>
  auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
    return asio::async_initiate<WriteToken, void(beast::error_code, std::size_t)>(
        [](auto handler, Transport* transport, std::vector<asio::const_buffer> list) {
          transport->AsyncWriteSome(std::move(list), ReadWriteHandler(std::move(handler)));
        },
        token, transport_.get(),
        std::vector<asio::const_buffer>(asio::buffer_sequence_begin(buffers),
                                        asio::buffer_sequence_end(buffers)));
  }

  // Found by argument-dependent lookup from Beast's websocket::stream.
  friend void beast_close_socket(ByteStream& stream) { stream.Close(); }
  template <class Handler>
  friend void async_teardown(beast::role_type role, ByteStream& stream, Handler&& handler) {
    stream.transport_->AsyncTeardown(role, TeardownHandler(std::forward<Handler>(handler)));
  }

 private:
  executor_type executor_;
  std::unique_ptr<Transport> transport_;
};

// A client TLS context: TLS 1.2 or later; with tls_verify, the peer's chain is checked
// against tls_ca_file or the system's trust store.
absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const HttpClientOptions& options);

// Resolves and connects within options.timeout_ms, and for https (tls_context not null)
// completes the TLS handshake with SNI and, when verifying, a host name check. The
// context must outlive the stream. Resolution is synchronous (getaddrinfo cannot be
// interrupted), so the resolver's own timeouts apply to it.
absl::StatusOr<ByteStream> ConnectByteStream(asio::io_context& ioc, const Endpoint& endpoint,
                                             const HttpClientOptions& options,
                                             ssl::context* tls_context);

// Converts a transport error into a Status: a Beast timeout is DeadlineExceeded, anything
// else Unavailable (the server is unreachable or went away). `what` names the operation and
// peer, e.g. "connect to 127.0.0.1:8080".
inline absl::Status NetError(const beast::error_code& ec, std::string_view what,
                             int64_t timeout_ms) {
  if (ec == beast::error::timeout) {
    return absl::DeadlineExceededError(Cat(what, ": timed out after ", timeout_ms, " ms"));
  }
  return absl::UnavailableError(Cat(what, ": ", ec.message()));
}

// Runs `ioc` until the operation that writes `result` (initialised to would_block by the
// caller) has completed. Not until the io_context runs out of work: a websocket stream
// keeps its timer armed after a refused handshake, which would hold run() for the whole
// timeout. The operation itself is bounded by its stream's deadline.
inline void RunUntilComplete(asio::io_context& ioc, const beast::error_code& result) {
  ioc.restart();
  while (result == asio::error::would_block) {
    const std::size_t handlers_run = ioc.run_one();
    // The pending operation's own completion keeps the io_context busy until it runs.
    OCX_ASSERT(handlers_run > 0);
  }
}

// Our code throws nothing, but a few Asio calls without an error_code overload can (the
// io_context and ssl::context constructors, allocation): public entry points run their
// Beast code through this so an exception becomes a Status at the boundary.
template <class F>
auto CatchToStatus(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::InternalError(Cat(what, ": unexpected exception: ", e.what()));
  }
}

}  // namespace ocx::client::internal
