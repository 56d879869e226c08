#include "src/api/http_server.h"

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <deque>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "spdlog/spdlog.h"
#include "src/base/strings.h"
#include "src/base/thread_name.h"

namespace ocx::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct HttpServer::Impl {
  HttpServerOptions options;
  Api* api = nullptr;
  net::io_context ioc;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<size_t> connections{0};
  std::atomic<int64_t> in_flight{0};  // Requests handed to the Api, not yet answered.
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::mutex stop_mu;

  explicit Impl(int threads) : ioc(threads) {}
  void Accept();
};

namespace {

// The stream types a session runs over.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

beast::tcp_stream& Lowest(PlainStream& s) { return s; }
beast::tcp_stream& Lowest(TlsStream& s) { return beast::get_lowest_layer(s); }

HttpRequest ToRequest(const http::request<http::string_body>& in, const std::string& remote) {
  HttpRequest out;
  out.method = std::string(in.method_string());
  out.target = std::string(in.target());
  if (!ParseTarget(out.target, &out.path, &out.query)) out.path.clear();
  for (const auto& field : in) {
    std::string name(field.name_string());
    for (char& c : name) c = absl::ascii_tolower(static_cast<unsigned char>(c));
    out.headers[std::move(name)] = std::string(field.value());
  }
  out.body = in.body();
  out.remote_address = remote;
  return out;
}

// A response as it goes on the wire: the status line and headers, then the body (none for a
// HEAD request or a status that has none). Written by hand rather than by Beast's serializer,
// which costs several times more per small response; the headers are the ones Beast would
// write for the same message.
struct WireResponse {
  std::string head;
  std::string body;
};

WireResponse ToWire(HttpResponse in, unsigned version, bool keep_alive, bool head_request) {
  WireResponse out;
  std::string& head = out.head;
  head.reserve(192 + in.content_type.size());
  // The request's version, as Beast wrote it (10 * major + minor).
  head += "HTTP/";
  head += std::to_string(version / 10);
  head += '.';
  head += std::to_string(version % 10);
  head += ' ';
  head += std::to_string(in.status);
  head += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(in.status));
  head.append(reason.data(), reason.size());
  head += "\r\nServer: ocx\r\nContent-Type: ";
  head += in.content_type;
  const bool has_cache_control =
      std::any_of(in.headers.begin(), in.headers.end(),
                  [](const auto& h) { return base::EqualsIgnoreCase(h.first, "Cache-Control"); });
  if (in.content_type == "application/json" && !has_cache_control) {
    head += "\r\nCache-Control: no-store";
  }
  for (const auto& [name, value] : in.headers) {
    head += "\r\n";
    head += name;
    head += ": ";
    head += value;
  }
  // As Beast's prepare_payload: informational, 204 and 304 responses carry no length.
  const bool bodiless = in.status / 100 == 1 || in.status == 204 || in.status == 304;
  if (!bodiless) {
    head += "\r\nContent-Length: ";
    head += std::to_string(in.body.size());
  }
  if (version >= 11 && !keep_alive) head += "\r\nConnection: close";
  if (version < 11 && keep_alive) head += "\r\nConnection: keep-alive";
  head += "\r\n\r\n";
  if (!head_request && !bodiless) out.body = std::move(in.body);
  return out;
}

// ------------------------------------------------------------------- WebSocket session

// What a WsHandler holds: forwards to the session once it exists; drops messages after.
class ConnectionSlot : public WsConnection {
 public:
  void Attach(std::weak_ptr<WsConnection> target) {
    std::lock_guard lock(mu_);
    target_ = std::move(target);
  }
  void SendText(std::shared_ptr<const std::string> text) override {
    if (auto target = Target()) target->SendText(std::move(text));
  }
  void Close(std::string reason) override {
    if (auto target = Target()) target->Close(std::move(reason));
  }

 private:
  std::shared_ptr<WsConnection> Target() {
    std::lock_guard lock(mu_);
    return target_.lock();
  }
  std::mutex mu_;
  std::weak_ptr<WsConnection> target_;  // Guarded by mu_.
};

