#include "src/client/websocket_client.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/client/byte_stream.h"
#include "src/client/strings_internal.h"

namespace ocx::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;

namespace {

// Longest a Receive waits, whatever it is asked: keeps the deadline arithmetic of
// condition_variable::wait_for clear of overflow.
constexpr int64_t kReceiveWaitMsMax = int64_t{100} * 24 * 3600 * 1000;
constexpr std::string_view kUserAgent = "ocx-client/1";

// The caller of Send or Close waits on the future while the I/O thread fulfils the promise;
// shared because the caller may give up (timeout) and return before the I/O thread is done.
using Completion = std::shared_ptr<std::promise<absl::Status>>;

struct OutgoingMessage {
  std::string text;
  Completion done;
};

// One WebSocket connection and its I/O thread. Everything not guarded by mu_ belongs to
// the I/O thread (or to the connecting thread, before StartThread).
class Connection {
 public:
  // No permessage-deflate: the exchange does not offer it, and leaving it out spares the
  // build Beast's zlib templates.
  using Stream = websocket::stream<internal::ByteStream, /*deflateSupported=*/false>;

  Connection(Endpoint endpoint, std::string target, HttpClientOptions options,
             std::unique_ptr<asio::ssl::context> tls_context)
      : endpoint_(std::move(endpoint)),
        target_(internal::Cat(endpoint_.base_path, target)),
        options_(std::move(options)),
        what_(internal::Cat("websocket ", endpoint_.HostPort(), target_)),
        tls_context_(std::move(tls_context)) {}
  ~Connection() { StopThread(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects and completes the opening handshake on the calling thread.
  absl::Status Open() {
    OCX_ASSIGN_OR_RETURN(
        internal::ByteStream stream,
        internal::ConnectByteStream(ioc_, endpoint_, options_, tls_context_.get()));
    // The websocket stream keeps its own timers from here on; two would fight.
    stream.tcp().expires_never();
    ws_.emplace(std::move(stream));
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::milliseconds(options_.timeout_ms);
    timeouts.idle_timeout = std::chrono::milliseconds(options_.timeout_ms);
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [token = options_.bearer_token](websocket::request_type& request) {
          request.set(beast::http::field::user_agent, kUserAgent);
          if (!token.empty()) {
            request.set(beast::http::field::authorization, internal::Cat("Bearer ", token));
          }
        }));
    ws_->read_message_max(kWebSocketMessageBytesMax);

    websocket::response_type response;
    beast::error_code result = asio::error::would_block;
    ws_->async_handshake(response, endpoint_.HostHeader(), target_,
                         [&result](const beast::error_code& ec) { result = ec; });
    internal::RunUntilComplete(ioc_, result);
    if (result) {
      const int http_status = static_cast<int>(response.result_int());
      if (http_status != 0 && http_status != 101) {
        std::string body = response.body().substr(0, 200);
        return absl::Status(StatusCodeForHttpStatus(http_status),
                            internal::Cat(what_, ": upgrade refused with HTTP ", http_status,
                                          body.empty() ? "" : ": ", body));
      }
      return internal::NetError(result, internal::Cat(what_, ": opening handshake"),
                                options_.timeout_ms);
    }
    ws_->text(true);
    return absl::OkStatus();
  }

  // Hands the stream to the I/O thread, which starts reading.
  void StartThread() {
    // Open's runs may have left the io_context stopped (out of work).
    ioc_.restart();
    work_.emplace(ioc_.get_executor());
    asio::post(ioc_, [this] { AsyncRead(); });
    thread_ = std::thread([this] {
      try {
        ioc_.run();
      } catch (const std::exception& e) {
        // Our handlers throw nothing; this is the boundary for anything Asio might.
        Finish(absl::InternalError(internal::Cat(what_, ": I/O thread failed: ", e.what())));
      }
    });
  }

  // Stops the I/O thread; pending operations are abandoned. Idempotent.
  void StopThread() {
    if (!thread_.joinable()) return;
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_.has_value();
  }