template <typename Stream>
class WsSession : public WsConnection, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(HttpServer::Impl* server, Stream&& stream, std::shared_ptr<ConnectionSlot> slot)
      : server_(server), ws_(std::move(stream)), slot_(std::move(slot)) {}
  ~WsSession() override { server_->connections.fetch_sub(1); }

  void Run(http::request<http::string_body> upgrade, std::shared_ptr<WsHandler> handler) {
    handler_ = std::move(handler);
    Lowest(ws_.next_layer()).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(server_->options.ws_message_bytes_max);
    ws_.async_accept(upgrade,
                     beast::bind_front_handler(&WsSession::OnAccept, this->shared_from_this()));
  }

  void SendText(std::shared_ptr<const std::string> text) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), text = std::move(text)] {
      // After Close() nothing new goes out: what was queued before it is sent, then the close.
      if (self->closing_ || self->close_after_writes_) return;
      if (self->outbound_.size() >= self->server_->options.ws_outbound_messages_max) {
        // A client that cannot keep up is dropped rather than buffered without bound.
        self->CloseNow("slow consumer: outbound queue full");
        return;
      }
      self->outbound_.push_back(text);
      if (self->outbound_.size() == 1 && self->accepted_) self->WriteNext();
    });
  }

  void Close(std::string reason) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), reason = std::move(reason)] {
      self->close_reason_ = reason;
      self->close_after_writes_ = true;
      if (self->outbound_.empty() && self->accepted_) self->CloseNow(reason);
    });
  }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) return Finish();
    accepted_ = true;
    handler_->OnOpen();
    if (!outbound_.empty()) WriteNext();
    Read();
  }

  void Read() {
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&WsSession::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) return Finish();
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      SendText(std::make_shared<const std::string>(
          R"({"type":"error","error":{"code":"invalid_message","message":"Messages are JSON text."}})"));
      return Read();
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    handler_->OnMessage(std::move(text));
    if (!closing_) Read();
  }

  void WriteNext() {
    ws_.text(true);
    ws_.async_write(net::buffer(*outbound_.front()),
                    beast::bind_front_handler(&WsSession::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (ec) return Finish();
    outbound_.pop_front();
    if (!outbound_.empty()) return WriteNext();
    if (close_after_writes_) CloseNow(close_reason_);
  }

  void CloseNow(const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    outbound_.clear();
    websocket::close_reason why(websocket::close_code::policy_error);
    why.reason = reason.substr(0, 120);
    ws_.async_close(why, [self = this->shared_from_this()](beast::error_code) { self->Finish(); });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    if (handler_) handler_->OnClose();
  }

  HttpServer::Impl* server_;
  websocket::stream<Stream> ws_;
  std::shared_ptr<ConnectionSlot> slot_;  // Keeps the handler's forwarding slot alive.
  beast::flat_buffer buffer_;
  std::shared_ptr<WsHandler> handler_;
  std::deque<std::shared_ptr<const std::string>> outbound_;  // Strand only.
  bool accepted_ = false;
  bool closing_ = false;
  bool close_after_writes_ = false;
  bool finished_ = false;
  std::string close_reason_;
};

// ------------------------------------------------------------------- HTTP session

template <typename Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(HttpServer::Impl* server, Stream&& stream, std::string remote)
      : server_(server), stream_(std::move(stream)), remote_(std::move(remote)) {}
  ~HttpSession() {
    if (!handed_off_) server_->connections.fetch_sub(1);
  }

  void Run() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest(stream_).expires_after(std::chrono::seconds(30));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&HttpSession::Read, this->shared_from_this()));
    }
  }

 private:
  void Read() {
    if (server_->stopping.load()) return Shutdown();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.header_bytes_max));
    // The largest limit of any path until the path is known: Beast checks Content-Length
    // against the limit while it parses the header, before OnHeader can lower it.
    parser_->body_limit(server_->api->BodyLimitFor("/v1/blobs"));
    Lowest(stream_).expires_after(std::chrono::seconds(server_->options.idle_timeout_s));
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::OnHeader, this->shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    std::string path;
    std::map<std::string, std::string> query;
    ParseTarget(std::string_view(parser_->get().target()), &path, &query);
    const size_t limit = server_->api->BodyLimitFor(path);
    parser_->body_limit(limit);
    if (const auto length = parser_->content_length(); length && *length > limit) {
      return WriteError(413, "body_too_large", "The request body exceeds this path's limit.");
    }
    // A small request usually arrives whole in the read that found its header: its body is
    // parsed here and now rather than by another asynchronous read, which would complete
    // through the scheduler's queue (a hand-off, and often a wake-up of the other I/O thread).
    while (!parser_->is_done() && buffer_.size() > 0) {
      beast::error_code parse_error;
      const size_t used = parser_->put(buffer_.data(), parse_error);
      buffer_.consume(used);
      if (parse_error == http::error::need_more) break;
      if (parse_error) return OnReadError(parse_error);
      if (used == 0) break;
    }
    if (parser_->is_done()) return OnRead({}, 0);
    // A body can take a while to arrive; the idle timeout is for silence between requests.
    Lowest(stream_).expires_after(
        std::chrono::seconds(std::max<int64_t>(30, server_->options.idle_timeout_s)));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, this->shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return WriteError(431, "headers_too_large", "The request headers exceed 16 KiB.");
    }
    if (ec == http::error::body_limit) {
      return WriteError(413, "body_too_large", "The request body exceeds this path's limit.");
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return Shutdown();
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return WriteError(400, "bad_request", "The request is not valid HTTP/1.1.");
    }
    Shutdown();
  }

  void WriteError(int status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
    WriteResponse(ErrorResponse(status, code, message), 11, false);
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    http::request<http::string_body> request = parser_->release();
    keep_alive_ = request.keep_alive();
    if (websocket::is_upgrade(request)) return Upgrade(std::move(request));
    HttpRequest api_request = ToRequest(request, remote_);
    if (api_request.path.empty()) {
      return WriteError(400, "bad_request", "The request target is not a valid path.");
    }
    const unsigned version = request.version();
    const bool head = request.method() == http::verb::head;
    server_->in_flight.fetch_add(1);
    server_->api->Handle(std::move(api_request), [self = this->shared_from_this(), version,
                                                  head](HttpResponse response) {
      net::post(self->stream_.get_executor(),
                [self, version, head, response = std::move(response)]() mutable {
                  self->server_->in_flight.fetch_sub(1);
                  self->WriteResponse(std::move(response), version, head);
                });
    });
  }

  void WriteResponse(HttpResponse response, unsigned version, bool head) {
    const bool keep_alive = keep_alive_ && !server_->stopping.load();
    auto message =
        std::make_shared<WireResponse>(ToWire(std::move(response), version, keep_alive, head));
    Lowest(stream_).expires_after(std::chrono::seconds(30));
    const std::array<net::const_buffer, 2> buffers{net::buffer(message->head),
                                                   net::buffer(message->body)};
    net::async_write(
        stream_, buffers,
        [self = this->shared_from_this(), message, keep_alive](beast::error_code ec, size_t) {
          if (ec || !keep_alive) return self->Shutdown();
          self->Read();
        });
  }

  void Upgrade(http::request<http::string_body> request) {
    HttpRequest api_request = ToRequest(request, remote_);
    // The handler gets a slot that forwards to the WebSocket session, which exists only once
    // the Api has accepted the upgrade (a refusal is answered on this HTTP session).
    auto slot = std::make_shared<ConnectionSlot>();
    HttpResponse refusal;
    std::shared_ptr<WsHandler> handler = server_->api->OpenWebSocket(api_request, slot, &refusal);
    if (!handler) {
      keep_alive_ = false;
      return WriteResponse(std::move(refusal), request.version(), false);
    }
    handed_off_ = true;  // The WebSocket session owns the connection (and its count) now.
    auto session = std::make_shared<WsSession<Stream>>(server_, std::move(stream_), slot);
    slot->Attach(session);
    session->Run(std::move(request), std::move(handler));
  }

  void Shutdown() {
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  HttpServer::Impl* server_;
  Stream stream_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool handed_off_ = false;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping.load()) return;
      spdlog::warn("accept failed: {}", ec.message());
      return Accept();
    }
    if (connections.load() >= options.connections_max) {
      beast::error_code ignored;
      socket.close(ignored);
      return Accept();
    }
    connections.fetch_add(1);
    beast::error_code remote_ec;
    const auto remote = socket.remote_endpoint(remote_ec);
    std::string address = remote_ec ? "" : remote.address().to_string();
    socket.set_option(tcp::no_delay(true), remote_ec);
    if (tls) {
      std::make_shared<HttpSession<TlsStream>>(this, TlsStream(std::move(socket), *tls),
                                               std::move(address))
          ->Run();
    } else {
      std::make_shared<HttpSession<PlainStream>>(this, PlainStream(std::move(socket)),
                                                 std::move(address))
          ->Run();
    }
    Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(0); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, Api* api) {
  auto impl = std::make_unique<Impl>(options.io_threads);
  impl->options = options;
  impl->api = api;
  beast::error_code ec;
  if (!options.tls_cert_file.empty()) {
    impl->tls.emplace(ssl::context::tls_server);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot load TLS certificate " + options.tls_cert_file +
                                        ": " + ec.message());
    }
    impl->tls->use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot load TLS key " + options.tls_key_file + ": " +
                                        ec.message());
    }
  }
  const auto address = net::ip::make_address(options.address, ec);
  if (ec) return absl::InvalidArgumentError("invalid listen address: " + options.address);
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("cannot listen on " + options.address + ":" +
                                  std::to_string(options.port) + ": " + ec.message());
  }
  impl->Accept();
  for (int i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc] {
      base::NameThisThread("ocx-io");
      ioc->run();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

bool HttpServer::tls() const { return impl_->tls.has_value(); }

void HttpServer::Stop(int64_t grace_ms) {
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping.store(true);
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace ocx::api