  absl::Status Send(std::string_view text) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return CannotSend(*closed_);
    }
    auto done = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> result = done->get_future();
    asio::post(ioc_, [this, message = OutgoingMessage{std::string(text), done}]() mutable {
      Enqueue(std::move(message));
    });
    if (result.wait_for(std::chrono::milliseconds(options_.timeout_ms)) !=
        std::future_status::ready) {
      // Unavailable, not DeadlineExceeded, for later calls: Receive's DeadlineExceeded
      // must keep meaning "nothing yet, still connected".
      Abort(absl::UnavailableError(
          internal::Cat(what_, ": connection dropped after a send timed out after ",
                        options_.timeout_ms, " ms")));
      return absl::DeadlineExceededError(internal::Cat(
          what_, ": send timed out after ", options_.timeout_ms, " ms; connection dropped"));
    }
    return result.get();
  }

  absl::StatusOr<std::string> Receive(int64_t timeout_ms) {
    std::unique_lock lock(mu_);
    if (timeout_ms > 0) {
      cv_.wait_for(lock, std::chrono::milliseconds(std::min(timeout_ms, kReceiveWaitMsMax)),
                   [this] { return !inbox_.empty() || closed_.has_value(); });
    }
    if (!inbox_.empty()) {
      std::string message = std::move(inbox_.front());
      inbox_.pop_front();
      if (read_paused_) {
        read_paused_ = false;
        asio::post(ioc_, [this] { AsyncRead(); });
      }
      return message;
    }
    if (closed_) return *closed_;
    return absl::DeadlineExceededError(
        internal::Cat(what_, ": no message within ", timeout_ms, " ms"));
  }

  absl::Status Close(int64_t timeout_ms) {
    if (closed()) return absl::OkStatus();
    auto done = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> result = done->get_future();
    asio::post(ioc_, [this, done] {
      // A second Close while the first is in flight has nothing more to do.
      if (close_started_ || closed()) {
        done->set_value(absl::OkStatus());
        return;
      }
      close_started_ = true;
      close_done_ = done;
      AsyncClose();
    });
    if (result.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
      Abort(absl::CancelledError(internal::Cat(what_, ": closed by this client")));
      return absl::DeadlineExceededError(
          internal::Cat(what_, ": the server did not answer the closing handshake within ",
                        timeout_ms, " ms; connection dropped"));
    }
    return result.get();
  }

  int64_t timeout_ms() const { return options_.timeout_ms; }

 private:
  // Operations on the stream, always run on the I/O thread. Each completion calls back
  // into the matching On* below.
  void AsyncRead() {
    ws_->async_read(read_buffer_, [this](const beast::error_code& ec, size_t) {
      if (ec) {
        OnReadFailed(ec, ws_->reason());
        return;
      }
      std::string message = beast::buffers_to_string(read_buffer_.data());
      read_buffer_.clear();
      OnMessage(std::move(message));
    });
  }

  void AsyncWrite(const std::string& text) {
    ws_->async_write(asio::buffer(text),
                     [this](const beast::error_code& ec, size_t) { OnWriteDone(ec); });
  }

  void AsyncClose() {
    ws_->async_close(websocket::close_code::normal,
                     [this](const beast::error_code& ec) { OnCloseDone(ec); });
  }

  void CloseSocket() { ws_->next_layer().Close(); }

  void OnMessage(std::string message) {
    bool pause = false;
    {
      std::lock_guard lock(mu_);
      inbox_.push_back(std::move(message));
      pause = inbox_.size() >= kWebSocketInboxMessagesMax;
      read_paused_ = pause;
    }
    cv_.notify_all();
    if (!pause) AsyncRead();
  }

  void OnReadFailed(const beast::error_code& ec, const websocket::close_reason& reason) {
    if (close_started_) {
      Finish(absl::CancelledError(internal::Cat(what_, ": closed by this client")));
    } else if (ec == websocket::error::closed) {
      const std::string_view text(reason.reason.data(), reason.reason.size());
      Finish(absl::UnavailableError(
          internal::Cat(what_, ": closed by the server with code ", reason.code,
                        text.empty() ? "" : internal::Cat(" (", text, ")"))));
    } else {
      Finish(ConnectionLost(ec));
    }
  }

  void OnWriteDone(const beast::error_code& ec) {
    OCX_ASSERT(writing_ && !outbox_.empty());
    OutgoingMessage sent = std::move(outbox_.front());
    outbox_.pop_front();
    if (ec) {
      absl::Status status = ConnectionLost(ec);
      Finish(status);
      sent.done->set_value(CannotSend(status));
      for (OutgoingMessage& queued : outbox_) queued.done->set_value(CannotSend(status));
      outbox_.clear();
      writing_ = false;
      CloseSocket();
      return;
    }
    sent.done->set_value(absl::OkStatus());
    if (outbox_.empty()) {
      writing_ = false;
    } else {
      AsyncWrite(outbox_.front().text);
    }
  }

  void OnCloseDone(const beast::error_code& ec) {
    Finish(absl::CancelledError(internal::Cat(what_, ": closed by this client")));
    absl::Status status = absl::OkStatus();
    // `closed` means the server's close frame arrived first: the handshake still completed.
    if (ec && ec != websocket::error::closed) status = ConnectionLost(ec);
    if (close_done_ != nullptr) close_done_->set_value(status);
    close_done_.reset();
  }

  // Records the first reason the connection ended; later ones are consequences.
  void Finish(absl::Status status) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = std::move(status);
    }
    cv_.notify_all();
  }

  // Ends the connection now, from any thread, without a closing handshake.
  void Abort(absl::Status status) {
    Finish(std::move(status));
    asio::post(ioc_, [this] { CloseSocket(); });
  }

  void Enqueue(OutgoingMessage message) {
    {
      std::lock_guard lock(mu_);
      if (closed_) {
        message.done->set_value(CannotSend(*closed_));
        return;
      }
    }
    // Beast allows only reads once a close has started.
    if (close_started_) {
      message.done->set_value(
          absl::CancelledError(internal::Cat("cannot send: ", what_, ": closing")));
      return;
    }
    outbox_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      AsyncWrite(outbox_.front().text);
    }
  }

  absl::Status ConnectionLost(const beast::error_code& ec) const {
    if (ec == beast::error::timeout) {
      return absl::UnavailableError(internal::Cat(what_, ": connection lost: nothing from the ",
                                                  "server for ", options_.timeout_ms, " ms"));
    }
    if (ec == asio::error::operation_aborted) {
      return absl::CancelledError(internal::Cat(what_, ": connection closed"));
    }
    return absl::UnavailableError(internal::Cat(what_, ": connection lost: ", ec.message()));
  }

  static absl::Status CannotSend(const absl::Status& closed) {
    return absl::Status(closed.code(), internal::Cat("cannot send: ", closed.message()));
  }

  const Endpoint endpoint_;
  const std::string target_;  // base_path + target.
  const HttpClientOptions options_;
  const std::string what_;  // "websocket host:port/target", the prefix of messages.
  // Declared before the stream, which must be destroyed first.
  asio::io_context ioc_;
  std::unique_ptr<asio::ssl::context> tls_context_;  // For wss; outlives ws_.
  std::optional<Stream> ws_;                         // Set by Open.
  beast::flat_buffer read_buffer_;                   // I/O thread.

  bool close_started_ = false;  // I/O thread.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::deque<OutgoingMessage> outbox_;  // I/O thread; bounded by the number of senders.
  bool writing_ = false;                // I/O thread: an async_write is in flight.
  Completion close_done_;               // I/O thread: the Close waiting for AsyncClose.

  mutable std::mutex mu_;
  std::condition_variable cv_;          // Signals inbox_ and closed_ changes.
  std::deque<std::string> inbox_;       // Guarded by mu_. <= kWebSocketInboxMessagesMax.
  bool read_paused_ = false;            // Guarded by mu_. Inbox full, no read running.
  std::optional<absl::Status> closed_;  // Guarded by mu_. Set once, never OK.
};

}  // namespace

class WebSocketClient::Impl {
 public:
  explicit Impl(std::unique_ptr<Connection> connection) : connection_(std::move(connection)) {}
  Connection& connection() { return *connection_; }

 private:
  std::unique_ptr<Connection> connection_;
};

WebSocketClient::WebSocketClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebSocketClient::~WebSocketClient() {
  Connection& connection = impl_->connection();
  if (!connection.closed()) {
    // Best effort: the server learns this was deliberate rather than a crash.
    (void)internal::CatchToStatus("WebSocketClient::~WebSocketClient", [&] {
      return connection.Close(std::min(connection.timeout_ms(), kWebSocketCloseOnDestroyMs));
    });
  }
}

absl::StatusOr<std::unique_ptr<WebSocketClient>> WebSocketClient::Connect(
    const Endpoint& endpoint, std::string_view target, HttpClientOptions options) {
  if (target.empty() || target[0] != '/') {
    return absl::InvalidArgumentError(
        internal::Cat("websocket target '", target, "' must start with '/'"));
  }
  if (options.timeout_ms <= 0) {
    return absl::InvalidArgumentError("WebSocketClient: timeout_ms must be positive");
  }
  return internal::CatchToStatus(
      "WebSocketClient::Connect", [&]() -> absl::StatusOr<std::unique_ptr<WebSocketClient>> {
        std::unique_ptr<asio::ssl::context> tls_context;
        if (endpoint.tls()) {
          OCX_ASSIGN_OR_RETURN(tls_context, internal::MakeTlsContext(options));
        }
        auto connection = std::make_unique<Connection>(endpoint, std::string(target),
                                                       std::move(options), std::move(tls_context));
        OCX_RETURN_IF_ERROR(connection->Open());
        connection->StartThread();
        // `new`, not make_unique: the constructor is private to force use of Connect.
        return std::unique_ptr<WebSocketClient>(
            new WebSocketClient(std::make_unique<Impl>(std::move(connection))));
      });
}

absl::Status WebSocketClient::Send(std::string_view text) {
  return internal::CatchToStatus("WebSocketClient::Send",
                                 [&] { return impl_->connection().Send(text); });
}

absl::StatusOr<std::string> WebSocketClient::Receive(int64_t timeout_ms) {
  return impl_->connection().Receive(timeout_ms);
}

absl::Status WebSocketClient::Close() {
  return internal::CatchToStatus("WebSocketClient::Close", [&] {
    return impl_->connection().Close(impl_->connection().timeout_ms());
  });
}

}  // namespace ocx::client
